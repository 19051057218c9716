"""The PPO update with a hand-written backward, a speed trick beside the plain
``ppo.ppo_update`` it must equal (at float rounding).

In the plain update a minibatch step is ~230 dispatched ops: the forward, the
loss, autograd's backward of each (with its bookkeeping: views, detaches,
``expand``, ``where``), zeroing, clipping and Adam. Here the same step is ~75:

- the actor and critic forward as one (``fused_policy``: a ``baddbmm`` per
  hidden layer), their activations kept for the backward;
- the loss's gradient with respect to the logits and the value written out
  (clipped surrogate, clipped value loss, entropy bonus): ``loss_gradients``;
- the backward of the MLPs by hand, each gradient written in place into the
  flat optimiser's gradient buffer (``out=``), so nothing is zeroed;
- clipping folded into one ``torch._fused_adam_`` (``FlatAdam.fused_step``);
- the batch's fields packed into one ``[N, obs + 4]`` matrix, gathered once
  per epoch and cut into minibatches by one ``unbind``.

What it covers is ``fused_policy``'s policy family, a feed-forward batch
without action masks, ``FlatAdam`` (not the ``DeviceAdam`` of compiled,
graphed or adaptive-rate runs) and minibatches of at most ``FUSED_MAX_ROWS``
rows, where dispatch is what a step costs; the rest runs ``ppo_update``.
tests/training/fast/test_fused.py holds it to the plain path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from esper.training.distributed.collectives import Collectives, average_gradients
from esper.training.fast.fused_policy import (
    ForwardViews,
    PairedLayers,
    heads,
    hidden_layers,
    paired,
)
from esper.training.fast.optimizer import FlatAdam
from esper.training.ppo import (
    UPDATE_STATS,
    FlatBatch,
    MinibatchStep,
    UpdateSettings,
    normalize_minibatches,
    ppo_update,
)

# Above this many rows per minibatch the plain update is as fast or faster: the
# arithmetic, not dispatch, is the cost there, and the fused step's batched
# matmuls over [2, rows, 64] lose to the plain ones (2-core EPYC, one thread,
# the update alone in one process, plain against fused alternated: 1.5x faster
# at 128 envs' 1,024 rows, level at 1,024 envs' 8,192, ~1.2x slower at 4,096
# envs' 32,768).
FUSED_MAX_ROWS = 16_384

# Each statistic's sign and factor on the mean of its per-sample column
# (policy loss = -mean(objective), value loss = mean(term) / 2, entropy = -mean(p log p)).
_STAT_SCALE = (-1.0, 0.5, -1.0, 1.0, 1.0)


@dataclass(frozen=True)
class UpdateViews:
    """The forward's views and the gradient buffer's, paired the same way."""

    forward: ForwardViews
    grads: PairedLayers
    grads_first_t: torch.Tensor  # [2, in, out]: the first layer's weight gradient, transposed
    zero: torch.Tensor  # a 0-d zero: ``where``'s other side without a scalar_tensor op


def update_views(policy: Any, optimizer: Any, batch: FlatBatch) -> UpdateViews | None:
    """The views when the fused update covers this batch; None for the plain path."""
    fused = getattr(policy, "_fused", None)
    if fused is None or type(optimizer) is not FlatAdam or type(batch) is not FlatBatch:
        return None
    if batch.action_masks is not None or batch.obs.dtype != torch.float32:
        return None
    forward = fused.views(policy.actor, policy.critic)
    covered = {id(p) for p in policy.parameters()}
    if forward is None or covered != {id(p) for p in optimizer.params}:
        return None  # every gradient must be written here: nothing is zeroed

    paired_grads = paired(_grads(policy.actor), _grads(policy.critic))
    if paired_grads is None:
        return None
    zero = torch.zeros((), device=batch.obs.device)
    return UpdateViews(forward, paired_grads, paired_grads.weights_t[0], zero)


def _grads(net: torch.nn.Sequential) -> list[torch.Tensor]:
    """``[w0.grad, b0.grad, w1.grad, ...]`` of a network's linear layers."""
    layers = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    return [t.grad for layer in layers for t in (layer.weight, layer.bias)]


def as_columns(batch: FlatBatch) -> tuple[torch.Tensor, ...]:
    """``(obs, old log-prob, old value, advantage, return)``, the last four ``[N, 1]``."""
    tail = (batch.log_probs, batch.values, batch.advantages, batch.returns)
    return (batch.obs, *(t.unsqueeze(1) for t in tail))


