"""Every host trains at once: batched forward, hand-written backward, one Adam.

A host is a linear classifier over a residual stream, ``logits = z_K W_out + b``
with ``z_0 = x W_in + b_in``; each slot ``k`` may hold a seed that adds
``alpha_k * seed_k(z_k)`` to the stream (``z_{k+1}``). Every copy's weights
sit in one row of a ``[n, P]`` buffer (``host_layout``), seeds preallocated at
the widest blueprint with the unused hidden units masked, so one batched
matmul per layer serves every host and one elementwise Adam updates them all.

The backward pass is written out (not autograd) because two of its rules
are the lifecycle's, not calculus:

- a seed in isolation (``learn = 1``, ``alpha = 0``) learns from the host's
  error as if it were added at full strength, yet the host's output and its
  gradients are those of the host without it;
- a blending or holding seed (``alpha > 0``) is ordinary backpropagation.

``tests/envs/growth/test_hosts.py`` checks it against autograd on plain
per-host modules with ``torch.optim.Adam``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from esper.envs.growth.layout import Layout
from esper.envs.growth.settings import GrowthSettings

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def seed_layout(s: GrowthSettings) -> Layout:
    """One slot's weights, at the widest blueprint's shape."""
    w, r = s.stream, s.max_width
    return Layout([("a_w", (w, r)), ("a_b", (r,)), ("b_w", (r, w)), ("b_b", (w,))])


def host_layout(s: GrowthSettings) -> Layout:
    """One host's weights, its slots' included."""
    return Layout(
        [
            ("w_in", (s.in_dim, s.stream)),
            ("b_in", (s.stream,)),
            ("w_out", (s.stream, s.classes)),
            ("b_out", (s.classes,)),
            ("seeds", (s.slots, seed_layout(s).width)),
        ]
    )


class SlotGates(NamedTuple):
    """How each slot's seed takes part, ``[n, K]`` each (float)."""

    alpha: torch.Tensor  # weight of its output in the stream (forward)
    learn: torch.Tensor  # weight of the host's error it learns from (1 in isolation)
    units: torch.Tensor  # [n, K, max_width]: 1 for the blueprint's hidden units
    linear: torch.Tensor  # 1 for an adapter (no activation, no biases)


class Weights(NamedTuple):
    """Views of a ``[n, P]`` weight (or gradient) buffer by name."""

    w_in: torch.Tensor
    b_in: torch.Tensor
    w_out: torch.Tensor
    b_out: torch.Tensor
    a_w: torch.Tensor  # [n, K, w, R]
    a_b: torch.Tensor
    b_w: torch.Tensor
    b_b: torch.Tensor


def weights(flat: torch.Tensor, s: GrowthSettings) -> Weights:
    host, seed = host_layout(s), seed_layout(s)
    seeds = host.view(flat, "seeds")
    return Weights(
        *(host.view(flat, name) for name in ("w_in", "b_in", "w_out", "b_out")),
        *(seed.view(seeds, name) for name in ("a_w", "a_b", "b_w", "b_b")),
    )


