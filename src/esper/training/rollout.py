"""The rollout: a preallocated buffer and the loop that fills it.

The buffer is sized once from ``horizon x n_envs`` and written in place.
The loop runs under ``torch.no_grad`` and never reads a tensor's value on the
host, so on CUDA it only enqueues work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from esper.envs.base import BatchedEnv
from esper.training.episode_stats import EpisodeTracker
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RewardScaler, RunningMeanStd
from esper.training.policy.recurrent import forget_ended


@dataclass
class RolloutBuffer:
    # [horizon, n_envs, obs_dim] (normalised, as the policy saw them), in the task's
    # obs dtype: uint8 images stay uint8 (a quarter of float32's memory)
    obs: torch.Tensor
    actions: torch.Tensor  # [horizon, n_envs] or [horizon, n_envs, act_dim]
    log_probs: torch.Tensor  # [horizon, n_envs]
    values: torch.Tensor  # [horizon, n_envs]
    rewards: torch.Tensor  # [horizon, n_envs]
    terminated: torch.Tensor  # [horizon, n_envs] bool
    truncated: torch.Tensor  # [horizon, n_envs] bool (time limit, not terminal)
    final_obs: torch.Tensor  # [horizon, n_envs, obs_dim] obs each step ended on
    # A recurrent policy's only (None otherwise): the memory before the batch's first
    # step [n_envs, memory_size], where the update's replay of each sequence starts,
    # and V(final obs) [horizon, n_envs] from the memory each step ended with, which
    # only the rollout has (GAE bootstraps truncated episodes from it).
    first_memory: torch.Tensor | None = None
    final_values: torch.Tensor | None = None
    # A masked task's only: [horizon, n_envs, mask_width] bool, the actions each
    # step allowed, which the update applies again (the same distribution).
    action_masks: torch.Tensor | None = None

    @classmethod
    def allocate(
        cls,
        horizon: int,
        n_envs: int,
        obs_dim: int,
        action_shape: tuple[int, ...],
        device,
        obs_dtype: torch.dtype = torch.float32,
        memory_size: int = 0,
        mask_width: int = 0,
    ) -> RolloutBuffer:
        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        action_dtype = torch.int64 if action_shape == () else torch.float32
        return cls(
            obs=zeros(horizon, n_envs, obs_dim, dtype=obs_dtype),
            actions=zeros(horizon, n_envs, *action_shape, dtype=action_dtype),
            log_probs=zeros(horizon, n_envs),
            values=zeros(horizon, n_envs),
            rewards=zeros(horizon, n_envs),
            terminated=zeros(horizon, n_envs, dtype=torch.bool),
            truncated=zeros(horizon, n_envs, dtype=torch.bool),
            final_obs=zeros(horizon, n_envs, obs_dim, dtype=obs_dtype),
            first_memory=zeros(n_envs, memory_size) if memory_size else None,
            final_values=zeros(horizon, n_envs) if memory_size else None,
            action_masks=zeros(horizon, n_envs, mask_width, dtype=torch.bool)
            if mask_width
            else None,
        )

    @property
    def horizon(self) -> int:
        return self.obs.shape[0]

    def step_views(self) -> list[RolloutBuffer]:
        """Per-step views ``[n_envs, ...]`` of every per-step field, made with one
        ``unbind`` per field rather than one indexing op per field per step."""
        fields = {
            name: getattr(self, name).unbind(0)
            for name in self.__dataclass_fields__
            if name != "first_memory" and getattr(self, name) is not None
        }
        return [
            RolloutBuffer(**{name: views[t] for name, views in fields.items()})
            for t in range(self.horizon)
        ]


@torch.no_grad()
def collect_rollout(
    env: BatchedEnv,
    policy: ActorCritic,
    buffer: RolloutBuffer,
    next_obs: torch.Tensor,
    obs_normalizer: RunningMeanStd | None,
    episodes: EpisodeTracker,
    reward_scaler: RewardScaler | None = None,
    memory: torch.Tensor | None = None,
    step: Callable[..., torch.Tensor] | None = None,
) -> torch.Tensor:
    """Fill ``buffer`` with one batch of transitions; return the raw obs that follows.
    ``step`` is ``rollout_step`` or its compiled twin (training/capture.py). A
    recurrent policy's ``memory`` (``[n_envs, memory_size]``) is carried in place."""
    step = step or rollout_step
    if memory is not None:
        buffer.first_memory.copy_(memory)  # type: ignore[union-attr]
    episodes.resize(buffer.horizon)
    noise = policy.sample_noise(buffer.horizon, buffer.obs.shape[1])  # [horizon, n_envs, n_out]
    # [horizon, n_envs, state_dim] for a batched task; gym: tasks reset themselves
    fresh = (
        env.draw_initial_states(buffer.horizon).unbind(0)
        if isinstance(env, BatchedEnv) and env.takes_drawn_states
        else [None] * buffer.horizon
    )
    steps = zip(buffer.step_views(), noise.unbind(0), fresh, episodes.rows(), strict=True)
    for slot, step_noise, step_fresh, episode_row in steps:
        next_obs = step(
            env,
            policy,
            slot,
            next_obs,
            step_noise,
            step_fresh,
            episode_row,
            obs_normalizer,
            episodes,
            reward_scaler,
            memory,
        )
    return next_obs


