"""Adam over one flat buffer of parameters, without ``torch.optim``.

Numerically the same update as ``torch.optim.Adam`` (no weight decay, no
amsgrad; tests/training/test_adam.py checks it step by step). It exists for two
reasons:

- Any ``torch.optim`` optimizer imports ``torch._dynamo`` on first use, which
  adds 2.5 s to every process start on a 2-core machine (9 s without a
  bytecode cache) and ~100 MB of memory: too much for a trainer whose CartPole
  run solves in seconds and whose memory budget is 1 GB.
- Small networks make an update step a long list of tiny ops. The parameters
  (and their gradients) are views into one contiguous buffer, so zeroing,
  global-norm clipping and the Adam arithmetic are a handful of whole-buffer
  ops instead of a handful per parameter tensor (on the CPU ``_foreach`` ops
  loop over tensors one by one).

Autograd accumulates into an existing ``.grad`` in place, so gradients land in
the flat buffer directly. A parameter that received no gradient in a step has a
zero gradient (``torch.optim`` would skip it); in PPO every parameter is used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def _views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Consecutive views of ``flat`` shaped like each tensor of ``like``."""
    views, offset = [], 0
    for tensor in like:
        views.append(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()
    return views


class Adam:
    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float,
        eps: float = 1e-8,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.eps = eps
        self.betas = betas
        self.param_groups = [{"lr": lr}]  # the learning-rate schedule writes here
        self.steps = 0
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.flat_grad = torch.zeros_like(self.flat)
        for param, value, grad in zip(
            self.params,
            _views(self.flat, self.params),
            _views(self.flat_grad, self.params),
            strict=True,
        ):
            param.data = value
            param.grad = grad
        self._exp_avg = torch.zeros_like(self.flat)
        self._exp_avg_sq = torch.zeros_like(self.flat)
        # Per-parameter views: the checkpoint format of a list of tensors.
        self.exp_avg = _views(self._exp_avg, self.params)
        self.exp_avg_sq = _views(self._exp_avg_sq, self.params)

    def zero_grad(self) -> None:
        """Zero the flat gradient (``.grad`` stays a view of it; never None)."""
        self.flat_grad.zero_()

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale every gradient by one factor so their global L2 norm is at most
        ``max_norm`` (as ``nn.utils.clip_grad_norm_``); returns the norm before."""
        total = torch.linalg.vector_norm(self.flat_grad)
        self.flat_grad.mul_((max_norm / (total + 1e-6)).clamp_(max=1.0))
        return total

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        grad = self.flat_grad
        self._exp_avg.lerp_(grad, 1 - beta1)
        self._exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias1 = 1 - beta1**self.steps
        bias2 = 1 - beta2**self.steps
        denom = self._exp_avg_sq.sqrt().div_(math.sqrt(bias2)).add_(self.eps)
        step_size = self.param_groups[0]["lr"] / bias1
        self.flat.addcdiv_(self._exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "lr": self.param_groups[0]["lr"],
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.steps = saved["steps"]
        self.param_groups[0]["lr"] = saved["lr"]
        for mine, theirs in zip(self.exp_avg, saved["exp_avg"], strict=True):
            mine.copy_(theirs)
        for mine, theirs in zip(self.exp_avg_sq, saved["exp_avg_sq"], strict=True):
            mine.copy_(theirs)
