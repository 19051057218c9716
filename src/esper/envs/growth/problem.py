"""Each episode's problem, drawn on the device: a random teacher labels Gaussian inputs.

The teacher's logits mix a linear map and a network of one hidden layer of
squares (a quadratic form of the input), ``(1 - c) * linear + c * quadratic``,
with ``c`` drawn uniformly per episode. (A tanh or ReLU teacher was tried
first: a linear host fits its argmax labels nearly as well as a grown one,
measured with the scripted baselines, so growth could not pay.)
The bare host is a linear classifier, so it fits ``c = 0`` and falls short as
``c`` grows: how much growth pays depends on the episode, and the policy can
only tell from how the host learns.

An episode's draws (teacher-labelled training and validation sets, the host's
and the seeds' initial weights, and the bare host's first validation) are
packed into one row per copy (``episode_layout``), drawn outside the step from
the env's generator, so a compiled step holds no random draw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from esper.envs.growth.layout import Layout
from esper.envs.growth.settings import GrowthSettings


def episode_layout(s: GrowthSettings) -> Layout:
    """What one fresh episode needs, per copy."""
    return Layout(
        [
            ("w_in", (s.in_dim, s.stream)),
            ("w_out", (s.stream, s.classes)),
            ("seed_in", (s.slots, s.stream, s.max_width)),  # a germinated seed's first layer
            ("train_x", (s.train_size, s.in_dim)),
            ("train_y", (s.train_size,)),
            ("val_x", (s.val_size, s.in_dim)),
            ("val_y", (s.val_size,)),
            ("first_val", (2,)),  # the bare host's validation loss and accuracy
        ]
    )


def teacher_labels(
    x: torch.Tensor, mix: torch.Tensor, generator: torch.Generator, s: GrowthSettings
) -> torch.Tensor:
    """``[n, m]`` class labels of inputs ``x [n, m, in_dim]`` under fresh teachers."""
    n, device, dtype = x.shape[0], x.device, x.dtype

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(n, *shape, generator=generator, device=device, dtype=dtype)

    linear = x @ normal(s.in_dim, s.classes)
    hidden = (x @ normal(s.in_dim, s.teacher_hidden) * s.in_dim**-0.5).square()
    nonlinear = hidden @ normal(s.teacher_hidden, s.classes)
    nonlinear = nonlinear - nonlinear.mean(dim=1, keepdim=True)
    # Each part scaled to unit spread over this episode's inputs, then mixed.
    linear = linear / linear.std(dim=(1, 2), keepdim=True)
    nonlinear = nonlinear / nonlinear.std(dim=(1, 2), keepdim=True)
    mix = mix.view(n, 1, 1)
    return ((1 - mix) * linear + mix * nonlinear).argmax(dim=2)


def draw_episodes(
    n: int, generator: torch.Generator, s: GrowthSettings, device: torch.device
) -> torch.Tensor:
    """``[n, episode_layout(s).width]``: ``n`` fresh episodes."""

    def normal(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(n, *shape, generator=generator, device=device) * scale

    size = s.train_size + s.val_size
    x = normal(size, s.in_dim)
    mix = torch.rand(n, generator=generator, device=device)
    y = teacher_labels(x, mix, generator, s)
    w_in = normal(s.in_dim, s.stream, scale=s.in_dim**-0.5)
    w_out = normal(s.stream, s.classes, scale=s.stream**-0.5)
    val_x, val_y = x[:, s.train_size :], y[:, s.train_size :]
    logits = val_x @ w_in @ w_out  # biases start at zero
    loss = F.cross_entropy(logits.transpose(1, 2), val_y, reduction="none").mean(1)
    accuracy = (logits.argmax(2) == val_y).float().mean(1)
    return episode_layout(s).pack(
        {
            "w_in": w_in,
            "w_out": w_out,
            "seed_in": normal(s.slots, s.stream, s.max_width, scale=(2 / s.stream) ** 0.5),
            "train_x": x[:, : s.train_size],
            "train_y": y[:, : s.train_size].float(),
            "val_x": val_x,
            "val_y": val_y.float(),
            "first_val": torch.stack((loss, accuracy), dim=1),
        }
    )
