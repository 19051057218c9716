"""The deterministic policy as one plain torch module: what ``esper export`` writes.

``obs -> (obs - mean) / std clipped -> actor -> action``: the observation
normaliser folded in as constants, then the argmax (discrete) or the Gaussian
mean clipped to the action bounds (continuous), exactly as ``load_policy``
acts. The network is the plain twin of the trained one (``speedups`` off: the
same weights and values, no custom autograd or shape-dependent branches), so
TorchScript and ``torch.export`` can take it whole.

``StochasticPolicy`` is its sampling twin (``esper export --stochastic``): the
same network and normaliser, acting as training samples, the noise an input.

A policy kind declares its interface here, not in the exporter: ``input_names``
and ``output_names`` (a recurrent policy adds its memory to both),
``batch_dims`` (the batch axis of each input) and ``example_inputs``. Critic-only
observation entries are not inputs: a deployed actor never has them. A task
with an action mask exports ``MaskedDeterministicPolicy``, whose second input
is the mask.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RunningMeanStd


class DeterministicPolicy(nn.Module):
    """``forward(obs) -> action``; a recurrent policy's ``forward(obs, memory) ->
    (action, memory)``.

    ``obs`` is ``[B, obs_dim]`` float32 for a flat task (without its critic-only
    entries: ``actor_obs_dim`` wide), and ``[B, C, H, W]`` in the task's dtype
    (uint8 pixels as the environment gives them) for an image task. ``memory``
    is ``[B, memory_size]`` float32, zeros at an episode's start; feed back the
    memory each call returns. The action is ``[B]`` int64 or ``[B, act_dim]``
    float32 (``[B, n]`` int64 for MultiDiscrete).
    """

    def __init__(
        self,
        model: ActorCritic,
        obs_normalizer: RunningMeanStd | None,
        obs_dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.model = model.plain_twin()
        self.obs_dtype = obs_dtype
        self.obs_shape = (model.actor_dim,) if model.critic_dims else model.obs_shape
        self.memory_size = model.memory_size
        self.recurrent = model.core is not None
        self.input_names = ("obs", "memory") if self.recurrent else ("obs",)
        self.output_names = ("action", "memory_out") if self.recurrent else ("action",)
        self.batch_dims = (0,) * len(self.input_names)  # the batch axis of each input
        self.normalizes = obs_normalizer is not None
        if obs_normalizer is not None:
            # The float32 constants RunningMeanStd.normalize computes for float32
            # input, for the entries the actor reads.
            mean = obs_normalizer.mean.to(torch.float32)[: model.actor_dim]
            std = obs_normalizer.std(torch.float32)[: model.actor_dim]
            self.register_buffer("obs_mean", mean.detach().clone())
            self.register_buffer("obs_std", std.detach().clone())
            self.clip = float(obs_normalizer.clip)
        self.eval().requires_grad_(False)

    def forward(
        self, obs: torch.Tensor, memory: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self._act(obs, memory, None)

    def _act(
        self, obs: torch.Tensor, memory: torch.Tensor | None, action_mask: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        action, memory = self.model.act_deterministic(
            self._normalized(obs), memory, actor_obs_only=True, action_mask=action_mask
        )
        return self._output(action, memory)

    def _output(
        self, action: torch.Tensor, memory: torch.Tensor | None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The action as the environment takes it, and a recurrent policy's memory."""
        action = self.model.env_action(action)
        if self.recurrent:
            assert memory is not None
            return action, memory
        return action

    def _takes_after_obs(self, name: str) -> None:
        """One more input right after ``obs`` (a recurrent memory stays last)."""
        self.input_names = ("obs", name, *self.input_names[1:])
        self.batch_dims = (0,) * len(self.input_names)

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.flatten(1)  # [B, C, H, W] -> the flat rows the network reads
        if self.normalizes:
            obs = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
        return obs

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Inputs of the right shapes and dtypes (zeros) for tracing and export."""
        obs = torch.zeros(batch, *self.obs_shape, dtype=self.obs_dtype)
        if self.recurrent:
            return obs, torch.zeros(batch, self.memory_size)
        return (obs,)


class StochasticPolicy(DeterministicPolicy):
    """``forward(obs, noise) -> action`` (a recurrent policy's ``forward(obs, noise,
    memory) -> (action, memory)``): training's sampling, with the randomness an input,
    so the file itself is deterministic and any runtime can run it.

    ``noise`` is ``[B, n_out]`` float32, drawn fresh each call: standard Gumbel
    noise (``-log(-log(U))``, U uniform in (0, 1]) over the logits for a discrete
    policy (``n_out`` = the number of actions; their sum for MultiDiscrete),
    standard normal noise for a continuous one (``n_out`` = act_dim). Zero noise
    gives the deterministic policy's action for a Gaussian policy.
    """

    def __init__(self, model: ActorCritic, *normalizer_and_dtype: Any) -> None:
        super().__init__(model, *normalizer_and_dtype)
        self.noise_width = int(model.sample_noise(1).shape[-1])
        self._takes_after_obs("noise")

    def forward(  # type: ignore[override]
        self, obs: torch.Tensor, noise: torch.Tensor, memory: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        obs = self._normalized(obs)
        action, memory = self.model.sample(obs, noise, memory, actor_obs_only=True)
        return self._output(action, memory)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        obs, *memory = super().example_inputs(batch)
        return (obs, torch.zeros(batch, self.noise_width), *memory)


class MaskedDeterministicPolicy(DeterministicPolicy):
    """``forward(obs, action_mask) -> action``; a recurrent policy's
    ``forward(obs, action_mask, memory) -> (action, memory)``. ``action_mask`` is
    ``[B, mask_width]`` bool: the most likely allowed action is taken."""

    def __init__(self, model: ActorCritic, *normalizer_and_dtype: Any) -> None:
        super().__init__(model, *normalizer_and_dtype)
        self.mask_width = model.action_space.mask_width
        self._takes_after_obs("action_mask")

    def forward(  # type: ignore[override]
        self, obs: torch.Tensor, action_mask: torch.Tensor, memory: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self._act(obs, memory, action_mask)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        obs, *memory = super().example_inputs(batch)
        return obs, torch.ones(batch, self.mask_width, dtype=torch.bool), *memory
