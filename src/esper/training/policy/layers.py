"""The policy's building blocks: orthogonally started linear layers, the hidden
activations ``PPOConfig.activation`` names, and the MLPs made of them. Apart from
the actor-critic so other networks (and tests) build the same layers the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

from esper.config.schema import ACTIVATIONS
from esper.training.fast.layers import linear, tanh

# The hidden-layer activations ``PPOConfig.activation`` names, beside tanh (whose
# fast twin is training/fast/layers.py's): torch's own modules, no parameters.
_OTHER_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
}
assert set(ACTIVATIONS) == {"tanh", *_OTHER_ACTIVATIONS}, "config.ACTIVATIONS and policy differ"


def activation_layer(name: str, fast: bool) -> nn.Module:
    """The hidden layers' nonlinearity; ``fast`` picks the sigmoid tanh for tanh."""
    return tanh(fast) if name == "tanh" else _OTHER_ACTIVATIONS[name]()


def orthogonal_linear(n_in: int, n_out: int, gain: float, fast: bool) -> nn.Linear:
    """Orthogonal weights with ``gain``, zero bias."""
    layer = linear(n_in, n_out, fast)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(
    n_in: int,
    hidden: tuple[int, ...],
    n_out: int,
    out_gain: float,
    fast: bool = True,
    activation: str = "tanh",
) -> nn.Sequential:
    """Linear layers with ``activation`` between them; ``fast`` picks training/fast/layers.py's
    twins of ``nn.Linear`` and ``nn.Tanh`` (same values, same parameter names)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers.append(orthogonal_linear(width, h, math.sqrt(2), fast))
        layers.append(activation_layer(activation, fast))
        width = h
    layers.append(orthogonal_linear(width, n_out, out_gain, fast))
    return nn.Sequential(*layers)