def rollout_step(
    env: BatchedEnv,
    policy: ActorCritic,
    slot: RolloutBuffer,
    obs: torch.Tensor,
    noise: torch.Tensor,
    fresh: torch.Tensor | None,
    episode_row: torch.Tensor,
    obs_normalizer: RunningMeanStd | None,
    episodes: EpisodeTracker,
    reward_scaler: RewardScaler | None = None,
    memory: torch.Tensor | None = None,
) -> torch.Tensor:
    """One environment step of every copy (under a masked task's ``env.action_mask``),
    written into ``slot`` and ``episode_row`` (this step's views of the buffer and
    of the episode slab), with ``noise`` for the policy and ``fresh`` states for
    the copies that finish (both drawn before the loop); returns the next raw obs.

    A recurrent policy acts from ``memory`` and writes the memory after the
    step back into it, zeroed for the copies whose episode ended (their next
    observation is a new episode's); the value of each step's final observation
    is taken from the memory before that zeroing.

    Pure tensor work with no host reads and no branch on a tensor's value, so
    ``torch.compile(fullgraph=True)`` traces it whole (tested on the CPU) and a
    CUDA graph can replay it (written for; unmeasured on a GPU).
    """
    if obs_normalizer is not None:
        obs_normalizer.update(obs)
        policy_obs = obs_normalizer.normalize(obs)
    else:
        policy_obs = obs
    action_mask = env.action_mask  # the mask of ``obs``, kept in place; None: no mask
    action, log_prob, value, memory_after = policy.act(policy_obs, noise, memory, action_mask)
    if action_mask is not None:  # stored before the step overwrites it with the next
        slot.action_masks.copy_(action_mask)  # type: ignore[union-attr]
    if fresh is None:  # a gym: task (or an overridden step) resets its own copies
        stepped = env.step(policy.env_action(action))
    else:
        stepped = env.step(policy.env_action(action), fresh)
    next_obs, reward, terminated, truncated, info = stepped
    final_obs = info["final_obs"]
    if obs_normalizer is not None:
        final_obs = obs_normalizer.normalize(final_obs)
    slot.obs.copy_(policy_obs)
    slot.actions.copy_(action)
    slot.log_probs.copy_(log_prob)
    slot.values.copy_(value)
    episode_ended = terminated | truncated
    episodes.record_row(episode_row, reward, episode_ended)  # raw rewards: what users compare
    if reward_scaler is not None:
        reward = reward_scaler.scale(reward, episode_ended)
    slot.rewards.copy_(reward)
    slot.terminated.copy_(terminated)
    slot.truncated.copy_(truncated)
    slot.final_obs.copy_(final_obs)
    if memory is not None and memory_after is not None:
        slot.final_values.copy_(policy.value(final_obs, memory_after))  # type: ignore[union-attr]
        memory.copy_(forget_ended(memory_after, episode_ended))
    return next_obs
