"""The actor-critic: separate MLPs for policy and value, tanh as in CleanRL's ``ppo.py``.

The hidden activation is a setting (``PPOConfig.activation``; tanh by default).

Discrete tasks get a categorical policy over logits; continuous tasks a
diagonal Gaussian with a state-independent learned log-std started at 0.
Sampling avoids ``torch.distributions`` so the rollout path stays a few fused
tensor ops with no argument validation (and no host synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from esper.config import ACTIVATIONS
from esper.envs.base import EnvSpec
from esper.envs.spaces import ActionSpace, BoxSpace, DiscreteSpace, MultiDiscreteSpace
from esper.training import multi_categorical
from esper.training.encoders import ObservationTrunk, build_encoder, pixels_as_float
from esper.training.speedups import linear, tanh

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

# The hidden-layer activations ``PPOConfig.activation`` names, beside tanh (whose
# fast twin is training/speedups.py's): torch's own modules, no parameters.
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


def _layer(n_in: int, n_out: int, gain: float, fast: bool) -> nn.Linear:
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
    """Linear layers with ``activation`` between them; ``fast`` picks training/speedups.py's
    twins of ``nn.Linear`` and ``nn.Tanh`` (same values, same parameter names)."""
    layers: list[nn.Module] = []
    width = n_in
    for h in hidden:
        layers += [_layer(width, h, math.sqrt(2), fast), activation_layer(activation, fast)]
        width = h
    layers.append(_layer(width, n_out, out_gain, fast))
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """Actor and critic MLPs, and the action distribution the actor's output parameterises.

    Each distribution is one branch in each of ``sample_noise``, ``act``,
    ``act_deterministic``, ``evaluate`` and ``env_action``: a new action space
    adds its branch in those five places. ``speedups`` picks the layers of
    training/speedups.py or their plain torch twins (same parameter names).
    """

    def __init__(
        self,
        obs_dim: int,
        action_space: ActionSpace,
        hidden: tuple[int, ...],
        speedups: bool = True,
        activation: str = "tanh",
        encoder: str = "mlp",
        obs_shape: tuple[int, ...] | None = None,
    ) -> None:
        """``encoder`` (training/encoders.py) reads observations of ``obs_shape``
        (default ``(obs_dim,)``); ``mlp`` keeps the separate actor and critic MLPs."""
        super().__init__()
        self.obs_dim, self.hidden, self.activation = obs_dim, tuple(hidden), activation
        self.encoder, self.obs_shape = encoder, tuple(obs_shape or (obs_dim,))
        self.action_space = action_space
        self.discrete = isinstance(action_space, DiscreteSpace | MultiDiscreteSpace)
        # MultiDiscrete: one block of logits per component (training/multi_categorical.py)
        self.nvec = action_space.nvec if isinstance(action_space, MultiDiscreteSpace) else None
        n_out = _output_width(action_space)
        # None for mlp: each head reads the observation itself, as before encoders.
        self.trunk: ObservationTrunk | None = None
        if encoder == "mlp":
            self.actor = mlp(obs_dim, hidden, n_out, 0.01, speedups, activation)
            self.critic = mlp(obs_dim, hidden, 1, 1.0, speedups, activation)
        else:
            self.trunk = _trunk(encoder, self.obs_shape, self.hidden, speedups, activation)
            self.actor = _layer(self.hidden[-1], n_out, 0.01, speedups)
            self.critic = _layer(self.hidden[-1], 1, 1.0, speedups)
        if isinstance(action_space, BoxSpace):
            self.log_std = nn.Parameter(torch.zeros(action_space.dim))
            # Clipping bounds on the policy's device, moved by .to() like the
            # weights; not saved (the space is in the checkpoint already).
            self.register_buffer("action_low", torch.tensor(action_space.low), persistent=False)
            self.register_buffer("action_high", torch.tensor(action_space.high), persistent=False)

    def plain_twin(self) -> ActorCritic:
        """A copy with plain torch layers (``speedups`` off) and these weights: the
        same values, and a network TorchScript and ``torch.export`` take whole."""
        twin = ActorCritic(
            self.obs_dim,
            self.action_space,
            self.hidden,
            False,
            self.activation,
            self.encoder,
            self.obs_shape,
        )
        twin.load_state_dict(self.state_dict())
        return twin.to(self.device_of_parameters)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """What the heads read: the shared trunk's output, or for ``mlp`` the
        observation itself (uint8 pixels as floats in [0, 1]; a float one untouched)."""
        if self.trunk is None:
            return pixels_as_float(obs)
        return self.trunk(obs)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B]`` state values."""
        return self.critic(self.features(obs)).squeeze(-1)

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
        features = self.features(obs)
        out = self.actor(features)
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
        return action, log_prob, self.critic(features).squeeze(-1)

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """What the environment receives: Gaussian samples clipped to the bounds.

        The rollout buffer keeps the unclipped sample, whose log-probability was scored.
        """
        if self.discrete:
            return action
        return torch.clamp(action, self.action_low, self.action_high)

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (argmax, or the Gaussian mean)."""
        out = self.actor(self.features(obs))
        if self.nvec is not None:
            return multi_categorical.mode(out, self.nvec)
        return out.argmax(dim=-1) if self.discrete else out

    def evaluate(
        self, obs: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score stored actions: ``(log_prob [B], entropy [B], value [B])``."""
        features = self.features(obs)
        out = self.actor(features)
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
        return log_prob, entropy, self.critic(features).squeeze(-1)

    def _gaussian_log_prob(self, mean: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        z = (action - mean) / self.log_std.exp()
        return (-0.5 * z.square() - self.log_std - _LOG_SQRT_2PI).sum(-1)


def _trunk(
    encoder: str, obs_shape: tuple[int, ...], hidden: tuple[int, ...], fast: bool, activation: str
) -> ObservationTrunk:
    """The shared trunk of a non-mlp policy: the encoder, then ``hidden`` dense
    layers, each followed by ``activation``."""
    body = build_encoder(encoder, obs_shape, lambda: activation_layer(activation, fast))
    dense: list[nn.Module] = []
    width = body.out_features
    for h in hidden:
        dense += [_layer(width, h, math.sqrt(2), fast), activation_layer(activation, fast)]
        width = h
    return ObservationTrunk(body, obs_shape, nn.Sequential(*dense))


def policy_for(config: Mapping[str, Any], spec: EnvSpec) -> ActorCritic:
    """The network a run's settings (a ``PPOConfig.to_dict()``, as checkpoints save
    it) build for a task: the trainer, ``load_policy``, eval and export all build
    it here, so a checkpoint rebuilds without the user repeating its architecture.
    Settings newer than a checkpoint take the default they had then."""
    return ActorCritic(
        spec.obs_dim,
        spec.action_space,
        tuple(config["hidden_sizes"]),
        config.get("speedups", True),
        str(config.get("activation", "tanh")),
        str(config.get("encoder", "mlp")),
        spec.obs_shape,
    )


def _output_width(space: ActionSpace) -> int:
    """Actor outputs: logits per action (all blocks' for MultiDiscrete), or Box means."""
    if isinstance(space, DiscreteSpace):
        return space.n
    if isinstance(space, MultiDiscreteSpace):
        return sum(space.nvec)
    return space.dim


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
