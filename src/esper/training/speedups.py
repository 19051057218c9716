"""Speed tricks of the training loop, each beside the plain torch piece it must equal.

One switch, ``PPOConfig.speedups`` (on by default), chooses between them:

=========================  ==========================================  =====================
trick                      plain twin (switch off)                     what it buys
=========================  ==========================================  =====================
``SigmoidTanh``            ``nn.Tanh``                                 1.1-1.2x, large CPU batches
``NarrowInputLinear``      ``nn.Linear``                               21 -> 4.3 ms per layer
``FlatAdam``               ``torch.optim.Adam`` + ``clip_grad_norm_``  fewer ops; no torch._dynamo
=========================  ==========================================  =====================

The figures were measured on a 2-vCPU AMD EPYC VM (AVX2, MKL, no GPU) at 4,096
CartPole envs with torch 2.15, as A/B runs in one session (docs/performance.md
has the whole table). tests/training/test_speedups.py checks each trick against
its twin. Both sides give the same parameter names and the same optimiser state
layout, so a checkpoint written with the switch on resumes with it off and the
other way round.

The fourth trick, glibc's allocator thresholds, is process-wide rather than
per run, so the ``esper`` command applies it for itself and a notebook calling
``esper.train()`` keeps its allocator as it was: see ``esper.process``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import nn

# --- tanh ------------------------------------------------------------------

# Below this many elements torch.tanh's fixed cost wins; above it its per-element
# cost does (2 CPU threads: 45 vs 57 us at 256 x 64, 5.0 vs 2.5 ms at 32,768 x 64).
SIGMOID_TANH_MIN_ELEMENTS = 65_536


def _tanh_via_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``2 sigmoid(2x) - 1``: one allocation, then in-place ops."""
    return x.mul(2.0).sigmoid_().mul_(2.0).sub_(1.0)


