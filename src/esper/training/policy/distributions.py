"""Several independent categorical actions at once (gymnasium's ``MultiDiscrete``).

The actor's output is one block of logits per action component, side by side
(``[B, sum(nvec)]``); each block is a categorical distribution of its own, so
log-probabilities and entropies add up over the blocks. Sampling is
Gumbel-max per block, like the single categorical policy.

An action mask (``[B, sum(nvec)]`` bool, the logits' layout) is applied to the
logits before any of this (``masked``): a forbidden action's logit becomes
``MASKED_LOGIT``, so it is never sampled, and its probability is exactly 0 in
log-probabilities and entropies, which are then over the allowed actions only.
"""

from __future__ import annotations

import torch

# A forbidden action's logit: sb3-contrib's value. Finite, so a probability of
# exactly 0 times its log-probability is 0 in the entropy (not NaN, as -inf
# gives), and a row with one allowed action has entropy 0; Gumbel noise
# (at most about 17 in float32) never lifts it above an allowed action.
MASKED_LOGIT = -1e8


def masked(logits: torch.Tensor, action_mask: torch.Tensor | None) -> torch.Tensor:
    """``logits`` with the actions ``action_mask`` forbids set to ``MASKED_LOGIT``
    (one op; none without a mask). Works for one block or several side by side."""
    if action_mask is None:
        return logits
    return torch.where(action_mask, logits, MASKED_LOGIT)


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
