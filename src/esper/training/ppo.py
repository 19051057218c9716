"""The clipped PPO update over one batch, with CleanRL's details: advantage
normalisation per minibatch, clipped value loss, global gradient-norm clipping.

Statistics stay on the device as tensors; the caller moves them to the host
once per batch together with everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

import torch

from esper.training.distributed.collectives import Collectives, average_gradients
from esper.training.fast.optimizer import DeviceAdam, Optimizer
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.recurrent import episode_starts
from esper.training.rollout import RolloutBuffer
from esper.training.schedule import adapt_learning_rate_

if TYPE_CHECKING:
    from esper.config.schema import PPOConfig


@dataclass(frozen=True)
class FlatBatch:
    """A batch flattened to ``[batch_size, ...]`` for minibatching."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    # A masked task's [batch_size, mask_width] bool: what each step allowed.
    action_masks: torch.Tensor | None = field(default=None, kw_only=True)

    @property
    def size(self) -> int:
        return self.obs.shape[0]

    @property
    def units(self) -> int:
        """What an epoch shuffles: single steps here, whole sequences in a ``SequenceBatch``."""
        return self.size

    # Fields the batch computes each time rather than viewing the rollout buffer:
    # a captured update copies them into its static storage (training/capture.py).
    computed = ("advantages", "returns")

    def evaluate(self, policy: ActorCritic) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``policy.evaluate`` of these rows: ``(log_prob, entropy, value)``."""
        return policy.evaluate(self.obs, self.actions, action_mask=self.action_masks)

    def rows(self, start: int, end: int) -> FlatBatch:
        """Rows ``start:end`` of every field (views: a minibatch of a shuffled batch)."""
        return FlatBatch(
            **{f.name: _take(getattr(self, f.name), slice(start, end)) for f in fields(self)}
        )

    def permuted(self, order: torch.Tensor) -> FlatBatch:
        """Every field reordered by ``order`` (one gather each)."""
        return FlatBatch(
            obs=self.obs[order],
            actions=self.actions[order],
            log_probs=self.log_probs[order],
            values=self.values[order],
            advantages=self.advantages[order],
            returns=self.returns[order],
            action_masks=_take(self.action_masks, order),
        )


def _take(rows: torch.Tensor | None, index: slice | torch.Tensor) -> torch.Tensor | None:
    """``rows[index]``; None (a field the batch does not have) stays None."""
    return None if rows is None else rows[index]


@dataclass(frozen=True)
class SequenceBatch(FlatBatch):
    """A recurrent policy's batch: each environment's steps in order, environment
    after environment (rows ``e * T`` to ``(e + 1) * T - 1`` are environment
    ``e``'s), so a minibatch of whole sequences is a slice of rows. An epoch
    shuffles environments, not steps, and the policy replays each sequence from
    its ``memory``."""

    memory: torch.Tensor  # [n_envs, memory_size]: each sequence's memory before its first step
    starts: torch.Tensor  # [n_envs * T] bool: the steps that began an episode

    computed = (
        "obs",
        "actions",
        "log_probs",
        "values",
        "advantages",
        "returns",
        "memory",
        "starts",
        "action_masks",
    )

    @property
    def horizon(self) -> int:
        return self.size // self.memory.shape[0]

    @property
    def units(self) -> int:
        return self.memory.shape[0]

    def evaluate(self, policy: ActorCritic) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return policy.evaluate(self.obs, self.actions, self.memory, self.starts, self.action_masks)

    def rows(self, start: int, end: int) -> SequenceBatch:
        """Rows ``start:end``, which must hold whole sequences (views)."""
        horizon = self.horizon
        sliced = {
            name: _take(getattr(self, name), slice(start, end)) for name in self._step_fields()
        }
        return SequenceBatch(**sliced, memory=self.memory[start // horizon : end // horizon])

    def permuted(self, order: torch.Tensor) -> SequenceBatch:
        """Whole sequences reordered by ``order`` over environments (one gather each)."""
        horizon = self.horizon
        steps = torch.arange(horizon, device=order.device)
        row_order = (order.unsqueeze(1) * horizon + steps).reshape(-1)
        moved = {name: _take(getattr(self, name), row_order) for name in self._step_fields()}
        return SequenceBatch(**moved, memory=self.memory[order])

    def _step_fields(self) -> list[str]:
        """Every field with a row per step (all but ``memory``, one per sequence)."""
        return [f.name for f in fields(self) if f.name != "memory"]


def flatten_batch(
    buffer: RolloutBuffer, advantages: torch.Tensor, returns: torch.Tensor
) -> FlatBatch:
    """Views of the buffer as ``[horizon * n_envs, ...]`` (no copies); a recurrent
    policy's rollout as a ``SequenceBatch`` (environment-major: one copy)."""
    if buffer.first_memory is not None:
        return _sequence_batch(buffer, advantages, returns)
    n = buffer.obs.shape[0] * buffer.obs.shape[1]
    return FlatBatch(
        obs=buffer.obs.reshape(n, -1),
        actions=buffer.actions.reshape(n, *buffer.actions.shape[2:]),
        log_probs=buffer.log_probs.reshape(n),
        values=buffer.values.reshape(n),
        advantages=advantages.reshape(n),
        returns=returns.reshape(n),
        action_masks=_take_all(buffer.action_masks, lambda masks: masks.reshape(n, -1)),
    )


def _take_all(
    rows: torch.Tensor | None, view: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor | None:
    return None if rows is None else view(rows)


def _sequence_batch(
    buffer: RolloutBuffer, advantages: torch.Tensor, returns: torch.Tensor
) -> SequenceBatch:
    assert buffer.first_memory is not None

    def by_env(steps: torch.Tensor) -> torch.Tensor:  # [T, N, ...] -> [N * T, ...]
        return steps.transpose(0, 1).reshape(-1, *steps.shape[2:])

    return SequenceBatch(
        obs=by_env(buffer.obs),
        actions=by_env(buffer.actions),
        log_probs=by_env(buffer.log_probs),
        values=by_env(buffer.values),
        advantages=by_env(advantages),
        returns=by_env(returns),
        memory=buffer.first_memory,
        starts=by_env(episode_starts(buffer.terminated | buffer.truncated)),
        action_masks=_take_all(buffer.action_masks, by_env),
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
    # lr_schedule = "adaptive": the approx KL each minibatch step steers the
    # optimiser's device learning rate toward (training/schedule.py); None: no steering.
    adaptive_kl: float | None = None


def update_settings(config: PPOConfig, world_size: int = 1) -> UpdateSettings:
    """The config's update settings, for one rank: its slice of each minibatch."""
    settings = {f.name: getattr(config, f.name) for f in fields(UpdateSettings)[:-1]}
    settings["minibatch_size"] = config.minibatch_size // world_size
    settings["adaptive_kl"] = config.desired_kl if config.schedule == "adaptive" else None
    return UpdateSettings(**settings)


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    """1 - Var[returns - values] / Var[returns]; NaN when returns are constant."""
    var_returns = returns.var()
    return 1.0 - (returns - values).var() / var_returns


def minibatch_loss(
    policy: ActorCritic, minibatch: FlatBatch, settings: UpdateSettings
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped PPO loss of one minibatch and its statistics.

    ``minibatch.advantages`` arrive normalised when the settings ask for it
    (``normalize_minibatches``). Returns ``(loss, stats)``: stats are named
    scalars (BATCH_COMPLETED fields) on the device. Pure tensor code with no
    host reads, so ``torch.compile`` can trace it whole (``--compile``).
    """
    new_log_prob, entropy, new_value = minibatch.evaluate(policy)
    log_ratio = new_log_prob - minibatch.log_probs
    ratio = log_ratio.exp()
    advantages, returns, old_values = minibatch.advantages, minibatch.returns, minibatch.values

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


# What each minibatch step reports, in the order the update accumulates them.
UPDATE_STATS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")

# ``minibatch_step`` or a compiled twin (training/capture.py): same arguments, same result.
MinibatchStep = Callable[..., dict[str, torch.Tensor]]


def ppo_update(
    policy: ActorCritic,
    optimizer: Optimizer,
    batch: FlatBatch,
    settings: UpdateSettings,
    group: Collectives | None = None,
    step: MinibatchStep | None = None,
) -> dict[str, torch.Tensor]:
    """Run the epochs of minibatch updates; return each statistic's mean, by name.

    With several ranks (``group``), ``batch`` is this rank's shard and
    ``settings.minibatch_size`` its slice of each minibatch: advantages are
    normalised with the whole minibatch's moments and gradients averaged, so
    each step is the step one process would take over the union of the shards.
    """
    group = group or Collectives()
    device = batch.obs.device
    sums = torch.zeros((), device=device)  # [len(UPDATE_STATS)] after the first step
    minibatches = len(range(0, batch.size, settings.minibatch_size))
    epochs = 0
    for _ in range(settings.update_epochs):
        order = torch.randperm(batch.units, device=device)
        sums, epoch_kl = update_epoch(policy, optimizer, batch, order, settings, sums, group, step)
        epochs += 1
        # Optional early stop: one host read per epoch, never per step.
        if settings.target_kl is not None:  # every rank stops at the same epoch
            mean_kl = group.average_(epoch_kl / minibatches).item()  # host-sync: opt-in target_kl
            if mean_kl > settings.target_kl:
                break
    return dict(zip(UPDATE_STATS, (sums / (epochs * minibatches)).unbind(0), strict=True))


def update_epoch(
    policy: ActorCritic,
    optimizer: Optimizer,
    batch: FlatBatch,
    order: torch.Tensor,
    settings: UpdateSettings,
    sums: torch.Tensor,
    group: Collectives,
    step: MinibatchStep | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over ``batch`` in the minibatches ``order`` makes; returns
    ``sums`` plus every step's statistics, and the epoch's summed approx KL.

    Host-free and branch-free on tensor values, so a CUDA graph can replay it whole
    (written for; unmeasured on a GPU).
    """
    step = step or minibatch_step
    # One gather per field per epoch; the minibatches are then contiguous
    # slices of the shuffled copy (views), not one gather each.
    shuffled = batch.permuted(order)
    if settings.normalize_advantages:
        advantages = normalize_minibatches(shuffled.advantages, settings.minibatch_size, group)
        shuffled = replace(shuffled, advantages=advantages)
    epoch_kl = torch.zeros((), device=sums.device)
    for start in range(0, batch.size, settings.minibatch_size):
        minibatch = shuffled.rows(start, start + settings.minibatch_size)
        stats = step(policy, optimizer, minibatch, settings, group)
        sums = sums + torch.stack([stats[name] for name in UPDATE_STATS])  # one add for all
        epoch_kl += stats["approx_kl"]
    return sums, epoch_kl


def minibatch_step(
    policy: ActorCritic,
    optimizer: Optimizer,
    minibatch: FlatBatch,
    settings: UpdateSettings,
    group: Collectives | None = None,
) -> dict[str, torch.Tensor]:
    """One optimiser step on one minibatch: loss, gradients (averaged over the
    ranks), global-norm clipping, Adam, then (adaptive schedule) the learning
    rate moved by the job's KL of this minibatch. Returns the step's statistics."""
    group = group or Collectives()
    loss, stats = minibatch_loss(policy, minibatch, settings)
    optimizer.zero_grad()
    loss.backward()
    average_gradients(optimizer, group)
    stats["grad_norm"] = optimizer.clip_grad_norm_(settings.max_grad_norm)
    optimizer.step()
    if settings.adaptive_kl is not None:  # every rank moves its rate by the same KL
        job_kl = group.average_(stats["approx_kl"].clone())
        assert isinstance(optimizer, DeviceAdam), "an adaptive rate lives on the device"
        adapt_learning_rate_(optimizer.lr, job_kl, settings.adaptive_kl)
    return stats


def normalize_minibatches(
    advantages: torch.Tensor, minibatch_size: int, group: Collectives
) -> torch.Tensor:
    """Each minibatch's advantages normalised to mean 0, std 1 by the moments of
    that minibatch over every rank (one all-gather per epoch; none in one process,
    where this is exactly ``(a - a.mean()) / (a.std() + 1e-8)`` per minibatch)."""
    job = group.gather_all(advantages.view(-1, minibatch_size))  # [world, n_minibatches, mb]
    normalized = torch.empty_like(advantages)
    for i, (own, out) in enumerate(
        zip(advantages.split(minibatch_size), normalized.split(minibatch_size), strict=True)
    ):
        union = job[:, i].reshape(-1)  # [world * mb]: this minibatch over the job
        torch.div(own - union.mean(), union.std() + 1e-8, out=out)
    return normalized
