"""Per-minibatch advantage normalisation, all minibatches in one pass."""

from __future__ import annotations

import torch

from esper.training.distributed.collectives import Collectives
from esper.training.ppo import normalize_minibatches


def test_each_minibatch_is_normalised_by_its_own_moments_bit_for_bit() -> None:
    """In one process the batched form equals the per-minibatch formula exactly:
    the update's numbers must not move when its op count does."""
    advantages = torch.randn(8 * 1024, generator=torch.Generator().manual_seed(0)) * 3 + 1
    normalized = normalize_minibatches(advantages, 1024, Collectives())
    for own, out in zip(advantages.split(1024), normalized.split(1024), strict=True):
        assert torch.equal(out, (own - own.mean()) / (own.std() + 1e-8))
