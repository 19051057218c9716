"""Adam over ``torch._foreach`` ops, without ``torch.optim``.

Numerically the same update as ``torch.optim.Adam`` (no weight decay, no
amsgrad; tests/training/test_adam.py checks it step by step). It exists because
any ``torch.optim`` optimizer imports ``torch._dynamo`` on first use, which adds
2.5 s to every process start on a 2-core machine (9 s without a bytecode cache)
and ~100 MB of memory: too much for a trainer whose CartPole run solves in
seconds and whose memory budget is 1 GB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


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
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        self.steps += 1
        # Like torch.optim, parameters without a gradient are left untouched.
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        exp_avg = [self.exp_avg[i] for i in live]
        exp_avg_sq = [self.exp_avg_sq[i] for i in live]
        torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2)
        bias1 = 1 - beta1**self.steps
        bias2 = 1 - beta2**self.steps
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, math.sqrt(bias2))
        torch._foreach_add_(denom, self.eps)
        step_size = self.param_groups[0]["lr"] / bias1
        torch._foreach_addcdiv_(params, exp_avg, denom, -step_size)

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
