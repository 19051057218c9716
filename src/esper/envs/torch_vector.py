"""Simulators that already batch on the GPU, behind the batched-env API.

Isaac Lab, ManiSkill 3 and Genesis expose gymnasium's vector API
(``reset(seed=) -> (obs, info)``, ``step(actions) -> (obs, reward,
terminated, truncated, info)``) with torch tensors on their device. This
adapter hands those tensors to the trainer as they are: no NumPy round trip,
and no copy when the simulator's device is the training device and the dtype
already matches (``Tensor.to`` returns the tensor itself then).

Observation groups: a dict observation is flattened group by group. When it
has a ``"critic"`` group beside others (Isaac Lab's ``{"policy": ...,
"critic": ...}``), that group goes last and is declared critic-only
(``EnvSpec.critic_obs_dim``): the critic reads it, the actor and every
deployed policy do not. Other groups join in key order.

The observation a finished copy ended on is read from the info the simulator
fills on a same-step reset: ``info["final_obs"]`` with the mask
``info["_final_obs"]`` (gymnasium >= 1.1), or ``info["final_observation"]``
(ManiSkill 3, gymnasium 0.29). A simulator that gives neither (Isaac Lab
resets in place and reports time-outs only) leaves ``final_obs`` equal to the
fresh observation, so a truncated episode bootstraps from the next episode's
first state, the simulator's own limitation.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import torch

from esper.envs.base import EnvSpec, SpecShapes, StepResult
from esper.envs.close import close_env
from esper.envs.gym_adapter import convert_action_space

FINAL_OBS_KEYS = (("final_obs", "_final_obs"), ("final_observation", "_final_observation"))


CRITIC_GROUP = "critic"  # the observation group only the critic reads


def group_order(keys: Any) -> list[str]:
    """A dict observation's groups in the order they are joined: key order, with
    the critic's group last when there are others."""
    ordered = sorted(keys)
    if CRITIC_GROUP in ordered and len(ordered) > 1:
        ordered.remove(CRITIC_GROUP)
        ordered.append(CRITIC_GROUP)
    return ordered


def flat_obs(obs: Any, num_envs: int) -> torch.Tensor:
    """``[num_envs, obs_dim]``: a tensor flattened per copy, or a dict's tensors
    (Isaac Lab's ``{"policy": ...}``) flattened and joined in ``group_order``."""
    if isinstance(obs, dict):
        return torch.cat([flat_obs(obs[key], num_envs) for key in group_order(obs)], dim=1)
    return obs.reshape(num_envs, -1)


def critic_only_dim(space: gymnasium.Space) -> int:
    """Entries of the flat observation only the critic reads: the ``critic``
    group of a dict space that has other groups too, else none."""
    if isinstance(space, gymnasium.spaces.Dict) and len(group_order(space.spaces)) > 1:
        critic = space.spaces.get(CRITIC_GROUP)
        return gymnasium.spaces.flatdim(critic) if critic is not None else 0
    return 0


class TorchVectorEnv(SpecShapes):
    """A gymnasium-style vector env whose tensors live on a torch device.

    ``name`` is the task's name; ``max_episode_steps`` the time limit the
    simulator applies (for the record; the simulator truncates by itself).
    It cannot save the simulator's state: a resume starts fresh episodes.
    """

    on_device: ClassVar[bool] = True  # its tensors stay on the device
    restorable: ClassVar[bool] = False

    def __init__(
        self,
        vector_env: Any,
        name: str,
        device: torch.device | str | None = None,
        seed: int = 0,
        max_episode_steps: int | None = None,
    ) -> None:
        self.envs = vector_env
        self.num_envs: int = vector_env.num_envs
        self.device = torch.device(device or getattr(vector_env, "device", "cpu"))
        action_space = convert_action_space(name, vector_env.single_action_space)
        self.spec = EnvSpec(
            name=name,
            gym_id="",
            obs_dim=gymnasium.spaces.flatdim(vector_env.single_observation_space),
            state_dim=0,
            action_space=action_space,
            max_episode_steps=max_episode_steps,
            critic_obs_dim=critic_only_dim(vector_env.single_observation_space),
        )
        self._discrete = action_space.is_discrete
        self._pending_seed: int | None = seed

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy; the first reset without a seed uses the constructor's."""
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        obs, _ = self.envs.reset(seed=seed)
        return self._float(flat_obs(obs, self.num_envs))

    def step(self, actions: torch.Tensor) -> StepResult:
        actions = actions.to(self.device, torch.int64 if self._discrete else torch.float32)
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        obs = self._float(flat_obs(obs, self.num_envs))
        terminated = terminated.to(self.device, torch.bool).reshape(self.num_envs)
        truncated = truncated.to(self.device, torch.bool).reshape(self.num_envs)
        return (
            obs,
            self._float(reward).reshape(self.num_envs),
            terminated,
            truncated,
            {"final_obs": self._final_obs(obs, info)},
        )

    def _final_obs(self, obs: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        for key, mask_key in FINAL_OBS_KEYS:
            final = info.get(key)
            if isinstance(final, torch.Tensor | dict) and mask_key in info:
                final = self._float(flat_obs(final, self.num_envs))
                mask = torch.as_tensor(info[mask_key], device=self.device).reshape(-1, 1)
                return torch.where(mask.to(torch.bool), final, obs)
        return obs

    def _float(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, torch.float32)  # the same tensor when nothing changes

    def state_dict(self) -> dict[str, Any]:
        return {"name": self.spec.name, "num_envs": self.num_envs}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Only checks the saved env is this one: the simulator's state is its own."""
        if saved.get("name") != self.spec.name or saved.get("num_envs") != self.num_envs:
            raise ValueError(
                f"saved environment {saved.get('name')} x{saved.get('num_envs')} "
                f"does not match {self.spec.name} x{self.num_envs}"
            )

    def close(self) -> None:
        close_env(self.envs)
