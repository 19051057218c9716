"""The learning-rate schedule: ``PPOConfig.schedule`` is linear, constant or adaptive.

Linear and constant are set once per batch from the host (``learning_rate_at``).
Adaptive is rsl_rl's and rl_games' rule, applied after every minibatch step
from that minibatch's approx KL: well above ``desired_kl`` the rate falls by
1.5x (not below 1e-5), well below it rises by 1.5x (not above 1e-2). It runs on
the device, in place on ``DeviceAdam``'s learning-rate tensor, so no minibatch
waits for the host and a compiled or captured step replays it; the rate carries
from batch to batch and is saved with the optimiser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from esper.training.fast.optimizer import DeviceAdam, Optimizer

if TYPE_CHECKING:
    from esper.config.schema import PPOConfig

# rsl_rl's factor and bounds: how far one minibatch moves the rate, and where it stops.
ADAPTIVE_FACTOR = 1.5
ADAPTIVE_MIN_LR = 1e-5
ADAPTIVE_MAX_LR = 1e-2


def learning_rate_at(config: PPOConfig, batch_index: int) -> float | None:
    """This batch's rate: linear decay to 0 over the whole run (``max_batches``,
    or ``anneal_batches``), the constant rate, or None when the schedule is
    adaptive (the optimiser's device rate carries over from the last batch)."""
    schedule = config.schedule
    if schedule == "adaptive":
        return None
    if schedule == "constant":
        return config.learning_rate
    span = config.anneal_batches or config.max_batches
    return config.learning_rate * max(0.0, 1.0 - batch_index / span)


def set_learning_rate(optimizer: Optimizer, learning_rate: float | None) -> float | torch.Tensor:
    """Give ``optimizer`` this batch's rate and return it; with None (adaptive)
    return the optimiser's own device tensor, which the update then moves: the
    batch's one transfer reads it at the batch's end."""
    if learning_rate is None:
        assert isinstance(optimizer, DeviceAdam), "an adaptive rate lives on the device"
        return optimizer.lr
    optimizer.set_learning_rate(learning_rate)
    return learning_rate


def adapt_learning_rate_(lr: torch.Tensor, approx_kl: torch.Tensor, desired_kl: float) -> None:
    """rsl_rl's adaptive rule on ``lr`` in place, from one minibatch's ``approx_kl``
    (the job's, with several ranks): branch-free tensor ops, no host read."""
    kl = approx_kl.to(lr.dtype)
    lowered = (lr / ADAPTIVE_FACTOR).clamp(min=ADAPTIVE_MIN_LR)
    raised = (lr * ADAPTIVE_FACTOR).clamp(max=ADAPTIVE_MAX_LR)
    moved = torch.where(kl > 2 * desired_kl, lowered, torch.where(kl < desired_kl / 2, raised, lr))
    lr.copy_(moved)