def fused_update(
    policy: Any,
    optimizer: Any,
    batch: FlatBatch,
    settings: UpdateSettings,
    group: Collectives | None = None,
    step: MinibatchStep | None = None,
) -> dict[str, torch.Tensor]:
    """``ppo_update``'s epochs of minibatch steps, fused where covered (same
    arguments, same statistics); the plain update everywhere else."""
    views = None if step is not None else update_views(policy, optimizer, batch)
    if (
        views is None
        or settings.adaptive_kl is not None
        or settings.minibatch_size > FUSED_MAX_ROWS
    ):
        return ppo_update(policy, optimizer, batch, settings, group, step)
    group = group or Collectives()
    device = batch.obs.device
    packed = torch.cat(as_columns(batch), dim=1)  # [N, obs + 4]
    actions = batch.actions.view(-1, 1)
    sums = torch.zeros(len(UPDATE_STATS), device=device)
    epoch_sums = torch.zeros(len(UPDATE_STATS), device=device)
    minibatches = batch.size // settings.minibatch_size
    epochs = 0
    for _ in range(settings.update_epochs):
        order = torch.randperm(batch.units, device=device)
        epoch_sums.zero_()
        _epoch(views, optimizer, packed, actions, order, settings, epoch_sums, group)
        sums.add_(epoch_sums)
        epochs += 1
        if settings.target_kl is not None:  # as ppo_update: one host read per epoch
            epoch_kl = group.average_(epoch_sums[3] / minibatches)
            if epoch_kl.item() > settings.target_kl:  # host-sync: opt-in target_kl
                break
    scale = torch.tensor((*_STAT_SCALE, 1.0), device=device) / (epochs * minibatches)
    return dict(zip(UPDATE_STATS, sums.mul_(scale).unbind(0), strict=True))


def _epoch(
    views: UpdateViews,
    optimizer: FlatAdam,
    packed: torch.Tensor,
    actions: torch.Tensor,
    order: torch.Tensor,
    settings: UpdateSettings,
    sums: torch.Tensor,
    group: Collectives,
) -> None:
    """One pass over the batch in ``order``; each step's statistics added to ``sums``."""
    size = settings.minibatch_size
    shuffled = packed.index_select(0, order)  # one gather per epoch for every field
    if settings.normalize_advantages:
        # a contiguous copy: the moments' rounding then is the plain path's, in
        # one process as in a group (whose all-gather copies it anyway)
        advantages = shuffled[:, -2]
        advantages.copy_(normalize_minibatches(advantages.contiguous(), size, group))
    width = packed.shape[1]
    rows = shuffled.view(-1, size, width).unbind(0)
    chosen = actions.index_select(0, order).view(-1, size, 1).unbind(0)
    split = (width - 4, 1, 1, 1, 1)
    loss_sums, norm_sum = sums[:5], sums[5]
    for minibatch, minibatch_actions in zip(rows, chosen, strict=True):
        columns = minibatch.split(split, dim=1)
        stats, grad_norm = _step(views, optimizer, columns, minibatch_actions, settings, group)
        loss_sums.add_(stats)
        norm_sum.add_(grad_norm)