def _hidden(u: torch.Tensor, linear: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """The seed's hidden layer: ReLU, or the identity for an adapter (``linear`` 1:
    ``max(u, u)``); unused units 0."""
    return torch.maximum(u, u * linear) * units


def forward(
    flat: torch.Tensor, x: torch.Tensor, gates: SlotGates, alpha: torch.Tensor, s: GrowthSettings
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Logits ``[n, J, m, C]`` of inputs ``x [n, m, d]`` under ``J`` alpha settings
    ``alpha [n, J, K]`` (the validation's counterfactuals), with the streams
    ``z_k`` and pre-activations ``u_k`` (``[n, J*m, ·]``) the backward pass reads."""
    p = weights(flat, s)
    n, j, m = x.shape[0], alpha.shape[1], x.shape[1]
    z = torch.baddbmm(p.b_in.unsqueeze(1), x, p.w_in)  # [n, m, w]
    z = z.unsqueeze(1).expand(n, j, m, s.stream).reshape(n, j * m, s.stream)
    streams, pre = [], []
    for k in range(s.slots):
        streams.append(z)
        u = torch.baddbmm(p.a_b[:, k].unsqueeze(1), z, p.a_w[:, k])
        pre.append(u)
        h = _hidden(u, gates.linear[:, k, None, None], gates.units[:, k, None, :])
        out = torch.baddbmm(p.b_b[:, k].unsqueeze(1), h, p.b_w[:, k])
        scale = alpha[:, :, k, None, None].expand(n, j, m, 1).reshape(n, j * m, 1)
        z = z + scale * out
    streams.append(z)
    logits = torch.baddbmm(p.b_out.unsqueeze(1), z, p.w_out)
    return logits.view(n, j, m, s.classes), streams, pre


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and accuracy over the last-but-one dimension: ``[n, J]``."""
    n, j, m, c = logits.shape
    labels = y.unsqueeze(1).expand(n, j, m)
    loss = F.cross_entropy(logits.reshape(-1, c), labels.reshape(-1), reduction="none")
    accuracy = (logits.argmax(-1) == labels).float()
    return loss.view(n, j, m).mean(-1), accuracy.mean(-1)


def gradients(
    flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor, gates: SlotGates, s: GrowthSettings
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``[n, P]`` gradient of each host's mean cross-entropy on ``(x, y)`` under the
    lifecycle's rules (module docstring), with the batch's loss and accuracy ``[n]``."""
    p = weights(flat, s)
    logits, streams, pre = forward(flat, x, gates, gates.alpha.unsqueeze(1), s)
    loss, accuracy = loss_and_accuracy(logits, y)
    logits = logits.squeeze(1)
    g = torch.softmax(logits, -1) - F.one_hot(y, s.classes).to(logits.dtype)
    g = g / x.shape[1]  # [n, m, C]
    d_w_out = streams[-1].transpose(1, 2) @ g
    gz = g @ p.w_out.transpose(1, 2)
    seed_grads = []
    bias = 1 - gates.linear
    for k in reversed(range(s.slots)):
        linear, units = gates.linear[:, k, None, None], gates.units[:, k, None, :]
        h = _hidden(pre[k], linear, units)
        gs = gz * gates.learn[:, k, None, None]
        d_b_w = h.transpose(1, 2) @ gs
        slope = torch.maximum((pre[k] > 0).to(g.dtype), linear) * units
        gu = (gs @ p.b_w[:, k].transpose(1, 2)) * slope
        d_a_w = streams[k].transpose(1, 2) @ gu
        through = (gates.alpha[:, k] > 0).to(g.dtype)[:, None, None]
        gz = gz + through * (gu @ p.a_w[:, k].transpose(1, 2))
        b = bias[:, k, None]
        seed = {"a_w": d_a_w, "a_b": gu.sum(1) * b, "b_w": d_b_w, "b_b": gs.sum(1) * b}
        seed_grads.append(seed_layout(s).pack(seed))
    seed_grads.reverse()
    host = {
        "w_in": x.transpose(1, 2) @ gz,
        "b_in": gz.sum(1),
        "w_out": d_w_out,
        "b_out": g.sum(1),
        "seeds": torch.stack(seed_grads, dim=1),
    }
    return host_layout(s).pack(host), loss.squeeze(1), accuracy.squeeze(1)


def adam_step(
    flat: torch.Tensor,
    grad: torch.Tensor,
    moments: torch.Tensor,
    steps: torch.Tensor,
    lr: float,
    s: GrowthSettings,
) -> None:
    """torch.optim.Adam's update of every weight in place. ``moments [2, n, P]``;
    ``steps [n, 1 + K]``: Adam steps since the host (column 0) and each slot's
    seed were (re)initialised, so a fresh seed's bias correction starts over."""
    beta1, beta2 = ADAM_BETAS
    first, second = moments.unbind(0)
    first.mul_(beta1).add_(grad, alpha=1 - beta1)
    second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    steps.add_(1)
    # Per host and slot (small), then spread over their weights: no pow over [n, P].
    step_size = lr / (1 - torch.pow(beta1, steps))
    root2 = (1 - torch.pow(beta2, steps)).sqrt()
    denominator = (second / spread(root2.square(), s)).sqrt_().add_(ADAM_EPS)
    flat.addcdiv_(first * spread(step_size, s), denominator, value=-1.0)


def spread(per_part: torch.Tensor, s: GrowthSettings) -> torch.Tensor:
    """``[n, 1 + K]`` values (the host's, then each slot's) as ``[n, P]``, each
    repeated over its part's weights."""
    n, seed_width = per_part.shape[0], seed_layout(s).width
    host_width = host_layout(s).width - s.slots * seed_width
    seeds = per_part[:, 1:, None].expand(n, s.slots, seed_width).reshape(n, -1)
    return torch.cat((per_part[:, :1].expand(n, host_width), seeds), dim=1)
