"""Speed tricks of the policy's layers, each beside the plain torch layer it must equal.

One switch, ``PPOConfig.speedups`` (on by default), chooses between them:

=========================  ==========================================  =====================
trick                      plain twin (switch off)                     what it buys
=========================  ==========================================  =====================
``SigmoidTanh``            ``nn.Tanh``                                 1.1-1.2x, large CPU batches
``NarrowInputLinear``      ``nn.Linear``                               21 -> 4.3 ms per layer
=========================  ==========================================  =====================

The figures were measured on a 2-vCPU AMD EPYC VM (AVX2, MKL, no GPU) at 4,096
CartPole envs with torch 2.15, as A/B runs in one session (docs/performance.md
has the whole table). tests/training/test_speedups.py checks each trick against
its twin. Both sides give the same parameter names, so a checkpoint written
with the switch on resumes with it off and the other way round.

The same switch picks the optimiser, ``FlatAdam`` or ``torch.optim.Adam``
(``esper.training.fast.optimizer``), and the fused actor-critic forward and
hand-written update of the default policy family (``fused_policy``,
``fused_update``: tests/training/fast/test_fused.py). Glibc's allocator thresholds are process-wide
rather than per run, so the ``esper`` command applies them for itself and a
notebook calling ``esper.train()`` keeps its allocator as it was: see
``esper.runtime.process``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# --- tanh ------------------------------------------------------------------

# Below this many elements torch.tanh's fixed cost wins; above it its per-element
# cost does. The plain layer keeps the size it was measured at (2 CPU threads: 45
# vs 57 us at 256 x 64 with the 4-op form, 5.0 vs 2.5 ms at 32,768 x 64), so that
# every policy outside the fused path keeps its numbers; the fused forward
# (``fused_policy``), whose form is 2 ops, switches from ``FUSED_MIN_ELEMENTS``.
SIGMOID_TANH_MIN_ELEMENTS = 65_536

# ``2 s - 1`` as one ``add(-1, s, alpha=2)``: ``2 s`` is exact, so it rounds as
# ``s.mul(2).sub(1)`` does, in one pass instead of two (a 0-d CPU operand).
_MINUS_ONE = torch.tensor(-1.0)


def sigmoid_form(
    device: torch.device, elements: int, minimum: int = SIGMOID_TANH_MIN_ELEMENTS
) -> bool:
    """Whether a tanh over ``elements`` takes the sigmoid form."""
    return device.type == "cpu" and elements >= minimum


def tanh_from_sigmoid_(s: torch.Tensor) -> torch.Tensor:
    """``2 s - 1`` in place, where ``s = sigmoid(2 x)``: ``tanh(x)``."""
    return torch.add(_MINUS_ONE, s, alpha=2.0, out=s)


def _tanh_via_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``2 sigmoid(2x) - 1``: one allocation, then in-place ops."""
    return tanh_from_sigmoid_(x.mul(2.0).sigmoid_())


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

    torch's CPU ``tanh`` kernel costs ~3x its ``sigmoid`` per element (4.3 vs
    1.3 ns on the 2-core EPYC), and the hidden-layer tanh was the largest
    elementwise item of both the rollout's and the update's profile. Three ops
    (``mul``, ``sigmoid_``, one ``add`` for ``2 s - 1``), so smaller tensors
    and other devices keep ``torch.tanh``. Absolute error against
    ``torch.tanh`` is below 3e-7. The fused forward (``fused_policy``) folds
    the ``mul`` into its matmul and switches from 4,096 elements per network;
    this layer keeps 65,536, so the policies outside the fused path keep
    their numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not sigmoid_form(x.device, x.numel()):
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
