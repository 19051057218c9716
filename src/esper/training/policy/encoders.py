"""Observation encoders: what reads an observation before the heads (``PPOConfig.encoder``).

- ``mlp`` (the default) has no encoder here: ``ActorCritic`` keeps CleanRL's
  separate actor and critic MLPs over the flat observation, unchanged.
- ``cnn`` reads ``[C, H, W]`` images (``SmallCNN``).
- ``package.module:Factory`` names your own, the way tasks are named.

A non-mlp encoder is one trunk shared by actor and critic, as in CleanRL's
``ppo_atari``: the convolutions dominate the cost, and one trunk runs them once
per step instead of twice. ``ObservationTrunk`` views the flat observation the
buffers hold as ``obs_shape`` (a view, no copy), runs the encoder, then the
``hidden_sizes`` dense layers; the heads are single linear layers.

The factory contract: ``Factory(obs_shape)`` is called with the observation's
shape (a tuple: ``(C, H, W)`` for an image task, ``(obs_dim,)`` otherwise) and
returns a ``torch.nn.Module`` with an integer attribute ``out_features``. Its
``forward`` takes float32 ``[B, *obs_shape]`` (uint8 images already divided by
255) and returns ``[B, out_features]``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable

import torch
from torch import nn

from esper.runtime.errors import ConfigError

# The convolutions of the Nature DQN (Mnih et al., 2015): (channels, kernel, stride).
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
# MinAtar's network (Young & Tian, 2019): one 3x3 conv of 16 channels, stride 1.
SMALL_CONVS = ((16, 3, 1),)
# Images at least this large on their short side take the Nature stack (it
# shrinks 36x36 to 1x1); smaller ones, like MinAtar's 10x10, one 3x3 conv.
NATURE_MIN_SIDE = 36


def pixels_as_float(obs: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as float32 in [0, 1]; a float observation as it is (no op).
    The branch is on the dtype, fixed for a run, never on a value."""
    if obs.dtype == torch.uint8:
        return obs.to(torch.float32).div_(255.0)
    return obs


class SmallCNN(nn.Module):
    """Convolutions sized for the image, then flatten: ``[B, C, H, W] -> [B, out_features]``.

    A 10x10 MinAtar board keeps its resolution through one 3x3 stride-1 conv
    (MinAtar's own network; an 8x8 stride-4 Nature conv would leave 1x1 of it);
    from 36 pixels a side the Nature DQN's three convolutions apply.
    """

    def __init__(self, obs_shape: tuple[int, ...], activation: Callable[[], nn.Module]) -> None:
        super().__init__()
        channels, height, width = obs_shape
        convs = NATURE_CONVS if min(height, width) >= NATURE_MIN_SIDE else SMALL_CONVS
        layers: list[nn.Module] = []
        for out_channels, kernel, stride in convs:
            conv = nn.Conv2d(channels, out_channels, kernel, stride)
            nn.init.orthogonal_(conv.weight, math.sqrt(2))
            nn.init.zeros_(conv.bias)
            layers += [conv, activation()]
            channels = out_channels
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.out_features = channels * height * width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.convs(images)


class ObservationTrunk(nn.Module):
    """The encoder and the dense layers after it, over flat observations.

    ``[..., obs_dim]`` in (any leading dims: one step's ``[n_envs]``, a
    minibatch, GAE's ``[T, n_envs]`` chunks), ``[..., width]`` out.
    """

    def __init__(self, encoder: nn.Module, obs_shape: tuple[int, ...], dense: nn.Module) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.encoder = encoder
        self.dense = dense

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        # A view of the flat rows (they are contiguous in the buffers): no copy.
        shaped = pixels_as_float(obs).reshape(-1, *self.obs_shape)
        return self.dense(self.encoder(shaped)).reshape(*lead, -1)


def build_encoder(
    name: str, obs_shape: tuple[int, ...], activation: Callable[[], nn.Module]
) -> nn.Module:
    """The encoder ``name`` (``cnn`` or ``package.module:Factory``) for ``obs_shape``;
    a bad name, shape or module is a ``ConfigError`` naming ``encoder``."""
    if name == "cnn":
        if len(obs_shape) != 3 or min(obs_shape[1:]) < 3:
            raise ConfigError(
                "encoder",
                f"cnn reads images [C, H, W] of at least 3x3; the task observes "
                f'{list(obs_shape)} (declare EnvSpec.obs_shape, or use encoder = "mlp")',
            )
        return SmallCNN(obs_shape, activation)
    module = _call_factory(load_factory(name), name, obs_shape)
    return module


def load_factory(name: str) -> Callable[..., nn.Module]:
    """The ``Factory`` of ``package.module:Factory``, imported; one-line errors otherwise."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("encoder", f"cannot import {module_name} for {name}: {exc}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ConfigError("encoder", f"{module_name} has no callable {attribute}")
    return factory


def _call_factory(
    factory: Callable[..., nn.Module], name: str, obs_shape: tuple[int, ...]
) -> nn.Module:
    module = factory(tuple(obs_shape))
    width = getattr(module, "out_features", None)
    if not isinstance(module, nn.Module) or not isinstance(width, int) or width < 1:
        raise ConfigError(
            "encoder",
            f"{name}({tuple(obs_shape)}) must return a torch.nn.Module with an integer "
            f"out_features >= 1 (got {type(module).__name__}, out_features={width!r})",
        )
    return module
