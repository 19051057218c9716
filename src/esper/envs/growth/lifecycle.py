"""A seed's stages and how one epoch moves them, for every slot of every host.

::

    DORMANT --GERMINATE--> TRAINING --ADVANCE--> BLENDING --(alpha reaches 1)--> HOLDING
       ^                     |                      |                            |   |
       |                     +--------PRUNE---------+------------PRUNE-----------+   FOSSILIZE
       +---(embargo over)--- EMBARGOED <-----------------------------------------+   v
                                                                                  FOSSILIZED

- TRAINING: the seed learns from the host's error in isolation; the host's
  output is unchanged (``alpha = 0``, ``learn = 1``).
- BLENDING: ``alpha`` ramps by ``1 / blend_epochs`` an epoch; at 1 the seed is HOLDING.
- HOLDING: full strength, still removable.
- FOSSILIZED: permanent; the slot is never free again this episode.
- EMBARGOED: a pruned seed's slot, weights zeroed, resting ``embargo_epochs``
  epochs before it is DORMANT again.

Stages are integers in a ``[n, K]`` tensor; every transition is a
``torch.where``, never a Python branch on a value.
"""

from __future__ import annotations

import torch

DORMANT, TRAINING, BLENDING, HOLDING, FOSSILIZED, EMBARGOED = range(6)
STAGES = ("dormant", "training", "blending", "holding", "fossilized", "embargoed")
# The letters of the compact row (T2 B1 H0 F3 P1): the stages a seed is in, pruned ones as P.
STAGE_LETTERS = {
    "training": "T",
    "blending": "B",
    "holding": "H",
    "fossilized": "F",
    "embargoed": "P",
}


def live(stage: torch.Tensor) -> torch.Tensor:
    """Slots holding a seed (its weights count against the budget)."""
    return (stage >= TRAINING) & (stage <= FOSSILIZED)


def removable(stage: torch.Tensor) -> torch.Tensor:
    """Slots whose seed may still be pruned."""
    return (stage >= TRAINING) & (stage <= HOLDING)


def tick(
    stage: torch.Tensor,
    alpha: torch.Tensor,
    age: torch.Tensor,
    embargo: torch.Tensor,
    blend_epochs: int,
) -> None:
    """One epoch passes, in place: blending alphas ramp (a full one holds),
    embargoes count down (an ended one frees the slot), live seeds age."""
    blending = stage == BLENDING
    alpha.add_(blending.to(alpha.dtype) / blend_epochs).clamp_(max=1.0)
    done_blending = blending & (alpha >= 1.0 - 1e-6)
    alpha.masked_fill_(done_blending, 1.0)
    stage.masked_fill_(done_blending, HOLDING)
    embargoed = stage == EMBARGOED
    embargo.sub_(embargoed.to(embargo.dtype)).clamp_(min=0)
    stage.masked_fill_(embargoed & (embargo <= 0), DORMANT)
    age.add_(live(stage).to(age.dtype))


def gates(stage: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, learn)`` of each slot for the host's forward and backward passes."""
    learn = torch.where(stage == TRAINING, torch.ones_like(alpha), alpha)
    return alpha, learn
