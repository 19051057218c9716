"""Several independent categorical actions at once (gymnasium's ``MultiDiscrete``).

The actor's output is one block of logits per action component, side by side
(``[B, sum(nvec)]``); each block is a categorical distribution of its own, so
log-probabilities and entropies add up over the blocks. Sampling is
Gumbel-max per block, like the single categorical policy.
"""

from __future__ import annotations

import torch


def _log_probs(logits: torch.Tensor, nvec: tuple[int, ...]) -> list[torch.Tensor]:
    return [block.log_softmax(dim=-1) for block in logits.split(nvec, dim=-1)]


def sample(
    logits: torch.Tensor, noise: torch.Tensor, nvec: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(action [B, k] int64, log_prob [B])`` with Gumbel ``noise`` ``[B, sum(nvec)]``."""
    blocks = _log_probs(logits, nvec)
    actions = [
        torch.argmax(block + block_noise, dim=-1)
        for block, block_noise in zip(blocks, noise.split(nvec, dim=-1), strict=True)
    ]
    action = torch.stack(actions, dim=-1)
    return action, _gather(blocks, action)


def log_prob(logits: torch.Tensor, action: torch.Tensor, nvec: tuple[int, ...]) -> torch.Tensor:
    """``[B]`` log-probability of stored actions ``[B, k]``."""
    return _gather(_log_probs(logits, nvec), action.long())


def entropy(logits: torch.Tensor, nvec: tuple[int, ...]) -> torch.Tensor:
    """``[B]``: the sum of the blocks' entropies."""
    return sum(-(block.exp() * block).sum(-1) for block in _log_probs(logits, nvec))


def mode(logits: torch.Tensor, nvec: tuple[int, ...]) -> torch.Tensor:
    """``[B, k]``: the most likely value of every component."""
    return torch.stack([block.argmax(dim=-1) for block in logits.split(nvec, dim=-1)], dim=-1)


def _gather(blocks: list[torch.Tensor], action: torch.Tensor) -> torch.Tensor:
    picked = [
        block.gather(-1, component.unsqueeze(-1)).squeeze(-1)
        for block, component in zip(blocks, action.unbind(-1), strict=True)
    ]
    return torch.stack(picked, dim=-1).sum(-1)
