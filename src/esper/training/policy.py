"""The actor-critic: separate tanh MLPs for policy and value (PPO_DETAILS 2, 13).

Discrete tasks get a categorical policy over logits; continuous tasks a
diagonal Gaussian with a state-independent learned log-std started at 0.
Sampling avoids ``torch.distributions`` so the rollout path stays a few fused
tensor ops with no argument validation (and no host synchronisation).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from esper.envs.spaces import ActionSpace, BoxSpace, DiscreteSpace, MultiDiscreteSpace
from esper.training import multi_categorical

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class _NarrowInputLinearFunction(torch.autograd.Function):
    """``x @ W.T + b`` whose weight gradient is computed as ``(x.T @ g).T``.

    Autograd's default computes ``g.T @ x``: a ``[n_out, B] @ [B, n_in]``
    product, which MKL runs 4-5x slower than the transposed form when ``n_in``
    is a handful of observation features (measured on a 2-core AMD EPYC: 21 ms
    against 4.3 ms at B = 65,536, 4 -> 64; the summation is also closer to
    float64). Same values, same parameters, same checkpoint layout.
    """

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
    """A linear layer with fewer inputs than outputs (the first layer on
    low-dimensional observations): the fast weight-gradient form when training
    on 2-D batches, plain ``nn.Linear`` otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and torch.is_grad_enabled() and self.weight.requires_grad:
            return _NarrowInputLinearFunction.apply(x, self.weight, self.bias)
        return super().forward(x)


# Below this many elements torch.tanh's fixed cost wins; above it its per-element
# cost does (2 CPU threads: 45 vs 57 us at 256 x 64, 5.0 vs 2.5 ms at 32,768 x 64).
_SIGMOID_TANH_MIN_ELEMENTS = 65_536


def _tanh_via_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``2 sigmoid(2x) - 1``: one allocation, then in-place ops."""
    return x.mul(2.0).sigmoid_().mul_(2.0).sub_(1.0)


class _SigmoidTanhFunction(torch.autograd.Function):
    """``tanh(x) = 2 sigmoid(2x) - 1``, with tanh's own backward.

    torch's CPU ``tanh`` kernel costs ~2.5 ns an element here where
    ``sigmoid`` costs ~1, and the hidden-layer tanh was the largest single
    item of a large update (docs/performance.md). Absolute error vs
    ``torch.tanh`` is below 2e-7.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = _tanh_via_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class Tanh(nn.Module):
    """``nn.Tanh`` with a faster path for large CPU batches (same function)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.numel() < _SIGMOID_TANH_MIN_ELEMENTS:
            return torch.tanh(x)
        if torch.is_grad_enabled() and x.requires_grad:
            return _SigmoidTanhFunction.apply(x)
        return _tanh_via_sigmoid(x)


def _layer(n_in: int, n_out: int, gain: float) -> nn.Linear:
    """Orthogonal weights with ``gain``, zero bias."""
    layer = NarrowInputLinear(n_in, n_out) if n_in < n_out else nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [_layer(width, h, math.sqrt(2)), Tanh()]
        width = h
    layers.append(_layer(width, n_out, out_gain))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, action_space: ActionSpace, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.action_space = action_space
        self.discrete = isinstance(action_space, DiscreteSpace | MultiDiscreteSpace)
        # MultiDiscrete: one block of logits per component (training/multi_categorical.py)
        self.nvec = action_space.nvec if isinstance(action_space, MultiDiscreteSpace) else None
        n_out = _output_width(action_space)
        self.actor = mlp(obs_dim, hidden, n_out, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, out_gain=1.0)
        if isinstance(action_space, BoxSpace):
            self.log_std = nn.Parameter(torch.zeros(action_space.dim))
            # Clipping bounds on the policy's device, moved by .to() like the
            # weights; not saved (the space is in the checkpoint already).
            self.register_buffer("action_low", torch.tensor(action_space.low), persistent=False)
            self.register_buffer("action_high", torch.tensor(action_space.high), persistent=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B]`` state values."""
        return self.critic(obs).squeeze(-1)

    def sample_noise(self, *batch_shape: int) -> torch.Tensor:
        """Noise for ``act``, drawn for a whole rollout at once (fewer ops per step).

        Gumbel noise over the logits for a categorical policy, standard normal
        noise for a Gaussian one: ``[*batch_shape, n_out]``.
        """
        n_out = _output_width(self.action_space)
        if self.discrete:
            uniform = torch.rand(*batch_shape, n_out, device=self.device_of_parameters).clamp_(
                1e-20, 1.0
            )
            return -torch.log(-torch.log(uniform))
        return torch.randn(*batch_shape, n_out, device=self.device_of_parameters)

    @property
    def device_of_parameters(self) -> torch.device:
        return next(self.parameters()).device

    def act(
        self, obs: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample actions: ``(action, log_prob [B], value [B])``."""
        if noise is None:
            noise = self.sample_noise(obs.shape[0])
        out = self.actor(obs)
        if self.nvec is not None:
            action, log_prob = multi_categorical.sample(out, noise, self.nvec)
        elif self.discrete:
            log_probs = torch.log_softmax(out, dim=-1)
            # Gumbel-max: argmax(logits + Gumbel noise) is a categorical sample.
            action = torch.argmax(log_probs + noise, dim=-1)
            log_prob = log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        else:
            action = out + self.log_std.exp() * noise
            log_prob = self._gaussian_log_prob(out, action)
        return action, log_prob, self.value(obs)

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (argmax, or the Gaussian mean)."""
        out = self.actor(obs)
        if self.nvec is not None:
            return multi_categorical.mode(out, self.nvec)
        return out.argmax(dim=-1) if self.discrete else out

    def evaluate(
        self, obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score stored actions: ``(log_prob [B], entropy [B], value [B])``."""
        out = self.actor(obs)
        if self.nvec is not None:
            log_prob = multi_categorical.log_prob(out, action, self.nvec)
            entropy = multi_categorical.entropy(out, self.nvec)
        elif self.discrete:
            log_probs = torch.log_softmax(out, dim=-1)
            log_prob = log_probs.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
        else:
            log_prob = self._gaussian_log_prob(out, action)
            entropy = (0.5 + _LOG_SQRT_2PI + self.log_std).sum().expand(out.shape[0])
        return log_prob, entropy, self.value(obs)

    def _gaussian_log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = (action - mean) / self.log_std.exp()
        return (-0.5 * z.square() - self.log_std - _LOG_SQRT_2PI).sum(-1)


def _output_width(space: ActionSpace) -> int:
    """Actor outputs: logits per action (all blocks' for MultiDiscrete), or Box means."""
    if isinstance(space, DiscreteSpace):
        return space.n
    if isinstance(space, MultiDiscreteSpace):
        return sum(space.nvec)
    return space.dim


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
