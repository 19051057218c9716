"""What ``grow-mlp`` reports about its batches and episodes, and the accumulators behind it.

Kept apart from ``env.py``: the step only adds to a tensor of totals (no host
read); this module names those totals and turns them into statistics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from esper.envs.base import TaskStatistic
from esper.envs.growth import lifecycle
from esper.envs.growth.lifecycle import BLENDING, HOLDING, TRAINING
from esper.envs.growth.observation import Fields, score
from esper.envs.growth.settings import GrowthSettings

# The per-batch statistics' accumulators, in order (see ``STATISTICS``).
TOTALS = (
    "final_accuracy", "episodes", "params", "steps",
    "training", "blending", "holding", "fossilized", "embargoed",
    "germinations", "fossilizations", "prunes", "contribution", "contributors",
)  # fmt: skip
MOVES = slice(9, 12)  # germinations, fossilizations, prunes: added by the step's moves


# What ``batch_statistics`` reports; the moves are counts (summed over ranks), the
# rest means, each weighted by its own denominator.
_COUNTS = ("germinations", "fossilizations", "prunes")
STATISTICS = tuple(
    TaskStatistic(name, description, "count" if name in _COUNTS else "mean")
    for name, description in (
        ("final_val_accuracy", "mean validation accuracy of the hosts whose episode ended"),
        ("params_vs_budget", "mean parameters used / param_budget over the batch's steps"),
        ("seeds_training", "seeds in isolation per host, at episode end"),
        ("seeds_blending", "seeds blending in per host, at episode end"),
        ("seeds_holding", "seeds at full strength, not yet fossilized, per host at episode end"),
        ("seeds_fossilized", "fossilized seeds per host, at episode end"),
        ("seeds_embargoed", "slots resting after a prune per host, at episode end"),
        ("germinations", "seeds germinated in the batch, all hosts together"),
        ("fossilizations", "seeds fossilized in the batch, all hosts together"),
        ("prunes", "seeds pruned in the batch, all hosts together"),
        (
            "seed_contribution",
            "mean counterfactual accuracy contribution of blending and holding seeds",
        ),
    )
)


# What ``episode_values`` reports for each finished episode (``esper eval``'s table).
EPISODE_STATISTICS = tuple(
    TaskStatistic(name, description)
    for name, description in (
        ("final_score", "score at the episode's end: val accuracy - rent * params / budget"),
        ("final_accuracy", "validation accuracy of the host at the episode's end"),
        ("final_params", "parameters of the host and its live seeds at the episode's end"),
    )
)


def count_step(
    totals: torch.Tensor,
    stage: torch.Tensor,
    params: torch.Tensor,
    contribution: torch.Tensor,
    ended: torch.Tensor,
    val_accuracy: torch.Tensor,
    param_budget: int,
) -> None:
    """Adds one step's numbers to ``totals`` (laid out as ``TOTALS``), in place, no host read."""
    ended_f = ended.to(torch.float32)
    stages = F.one_hot(stage, len(lifecycle.STAGES)).to(torch.float32)  # [n, K, 6]
    per_stage = (stages.sum(1) * ended_f[:, None]).sum(0)  # over the hosts that ended
    shown = ((stage == BLENDING) | (stage == HOLDING)).float()
    totals[:4] += torch.stack(
        (
            (val_accuracy * ended_f).sum(),
            ended_f.sum(),
            (params / param_budget).sum(),
            torch.ones_like(ended_f).sum(),
        )
    )
    totals[4:9] += per_stage[TRAINING:]
    totals[12:] += torch.stack(((contribution * shown).sum(), shown.sum()))


def batch_statistics(totals: torch.Tensor) -> dict[str, Any]:
    """``STATISTICS`` from ``totals``: each mean as its total and weight, so ranks
    combine exactly."""
    t = dict(zip(TOTALS, totals.clone().unbind(0), strict=True))
    episodes = t["episodes"]
    return {
        "final_val_accuracy": (t["final_accuracy"], episodes),
        "params_vs_budget": (t["params"], t["steps"]),
        **{f"seeds_{stage}": (t[stage], episodes) for stage in lifecycle.STAGES[1:]},
        "germinations": t["germinations"],
        "fossilizations": t["fossilizations"],
        "prunes": t["prunes"],
        "seed_contribution": (t["contribution"], t["contributors"]),
    }


def episode_values(final_obs: torch.Tensor, s: GrowthSettings) -> torch.Tensor:
    """``EPISODE_STATISTICS`` from the last observation: its newest validation
    accuracy and its parameters / budget (the score is made of those two)."""
    fields = Fields(s)
    accuracy = final_obs[:, fields.val_accuracy]
    params = (final_obs[:, fields.params] * s.param_budget).round()
    return torch.stack((score(accuracy, params, s), accuracy, params), dim=1)