class _SigmoidTanhFunction(torch.autograd.Function):
    """``tanh(x) = 2 sigmoid(2x) - 1`` forward, tanh's own backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _tanh_via_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class SigmoidTanh(nn.Module):
    """``nn.Tanh`` computed as ``2 sigmoid(2x) - 1`` on CPU tensors of 65,536+ elements.

    torch's CPU ``tanh`` kernel costs ~2.5x its ``sigmoid`` per element, and
    the hidden-layer tanh was the largest item (~24%) of the update's profile.
    Measured: 1.2x on the rollout and ~1.1x on the update at 4,096 envs.
    Smaller tensors (the whole default CartPole run) and other devices keep
    ``torch.tanh``: there the sigmoid form's four ops cost more than one call.
    Absolute error against ``torch.tanh`` is below 3e-7.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.numel() < SIGMOID_TANH_MIN_ELEMENTS:
            return torch.tanh(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _SigmoidTanhFunction.apply(x)
        return _tanh_via_sigmoid(x)


def tanh(fast: bool) -> nn.Module:
    return SigmoidTanh() if fast else nn.Tanh()


# --- the first layer -------------------------------------------------------


class _NarrowInputLinearFunction(torch.autograd.Function):
    """``x @ W.T + b`` whose weight gradient is computed as ``(x.T @ g).T``."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        grad_x = grad @ weight if ctx.needs_input_grad[0] else None
        return grad_x, torch.mm(x.t(), grad).t(), grad.sum(0)


class NarrowInputLinear(nn.Linear):
    """``nn.Linear`` for a layer with fewer inputs than outputs (the first layer
    on low-dimensional observations), with a faster weight gradient.

    Autograd computes the weight gradient as ``g.T @ x``, a
    ``[n_out, B] @ [B, n_in]`` product that MKL runs at 1.0-1.7 GFLOP/s when
    ``n_in`` is a handful of features. ``(x.T @ g).T`` is the same sum in a
    shape MKL runs well: 4.3 instead of 21 ms per 65,536-row minibatch (4 -> 64),
    and the summation is closer to float64. Same values, same parameters.
    Outside training on 2-D batches it is plain ``nn.Linear``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and torch.is_grad_enabled() and self.weight.requires_grad:
            return _NarrowInputLinearFunction.apply(x, self.weight, self.bias)
        return super().forward(x)


def linear(n_in: int, n_out: int, fast: bool) -> nn.Linear:
    return NarrowInputLinear(n_in, n_out) if fast and n_in < n_out else nn.Linear(n_in, n_out)


# --- the optimiser ---------------------------------------------------------


class Optimizer(Protocol):
    """What the update needs of an optimiser; ``FlatAdam`` and ``PlainAdam`` both fit.

    ``state_dict`` is the checkpoint's format, the same for both:
    ``{"steps", "lr", "exp_avg": [per parameter], "exp_avg_sq": [per parameter]}``.
    """

    param_groups: list[dict[str, Any]]
    params: list[nn.Parameter]

    def zero_grad(self) -> None: ...
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor: ...
    def step(self) -> None: ...
    def reduce_gradients(self, reduce: Callable[[torch.Tensor], object]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, saved: dict[str, Any]) -> None: ...


def _views(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    """Consecutive views of ``flat`` shaped like each tensor of ``like``."""
    views, offset = [], 0
    for tensor in like:
        views.append(flat[offset : offset + tensor.numel()].view_as(tensor))
        offset += tensor.numel()
    return views


class FlatAdam:
    """``torch.optim.Adam`` (no weight decay, no amsgrad) over one flat buffer.

    The parameters are views of ``flat`` and their ``.grad`` views of
    ``flat_grad`` (autograd accumulates into an existing ``.grad`` in place), so
    zeroing, global-norm clipping and the Adam arithmetic are about 8
    whole-buffer ops, where ``torch.optim`` on the CPU loops over the parameter
    tensors a few ops each. It also avoids ``torch.optim``'s import of
    ``torch._dynamo``: 2.5 s and ~100 MB per process on the 2-core VM, for a
    trainer whose CartPole run solves in seconds. Measured: updates ~10% faster
    at 32 envs (inside that machine's noise).

    ``flat_grad`` holds every gradient in one tensor, in ``params`` order:
    averaging it in place across processes (one all-reduce per minibatch
    step, between ``backward`` and ``clip_grad_norm_``) averages every
    parameter's gradient. ``reduce_gradients`` does that on either optimiser.

    A parameter that received no gradient in a step has a zero gradient
    (``torch.optim`` would skip it); in PPO every parameter is used.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
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

    def reduce_gradients(self, reduce: Callable[[torch.Tensor], object]) -> None:
        """Apply the in-place ``reduce`` (an all-reduce) to ``flat_grad``: no copy."""
        reduce(self.flat_grad)

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
            "exp_avg": [t.clone() for t in _views(self._exp_avg, self.params)],
            "exp_avg_sq": [t.clone() for t in _views(self._exp_avg_sq, self.params)],
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.steps = saved["steps"]
        self.param_groups[0]["lr"] = saved["lr"]
        self._exp_avg.copy_(torch.cat([t.reshape(-1) for t in saved["exp_avg"]]))
        self._exp_avg_sq.copy_(torch.cat([t.reshape(-1) for t in saved["exp_avg_sq"]]))


class PlainAdam:
    """``torch.optim.Adam`` and ``nn.utils.clip_grad_norm_``, in ``FlatAdam``'s
    interface and checkpoint format: the switch-off twin."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self._adam = torch.optim.Adam(self.params, lr=lr, eps=eps)
        self.param_groups = self._adam.param_groups

    def zero_grad(self) -> None:
        self._adam.zero_grad()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        return nn.utils.clip_grad_norm_(self.params, max_norm)

    @torch.no_grad()
    def reduce_gradients(self, reduce: Callable[[torch.Tensor], object]) -> None:
        """Gather every gradient into one flat tensor, apply the in-place
        ``reduce`` (an all-reduce) to it, and write the result back."""
        grads = [p.grad for p in self.params]
        flat = nn.utils.parameters_to_vector(grads)
        reduce(flat)
        nn.utils.vector_to_parameters(flat, grads)

    def step(self) -> None:
        self._adam.step()

    def state_dict(self) -> dict[str, Any]:
        first = self._adam.state.get(self.params[0])
        return {
            "steps": int(first["step"]) if first else 0,
            "lr": self.param_groups[0]["lr"],
            "exp_avg": self._moment("exp_avg"),
            "exp_avg_sq": self._moment("exp_avg_sq"),
        }

    def _moment(self, key: str) -> list[torch.Tensor]:
        """One Adam moment per parameter; zeros before the first step."""
        moments = []
        for param in self.params:
            state = self._adam.state.get(param)
            moments.append(state[key].clone() if state else torch.zeros_like(param))
        return moments

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.param_groups[0]["lr"] = saved["lr"]
        if not saved["steps"]:
            return
        for param, exp_avg, exp_avg_sq in zip(
            self.params, saved["exp_avg"], saved["exp_avg_sq"], strict=True
        ):
            self._adam.state[param] = {
                "step": torch.tensor(float(saved["steps"])),
                "exp_avg": exp_avg.to(param.device, copy=True),
                "exp_avg_sq": exp_avg_sq.to(param.device, copy=True),
            }


def optimizer(params: Iterable[nn.Parameter], lr: float, eps: float, fast: bool) -> Optimizer:
    return FlatAdam(params, lr=lr, eps=eps) if fast else PlainAdam(params, lr=lr, eps=eps)
