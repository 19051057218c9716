"""Small growth envs and the action numbers the tests name."""

from __future__ import annotations

import dataclasses

import torch

from esper.envs.growth import GrowMLP, GrowthSettings
from esper.envs.growth.actions import action_table

SMALL = GrowthSettings(max_epochs=8, train_size=64, val_size=64, steps_per_epoch=2)


def small_env(n: int = 3, seed: int = 0, **changes) -> GrowMLP:
    env = GrowMLP(n, seed=seed, settings=dataclasses.replace(SMALL, **changes))
    env.reset(seed=seed)
    return env


def action(env: GrowMLP, kind: int, slot: int = 0, blueprint: int = 0) -> int:
    """The action number of ``kind`` on ``slot`` (and ``blueprint`` for a germination)."""
    table = action_table(env.settings, torch.device("cpu"))
    hits = (table.kind == kind) & (table.slot == slot) & (table.blueprint == blueprint)
    return int(hits.nonzero()[0, 0])


def everyone(env: GrowMLP, a: int) -> torch.Tensor:
    return torch.full((env.num_envs,), a, dtype=torch.int64)
