"""The actor-critic. By default separate MLPs for policy and value, tanh as in
CleanRL's ``ppo.py``; the settings make it more (``PPOConfig``):

- ``encoder``: a CNN trunk (or your module) shared by both heads
  (training/encoders.py);
- ``recurrent``: a GRU or LSTM core between the encoder and the heads, acting
  from a memory the caller carries (training/recurrent.py);
- ``EnvSpec.critic_obs_dim``: trailing observation entries only the critic reads;
- ``activation``: the hidden layers' nonlinearity (tanh by default).

Discrete tasks get a categorical policy over logits; continuous tasks a
diagonal Gaussian with a state-independent learned log-std started at 0.
Sampling avoids ``torch.distributions`` so the rollout path stays a few fused
tensor ops with no argument validation (and no host synchronisation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from esper.envs.base import EnvSpec
from esper.envs.spaces import ActionSpace, BoxSpace, DiscreteSpace, MultiDiscreteSpace
from esper.training.fast.fused_policy import FusedMLP, fusable, fused_act
from esper.training.policy import distributions as multi_categorical
from esper.training.policy.encoders import ObservationTrunk, build_encoder, pixels_as_float
from esper.training.policy.layers import activation_layer, mlp, orthogonal_linear
from esper.training.policy.recurrent import RecurrentCore, forget_ended, recurrent_core

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class ActorCritic(nn.Module):
    """Actor and critic networks, and the action distribution the actor's output parameterises.

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
        recurrent: str = "none",
        rnn_hidden: int = 64,
        critic_dims: int = 0,
    ) -> None:
        """``encoder`` (training/encoders.py) reads observations of ``obs_shape``
        (default ``(obs_dim,)``); ``mlp`` keeps the separate actor and critic MLPs.
        ``recurrent`` puts a ``gru`` or ``lstm`` core of ``rnn_hidden`` units
        (training/recurrent.py) between the encoder and the heads. The last
        ``critic_dims`` entries of a flat observation are the critic's alone
        (privileged information): the actor, and so every deployed policy, never
        reads them."""
        super().__init__()
        # What builds this network again (``plain_twin``), speedups aside.
        self._architecture = dict(
            obs_dim=obs_dim, action_space=action_space, hidden=hidden, activation=activation,
            encoder=encoder, obs_shape=obs_shape, recurrent=recurrent, rnn_hidden=rnn_hidden,
            critic_dims=critic_dims,
        )  # fmt: skip
        self.obs_dim, self.hidden, self.activation = obs_dim, tuple(hidden), activation
        self.encoder, self.obs_shape = encoder, tuple(obs_shape or (obs_dim,))
        self.recurrent, self.rnn_hidden = recurrent, rnn_hidden
        self.critic_dims, self.actor_dim = critic_dims, obs_dim - critic_dims
        if critic_dims and (len(self.obs_shape) != 1 or not 0 < critic_dims < obs_dim):
            raise ValueError(
                f"critic-only entries need a flat observation wider than {critic_dims}"
            )
        self.action_space = action_space
        self.discrete = isinstance(action_space, DiscreteSpace | MultiDiscreteSpace)
        # MultiDiscrete: one block of logits per component (training/multi_categorical.py)
        self.nvec = action_space.nvec if isinstance(action_space, MultiDiscreteSpace) else None
        self._build_networks(_output_width(action_space), speedups)
        # The actor and critic run as one (training/fast/fused_policy.py) where it covers them.
        self._fused = FusedMLP() if speedups and fusable(self) else None
        if isinstance(action_space, BoxSpace):
            self.log_std = nn.Parameter(torch.zeros(action_space.dim))
            # Clipping bounds on the policy's device, moved by .to() like the
            # weights; not saved (the space is in the checkpoint already).
            self.register_buffer("action_low", torch.tensor(action_space.low), persistent=False)
            self.register_buffer("action_high", torch.tensor(action_space.high), persistent=False)

    def _build_networks(self, n_out: int, speedups: bool) -> None:
        """The trunk, core and heads, built (and so initialised) in a fixed order."""
        hidden, activation, critic_dims = self.hidden, self.activation, self.critic_dims
        # None for mlp: each head reads the observation itself, as before encoders.
        self.trunk: ObservationTrunk | None = None
        self.core: RecurrentCore | None = None
        if self.encoder == "mlp":
            width = self.actor_dim
            if self.recurrent != "none":  # obs -> core -> actor and critic MLPs
                self.core = recurrent_core(self.recurrent, width, self.rnn_hidden)
                width = self.rnn_hidden
            self.actor = mlp(width, hidden, n_out, 0.01, speedups, activation)
            self.critic = mlp(width + critic_dims, hidden, 1, 1.0, speedups, activation)
        else:  # obs -> shared trunk (-> core) -> linear heads
            actor_shape = (self.actor_dim,) if critic_dims else self.obs_shape
            self.trunk = _trunk(self.encoder, actor_shape, hidden, speedups, activation)
            width = hidden[-1]
            if self.recurrent != "none":
                self.core = recurrent_core(self.recurrent, width, self.rnn_hidden)
                width = self.rnn_hidden
            self.actor = orthogonal_linear(width, n_out, 0.01, speedups)
            self.critic = orthogonal_linear(width + critic_dims, 1, 1.0, speedups)

    def plain_twin(self) -> ActorCritic:
        """A copy with plain torch layers (``speedups`` off) and these weights: the
        same values, and a network TorchScript and ``torch.export`` take whole."""
        twin = ActorCritic(**self._architecture, speedups=False)
        twin.load_state_dict(self.state_dict())
        return twin.to(self.device_of_parameters)

    @property
    def memory_size(self) -> int:
        """Width of the recurrent core's state (0 without one)."""
        return 0 if self.core is None else self.core.memory_size

    def initial_memory(self, n: int) -> torch.Tensor | None:
        """A fresh episode's memory for ``n`` copies; None for a feed-forward policy."""
        if self.core is None:
            return None
        return torch.zeros(n, self.core.memory_size, device=self.device_of_parameters)

    def actor_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """The observation without its critic-only entries; an observation that
        already lacks them (a deployed policy's input) as it is."""
        if self.critic_dims and obs.shape[-1] == self.obs_dim:
            return obs[..., : self.actor_dim]
        return obs

    def _actor_features(
        self, obs: torch.Tensor, memory: torch.Tensor | None, actor_obs_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the actor head reads (the trunk's or the core's output, or for
        ``mlp`` the observation itself, uint8 pixels as floats in [0, 1]), and
        the memory after this step. ``actor_obs_only``: ``obs`` is known to hold
        no critic-only entries (an exported policy's input: no shape test to trace)."""
        x = obs if actor_obs_only else self.actor_obs(obs)
        features = pixels_as_float(x) if self.trunk is None else self.trunk(x)
        if self.core is not None:
            assert memory is not None, "a recurrent policy acts from its memory"
            features, memory = self.core.step(features, memory)
        return features, memory

    def _critic_features(self, obs: torch.Tensor, actor_features: torch.Tensor) -> torch.Tensor:
        """What the critic head reads: the actor's features, with the critic-only
        entries beside them (CleanRL's separate critic MLP: the whole observation)."""
        if not self.critic_dims:
            return actor_features
        if self.trunk is None and self.core is None:
            return pixels_as_float(obs)
        return torch.cat((actor_features, obs[..., self.actor_dim :]), dim=-1)

    def value(self, obs: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]`` state values (a recurrent policy's from ``memory``, left unchanged)."""
        features, _ = self._actor_features(obs, memory)
        return self.critic(self._critic_features(obs, features)).squeeze(-1)

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
        self,
        obs: torch.Tensor,
        noise: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        action_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Sample actions: ``(action, log_prob [B], value [B], memory after)``; the
        memory is None for a feed-forward policy. ``action_mask`` (``[B,
        mask_width]`` bool) limits a discrete policy to the allowed actions."""
        views = self._fused_views(obs, action_mask)
        if views is not None:  # the speed trick: same values at float rounding
            noise = self.sample_noise(obs.shape[0]) if noise is None else noise
            return (*fused_act(views, obs, noise), None)
        features, memory = self._actor_features(obs, memory)
        action, log_prob = self._sample(features, noise, action_mask)
        value = self.critic(self._critic_features(obs, features)).squeeze(-1)
        return action, log_prob, value, memory

    def _fused_views(self, obs: torch.Tensor, action_mask: torch.Tensor | None) -> Any:
        """The fused forward's views when it covers this call (eager, no gradients,
        float observations, no mask, parameters side by side); else None."""
        if self._fused is None or action_mask is not None or torch.is_grad_enabled():
            return None
        if torch.compiler.is_compiling() or obs.dtype != torch.float32 or obs.dim() != 2:
            return None
        return self._fused.views(self.actor, self.critic)

    def sample(
        self,
        obs: torch.Tensor,
        noise: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        actor_obs_only: bool = False,
        action_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``act`` without the critic: ``(action, memory after)``. What acting outside
        training needs, and all it can do without critic-only entries."""
        features, memory = self._actor_features(obs, memory, actor_obs_only)
        action, _ = self._sample(features, noise, action_mask)
        return action, memory

    def _sample(
        self,
        features: torch.Tensor,
        noise: torch.Tensor | None,
        action_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An action from the distribution the actor puts on ``features``; its log-prob."""
        if noise is None:
            noise = self.sample_noise(features.shape[0])
        out = multi_categorical.masked(self.actor(features), action_mask)
        if self.nvec is not None:
            return multi_categorical.sample(out, noise, self.nvec)
        if self.discrete:
            log_probs = torch.log_softmax(out, dim=-1)
            # Gumbel-max: argmax(logits + Gumbel noise) is a categorical sample.
            action = torch.argmax(log_probs + noise, dim=-1)
            return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        action = out + self.log_std.exp() * noise
        return action, self._gaussian_log_prob(out, action)

    def memory_for(
        self, memory: torch.Tensor | None, copies: int, starts: torch.Tensor | None
    ) -> torch.Tensor | None:
        """The memory acting outside training continues from: ``memory`` (fresh
        when there is none, or for another number of copies), forgotten where
        ``starts`` ([copies] bool) says an episode begins. None without a core."""
        if self.core is None:
            return None
        if memory is None or memory.shape[0] != copies:
            memory = self.initial_memory(copies)
        if starts is None:
            return memory
        return forget_ended(memory, starts.reshape(copies))  # type: ignore[arg-type]

    def env_action(self, action: torch.Tensor) -> torch.Tensor:
        """What the environment receives: Gaussian samples clipped to the bounds.

        The rollout buffer keeps the unclipped sample, whose log-probability was scored.
        """
        if self.discrete:
            return action
        return torch.clamp(action, self.action_low, self.action_high)

    def act_deterministic(
        self,
        obs: torch.Tensor,
        memory: torch.Tensor | None = None,
        actor_obs_only: bool = False,
        action_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The most likely action (argmax, or the Gaussian mean), and the memory
        after; the most likely allowed action under ``action_mask``."""
        features, memory = self._actor_features(obs, memory, actor_obs_only)
        out = multi_categorical.masked(self.actor(features), action_mask)
        if self.nvec is not None:
            return multi_categorical.mode(out, self.nvec), memory
        return (out.argmax(dim=-1) if self.discrete else out), memory

    def evaluate(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        memory: torch.Tensor | None = None,
        starts: torch.Tensor | None = None,
        action_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score stored actions: ``(log_prob [B], entropy [B], value [B])``, under
        the ``action_mask`` they were sampled with (the same distribution).

        A recurrent policy replays whole sequences: ``obs`` holds ``E`` of them
        back to back (``[E * T, ...]``), ``memory [E, memory_size]`` is each one's
        memory before its first step and ``starts [E * T]`` marks the steps that
        began an episode, where the memory is zeroed as it was in the rollout.
        """
        if self.core is None:
            features, _ = self._actor_features(obs, None)
        else:
            assert memory is not None and starts is not None, "sequences need their memory"
            features = self._replay(obs, memory, starts)
        out = multi_categorical.masked(self.actor(features), action_mask)
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
        return log_prob, entropy, self.critic(self._critic_features(obs, features)).squeeze(-1)

    def _replay(
        self, obs: torch.Tensor, memory: torch.Tensor, starts: torch.Tensor
    ) -> torch.Tensor:
        """The core's outputs ``[E * T, rnn_hidden]`` over ``E`` whole sequences."""
        assert self.core is not None
        x = self.actor_obs(obs)
        features = pixels_as_float(x) if self.trunk is None else self.trunk(x)
        sequences = memory.shape[0]
        out = self.core.replay(
            features.view(sequences, -1, features.shape[-1]), memory, starts.view(sequences, -1)
        )
        return out.reshape(-1, out.shape[-1])

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
        dense.append(orthogonal_linear(width, h, math.sqrt(2), fast))
        dense.append(activation_layer(activation, fast))
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
        str(config.get("recurrent", "none")),
        config.get("rnn_hidden", 64),
        spec.critic_obs_dim,
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
