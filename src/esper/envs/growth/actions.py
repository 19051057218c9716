"""The growth task's actions, one flat ``Discrete`` with a mask of the legal ones.

Action ``a`` of ``1 + K*B + 3*K`` (``K`` slots, ``B`` blueprints):

- ``0``: WAIT;
- ``1 + k*B + b``: GERMINATE blueprint ``b`` in slot ``k`` (slot DORMANT, and
  the host's parameters plus the blueprint's stay within ``param_budget``);
- ``1 + K*B + k``: ADVANCE slot ``k`` (TRAINING -> BLENDING);
- ``1 + K*B + K + k``: FOSSILIZE slot ``k`` (HOLDING -> FOSSILIZED);
- ``1 + K*B + 2K + k``: PRUNE slot ``k`` (TRAINING, BLENDING or HOLDING -> EMBARGOED).

Flat rather than factored heads (slot, operation, blueprint): with 3 slots
the whole product is 19 actions, a mask over them states every rule exactly
(a factored mask could not forbid a germination by blueprint *and* slot
jointly), and the trainer's masked categorical handles it as is. An illegal
action reaching ``step`` (an unmasked policy) does nothing, as WAIT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esper.envs.growth.lifecycle import DORMANT, HOLDING, TRAINING, removable
from esper.envs.growth.settings import GrowthSettings

WAIT, GERMINATE, ADVANCE, FOSSILIZE, PRUNE = range(5)
KINDS = ("wait", "germinate", "advance", "fossilize", "prune")


@dataclass(frozen=True)
class ActionTable:
    """Per action: its kind, slot and blueprint (0 where it has none), as tensors."""

    kind: torch.Tensor
    slot: torch.Tensor
    blueprint: torch.Tensor

    @property
    def count(self) -> int:
        return self.kind.shape[0]


def action_count(s: GrowthSettings) -> int:
    return 1 + s.slots * len(s.blueprints) + 3 * s.slots


def action_table(s: GrowthSettings, device: torch.device) -> ActionTable:
    rows = [(WAIT, 0, 0)]
    rows += [(GERMINATE, k, b) for k in range(s.slots) for b in range(len(s.blueprints))]
    for kind in (ADVANCE, FOSSILIZE, PRUNE):
        rows += [(kind, k, 0) for k in range(s.slots)]
    kind, slot, blueprint = torch.tensor(rows, device=device).unbind(1)
    return ActionTable(kind, slot, blueprint)


def describe(action: int, s: GrowthSettings) -> str:
    """``germinate(1, block-8)``: an action's meaning, for docs and videos."""
    table = action_table(s, torch.device("cpu"))
    kind, slot, blueprint = (int(t[action]) for t in (table.kind, table.slot, table.blueprint))
    if kind == WAIT:
        return "wait"
    if kind == GERMINATE:
        return f"germinate({slot}, {s.blueprints[blueprint]})"
    return f"{KINDS[kind]}({slot})"


def legal_actions(
    stage: torch.Tensor, params_used: torch.Tensor, blueprint_params: torch.Tensor, budget: int
) -> torch.Tensor:
    """``[n, actions]`` bool: the moves each host allows. ``stage [n, K]``,
    ``params_used [n]``, ``blueprint_params [B]``."""
    n = stage.shape[0]
    fits = params_used.unsqueeze(1) + blueprint_params.unsqueeze(0) <= budget  # [n, B]
    germinate = (stage == DORMANT).unsqueeze(2) & fits.unsqueeze(1)  # [n, K, B]
    return torch.cat(
        (
            torch.ones(n, 1, dtype=torch.bool, device=stage.device),
            germinate.flatten(1),
            stage == TRAINING,
            stage == HOLDING,
            removable(stage),
        ),
        dim=1,
    )
