"""What the policy sees of a host, and the score its reward is the change of.

Every entry is in a small stated range (docs/growth.md lists them):

- epoch progress ``elapsed / max_epochs`` in [0, 1];
- the last ``HISTORY`` epochs (newest first) of train loss, train accuracy,
  validation loss and validation accuracy; losses divided by ``log(classes)``
  (1 is chance), accuracies in [0, 1];
- parameters used / ``param_budget`` in [0, 1];
- per slot: its stage one-hot (6), alpha in [0, 1], age / ``max_epochs``,
  the seed's counterfactual contribution in [-1, 1] and its blueprint one-hot.

The score is ``val_accuracy - rent * params / param_budget``; the reward of
a step is the change of the score over it, so an episode's return is its last
score minus its first and no path of moves can earn more than where it ends.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from esper.envs.growth.lifecycle import STAGES, live
from esper.envs.growth.settings import GrowthSettings

HISTORY = 3  # epochs of losses and accuracies in each observation
SCALARS = 4  # train loss, train accuracy, validation loss, validation accuracy
REWARD_MODE = "score-difference"  # reward = change of (val accuracy - rent * params / budget)


def slot_width(s: GrowthSettings) -> int:
    return len(STAGES) + 3 + len(s.blueprints)


def observation_size(s: GrowthSettings) -> int:
    return 1 + HISTORY * SCALARS + 1 + s.slots * slot_width(s)


def learning_row(
    train_loss: torch.Tensor,
    train_accuracy: torch.Tensor,
    val_loss: torch.Tensor,
    val_accuracy: torch.Tensor,
    s: GrowthSettings,
) -> torch.Tensor:
    """``[n, SCALARS]``: one epoch's entry of the history, normalised."""
    chance = math.log(s.classes)
    return torch.stack((train_loss / chance, train_accuracy, val_loss / chance, val_accuracy), 1)


def params_used(
    stage: torch.Tensor, blueprint: torch.Tensor, blueprint_params: torch.Tensor, s: GrowthSettings
) -> torch.Tensor:
    """``[n]``: the bare host's parameters plus its live seeds'."""
    seeds = (blueprint_params[blueprint] * live(stage).to(blueprint_params.dtype)).sum(1)
    return seeds + s.host_params


def score(val_accuracy: torch.Tensor, params: torch.Tensor, s: GrowthSettings) -> torch.Tensor:
    return val_accuracy - s.rent * params / s.param_budget


def observe(
    progress: torch.Tensor,
    history: torch.Tensor,
    params: torch.Tensor,
    stage: torch.Tensor,
    alpha: torch.Tensor,
    age: torch.Tensor,
    contribution: torch.Tensor,
    blueprint: torch.Tensor,
    s: GrowthSettings,
) -> torch.Tensor:
    """``[n, observation_size(s)]`` float32."""
    n = progress.shape[0]
    seeded = live(stage).unsqueeze(2).to(alpha.dtype)
    slots = torch.cat(
        (
            F.one_hot(stage, len(STAGES)).to(alpha.dtype),
            alpha.unsqueeze(2),
            (age / s.max_epochs).unsqueeze(2),
            contribution.unsqueeze(2),
            F.one_hot(blueprint, len(s.blueprints)).to(alpha.dtype) * seeded,
        ),
        dim=2,
    )
    return torch.cat(
        (
            progress.unsqueeze(1),
            history.reshape(n, HISTORY * SCALARS),
            (params / s.param_budget).unsqueeze(1),
            slots.flatten(1),
        ),
        dim=1,
    )


class Fields:
    """Where each part of an observation sits, for scripted policies and probes."""

    def __init__(self, s: GrowthSettings) -> None:
        self.settings = s
        self.progress = 0
        self.val_loss = 1 + 2  # newest epoch's validation loss
        self.val_accuracy = 1 + 3
        self.params = 1 + HISTORY * SCALARS
        self.first_slot = self.params + 1

    def slot(self, obs: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
        start = self.first_slot + k * slot_width(self.settings)
        row = obs[:, start : start + slot_width(self.settings)]
        stages = len(STAGES)
        return {
            "stage": row[:, :stages].argmax(1),
            "alpha": row[:, stages],
            "age": row[:, stages + 1] * self.settings.max_epochs,
            "contribution": row[:, stages + 2],
        }