def _step(
    views: UpdateViews,
    optimizer: FlatAdam,
    columns: tuple[torch.Tensor, ...],
    actions: torch.Tensor,
    settings: UpdateSettings,
    group: Collectives,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step: gradients, the job's average, clipped Adam. Returns
    the five loss statistics' column means and the gradient norm before clipping."""
    stats = minibatch_gradients(views, columns, actions, settings)
    average_gradients(optimizer, group)
    grad_norm = torch.linalg.vector_norm(optimizer.flat_grad)  # the padding is zero
    # clip_grad_norm_'s factor min(1, max / (norm + 1e-6)), as a divisor
    optimizer.fused_step(grad_norm.add(1e-6).div_(settings.max_grad_norm).clamp_(min=1.0))
    return stats, grad_norm


@torch.no_grad()
def minibatch_gradients(
    views: UpdateViews,
    columns: tuple[torch.Tensor, ...],
    actions: torch.Tensor,
    settings: UpdateSettings,
) -> torch.Tensor:
    """The loss's gradient written into the gradient buffer (every parameter's),
    from ``columns`` = ``(obs [B, in], old log-prob, old value, advantage,
    return)`` (each ``[B, 1]``, the advantages already normalised) and
    ``actions [B, 1]``. Returns the per-sample statistics' means ``[5]``."""
    obs, old_log_prob, old_value, advantage, ret = columns
    hidden = hidden_layers(views.forward, obs)
    logits, value = heads(views.forward, hidden[-1])
    g_logits, g_value, stats = loss_gradients(
        logits, value, actions, old_log_prob, old_value, advantage, ret, settings, views.zero
    )
    _backward(views, hidden, g_logits, g_value)
    return stats


def loss_gradients(
    logits: torch.Tensor,
    value: torch.Tensor,
    actions: torch.Tensor,
    old_log_prob: torch.Tensor,
    old_value: torch.Tensor,
    advantage: torch.Tensor,
    ret: torch.Tensor,
    settings: UpdateSettings,
    zero: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``ppo.minibatch_loss``'s gradient with respect to the logits ``[B, n]`` and
    the value ``[B, 1]``, and its statistics' column means ``[5]``.

    With ``p`` the probabilities, ``u`` the surrogate's derivative with respect
    to the log-probability (``A * ratio`` where the unclipped term is the
    minimum, else 0) and ``H`` the entropy: ``dL/dlogits = (p (u + c_ent
    (log p + H)) - u onehot) / B``; ``dL/dv = c_vf (v - R) / B`` (or the clipped
    error where the clipped value term is the larger and the clip is not active).
    """
    n = logits.shape[0]
    log_probs = torch.log_softmax(logits, dim=1)
    probs = log_probs.exp()
    neg_entropy = (probs * log_probs).sum(1, keepdim=True)
    log_ratio = log_probs.gather(1, actions) - old_log_prob
    ratio = log_ratio.exp()
    surrogate = advantage * ratio
    clipped = advantage * ratio.clamp(1 - settings.clip_coef, 1 + settings.clip_coef)
    objective = torch.minimum(surrogate, clipped)
    chosen = torch.where(surrogate <= clipped, surrogate, zero)
    g_logits = probs * torch.add(chosen, log_probs - neg_entropy, alpha=settings.ent_coef)
    g_logits.scatter_add_(1, actions, chosen.neg()).mul_(1.0 / n)
    value_term, g_value = _value_terms(value, old_value, ret, settings, zero)
    g_value = g_value.mul(settings.vf_coef / n)
    ratio_change = ratio - 1
    clip_hit = ratio_change.abs() > settings.clip_coef
    columns = (objective, value_term, neg_entropy, ratio_change - log_ratio, clip_hit)
    # stacked as rows [5, B, 1] (contiguous row means), not as columns [B, 5]
    return g_logits, g_value, torch.stack(columns).mean((1, 2))


def _value_terms(
    value: torch.Tensor,
    old_value: torch.Tensor,
    ret: torch.Tensor,
    settings: UpdateSettings,
    zero: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-sample value term (twice the loss's) and its half-derivative."""
    error = value - ret
    if not settings.clip_value_loss:
        return error.square(), error
    change = value - old_value
    clipped_change = change.clamp(-settings.clip_coef, settings.clip_coef)
    clipped_error = (old_value + clipped_change) - ret
    square, clipped_square = error.square(), clipped_error.square()
    # where the clipped error is the larger, it carries the gradient unless clipped
    clipped_grad = torch.where(clipped_change == change, clipped_error, zero)
    grad = torch.where(square >= clipped_square, error, clipped_grad)
    return torch.maximum(square, clipped_square), grad


def _backward(
    views: UpdateViews, hidden: list[torch.Tensor], g_logits: torch.Tensor, g_value: torch.Tensor
) -> None:
    """The MLPs' backward by hand, every gradient written in place (``out=``)."""
    grads, params = views.grads, views.forward.params
    actor_h, critic_h = hidden[-1].unbind(0)
    torch.mm(g_logits.t(), actor_h, out=grads.actor_weight)
    torch.sum(g_logits, 0, out=grads.actor_bias)
    torch.mm(g_value.t(), critic_h, out=grads.critic_weight)
    torch.sum(g_value, 0, out=grads.critic_bias)
    g_out = torch.stack((g_logits @ params.actor_weight, g_value @ params.critic_weight))
    for layer in reversed(range(len(params.weights))):
        g_pre = torch.ops.aten.tanh_backward(g_out, hidden[layer + 1])
        if layer == 0:  # (x.T g).T, a shape MKL runs well on narrow inputs (NarrowInputLinear)
            torch.bmm(hidden[0].transpose(1, 2), g_pre, out=views.grads_first_t)
        else:
            torch.bmm(g_pre.transpose(1, 2), hidden[layer], out=grads.weights[layer])
            g_out = torch.bmm(g_pre, params.weights[layer])
        torch.sum(g_pre, 1, out=grads.biases[layer])
