"""The clipped PPO update over one batch, with CleanRL's details: advantage
normalisation per minibatch, clipped value loss, global gradient-norm clipping.

Statistics stay on the device as tensors; the caller moves them to the host
once per batch together with everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from esper.training.distributed import Collectives, average_gradients
from esper.training.policy import ActorCritic
from esper.training.speedups import Optimizer


@dataclass(frozen=True)
class FlatBatch:
    """A batch flattened to ``[batch_size, ...]`` for minibatching."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor

    @property
    def size(self) -> int:
        return self.obs.shape[0]

    def permuted(self, order: torch.Tensor) -> FlatBatch:
        """Every field reordered by ``order`` (one gather each)."""
        return FlatBatch(
            obs=self.obs[order],
            actions=self.actions[order],
            log_probs=self.log_probs[order],
            values=self.values[order],
            advantages=self.advantages[order],
            returns=self.returns[order],
        )


@dataclass(frozen=True)
class UpdateSettings:
    update_epochs: int
    minibatch_size: int
    clip_coef: float
    clip_value_loss: bool
    ent_coef: float
    vf_coef: float
    max_grad_norm: float
    normalize_advantages: bool
    target_kl: float | None


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 - Var[returns - values] / Var[returns]; NaN when returns are constant."""
    var_returns = returns.var()
    return 1.0 - (returns - values).var() / var_returns


def minibatch_loss(
    policy: ActorCritic,
    obs: torch.Tensor,
    actions: torch.Tensor,
    old_log_probs: torch.Tensor,
    old_values: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    settings: UpdateSettings,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped PPO loss of one minibatch and its statistics.

    Returns ``(loss, stats)``: stats are named scalars (BATCH_COMPLETED
    fields) on the device. Pure tensor code with no host reads, so ``torch.compile``
    can trace it whole (``--compile``).
    """
    new_log_prob, entropy, new_value = policy.evaluate(obs, actions)
    log_ratio = new_log_prob - old_log_probs
    ratio = log_ratio.exp()

    if settings.normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

    policy_loss = torch.max(
        -advantages * ratio,
        -advantages * ratio.clamp(1 - settings.clip_coef, 1 + settings.clip_coef),
    ).mean()

    if settings.clip_value_loss:
        clipped = old_values + (new_value - old_values).clamp(
            -settings.clip_coef, settings.clip_coef
        )
        value_loss = 0.5 * torch.max((new_value - returns).square(), (clipped - returns).square())
        value_loss = value_loss.mean()
    else:
        value_loss = 0.5 * (new_value - returns).square().mean()

    entropy_mean = entropy.mean()
    loss = policy_loss - settings.ent_coef * entropy_mean + settings.vf_coef * value_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clip_fraction = ((ratio - 1).abs() > settings.clip_coef).float().mean()
        stats = {
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
            "entropy": entropy_mean.detach(),
            "approx_kl": approx_kl,
            "clip_fraction": clip_fraction,
        }
    return loss, stats


# ``minibatch_loss`` or its torch.compile'd twin (training/compilation.py).
MinibatchLoss = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]


def ppo_update(
    policy: ActorCritic,
    optimizer: Optimizer,
    batch: FlatBatch,
    settings: UpdateSettings,
    loss_fn: MinibatchLoss = minibatch_loss,
    group: Collectives | None = None,
) -> dict[str, torch.Tensor]:
    """Run the epochs of minibatch updates; return each statistic's mean, by name.

    ``loss_fn`` is ``minibatch_loss`` or its ``torch.compile``d twin. With several
    ranks (``group``), ``batch`` is this rank's shard and ``settings.minibatch_size``
    its slice of each minibatch: advantages are normalised with the whole
    minibatch's moments and gradients averaged, so each step is the step one
    process would take over the union of the shards.
    """
    group = group or Collectives()
    device = batch.obs.device
    names: tuple[str, ...] = ()
    sums = torch.zeros((), device=device)  # [n_stats] once the first step names them
    steps = 0
    for _ in range(settings.update_epochs):
        # One gather per field per epoch; the minibatches are then contiguous
        # slices of the shuffled copy (views), not one gather each.
        shuffled = batch.permuted(torch.randperm(batch.size, device=device))
        step_settings = settings
        if group.active and settings.normalize_advantages:
            shuffled = _normalize_across(shuffled, settings.minibatch_size, group)
            step_settings = replace(settings, normalize_advantages=False)
        epoch_kl = torch.zeros((), device=device)
        epoch_steps = 0
        for start in range(0, batch.size, settings.minibatch_size):
            end = start + settings.minibatch_size
            loss, stats = loss_fn(
                policy,
                shuffled.obs[start:end],
                shuffled.actions[start:end],
                shuffled.log_probs[start:end],
                shuffled.values[start:end],
                shuffled.advantages[start:end],
                shuffled.returns[start:end],
                step_settings,
            )
            optimizer.zero_grad()
            loss.backward()
            average_gradients(optimizer, group)
            grad_norm = optimizer.clip_grad_norm_(settings.max_grad_norm)
            optimizer.step()
            stats["grad_norm"] = grad_norm
            names = tuple(stats)
            sums = sums + torch.stack(tuple(stats.values()))  # one add for every statistic
            epoch_kl += stats["approx_kl"]
            steps += 1
            epoch_steps += 1
        # Optional early stop: one host read per epoch, never per step.
        if settings.target_kl is not None:  # every rank stops at the same epoch
            epoch_kl = group.average_(epoch_kl / epoch_steps)
            mean_kl = epoch_kl.item()  # host-sync: opt-in target_kl, per epoch
            if mean_kl > settings.target_kl:
                break
    return dict(zip(names, (sums / steps).unbind(0), strict=True))


def _normalize_across(shuffled: FlatBatch, minibatch_size: int, group: Collectives) -> FlatBatch:
    """Each minibatch's advantages normalised by the mean and (unbiased) std of
    that minibatch over every rank: one all-reduce for the whole epoch."""
    advantages = shuffled.advantages.to(torch.float64).view(-1, minibatch_size)
    moments = group.sum_(torch.stack((advantages.sum(1), advantages.square().sum(1))))
    n = minibatch_size * group.world_size
    mean = moments[0] / n
    var = (moments[1] - n * mean.square()).clamp_(min=0.0) / max(n - 1, 1)
    normalized = (advantages - mean.unsqueeze(1)) / (var.sqrt().unsqueeze(1) + 1e-8)
    return replace(shuffled, advantages=normalized.to(shuffled.advantages.dtype).view(-1))
