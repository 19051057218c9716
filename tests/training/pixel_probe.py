"""A pixel probe task and user encoders for the encoder tests (named as ``pixel_probe:...``).

``PixelProbe``: one lit pixel on a 6x6 uint8 image, one-step episodes; the
reward is 1 when the action names the half the pixel lies in (0 left, 1
right): what pays depends on where the pixel is, which a CNN learns quickly.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from esper.envs.base import BatchedEnv, EnvSpec, Transition
from esper.envs.spaces import DiscreteSpace

SIDE = 6
OBS_SHAPE = (1, SIDE, SIDE)


class PixelProbe(BatchedEnv):
    spec = EnvSpec(
        "pixel-probe", "", obs_dim=SIDE * SIDE, state_dim=1, action_space=DiscreteSpace(2),
        max_episode_steps=2, obs_shape=OBS_SHAPE, obs_dtype=torch.uint8,
    )  # fmt: skip
    default_config: ClassVar[dict[str, Any]] = {
        "n_envs": 16,
        "horizon": 8,
        "n_minibatches": 2,
        "hidden_sizes": [16],
        "encoder": "cnn",
        "activation": "relu",
        "learning_rate": 0.005,
        "anneal_lr": False,
        "ent_coef": 0.0,
    }

    def initial_state(self, n: int) -> torch.Tensor:
        cell = torch.randint(0, SIDE * SIDE, (n, 1), generator=self.generator, device=self.device)
        return cell.to(self.dtype)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``[n, 36]`` uint8: 255 at the lit cell, 0 elsewhere."""
        lit = nn.functional.one_hot(state[:, 0].long(), SIDE * SIDE)
        return lit.to(torch.uint8) * 255

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        right = (state[:, 0].long() % SIDE) >= SIDE // 2
        reward = (actions.long() == right.long()).to(torch.float32)
        return state, reward, torch.ones_like(right)


# What user encoders saw: (input shape, dtype) per forward call, and the shapes
# their factories were called with.
SEEN: list[tuple[tuple[int, ...], torch.dtype]] = []
BUILT_FOR: list[tuple[int, ...]] = []


class TinyEncoder(nn.Module):
    """A user encoder by the documented contract: ``out_features``, ``[B, *obs_shape]`` in."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        channels, height, width = obs_shape
        self.conv = nn.Conv2d(channels, 4, 3)
        self.out_features = 4 * (height - 2) * (width - 2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        SEEN.append((tuple(images.shape), images.dtype))
        return self.conv(images).relu().flatten(1)


def tiny_encoder(obs_shape: tuple[int, ...]) -> nn.Module:
    BUILT_FOR.append(tuple(obs_shape))
    return TinyEncoder(obs_shape)


def not_a_module(obs_shape: tuple[int, ...]) -> object:
    return object()
