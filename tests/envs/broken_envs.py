"""Deliberately broken tasks, each breaking one rule ``esper check-env`` enforces."""

from __future__ import annotations

import torch

from esper.envs.cartpole import CartPole
from esper.envs.probes import MaskProbe


class WrongObsShape(CartPole):
    """Observes one number fewer than its spec's obs_dim says."""

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, :3].to(torch.float32)


class NoFinalObs(CartPole):
    """Forgets info["final_obs"]."""

    def step(self, actions):
        obs, reward, terminated, truncated, _ = super().step(actions)
        return obs, reward, terminated, truncated, {}


class RewardOnWrongDevice(CartPole):
    """Leaves its reward on another device (``meta`` stands in for a GPU)."""

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        return obs, reward.to("meta"), terminated, truncated, info


class SyncsEveryStep(CartPole):
    """Branches in Python on a tensor's value: a host sync every step."""

    def dynamics(self, state, actions):
        next_state, reward, terminated = super().dynamics(state, actions)
        if terminated.any().item():
            reward = reward.clone()
        return next_state, reward, terminated


class GlobalRandomStart(CartPole):
    """Draws its initial states from torch's global generator, not its own."""

    def initial_state(self, n: int) -> torch.Tensor:
        return torch.rand(n, 4, device=self.device, dtype=self.dtype) * 0.1 - 0.05


class FloatTerminated(CartPole):
    """Returns ``terminated`` as 0./1. floats instead of bools."""

    def dynamics(self, state, actions):
        next_state, reward, terminated = super().dynamics(state, actions)
        return next_state, reward, terminated.float()


class DoubleInitialState(CartPole):
    """Draws float64 initial states into a float32 state."""

    def initial_state(self, n: int) -> torch.Tensor:
        return super().initial_state(n).double()


class FinalObsAfterReset(CartPole):
    """Puts the observation after the reset in ``final_obs``, losing the last one."""

    def step(self, actions, fresh=None):
        obs, reward, terminated, truncated, _ = super().step(actions, fresh)
        return obs, reward, terminated, truncated, {"final_obs": obs.clone()}


class MaskOfWrongDtype(MaskProbe):
    """Keeps its action mask as 0/1 floats, not bools."""

    def __init__(self, num_envs: int, *args, **kwargs) -> None:
        super().__init__(num_envs, *args, **kwargs)
        self.action_mask = self.action_mask.float()

    def legal_actions(self, state):
        return super().legal_actions(state).float()


class EverythingForbidden(MaskProbe):
    """Forbids every action once a copy's hidden draw is 2: a state with no move."""

    def legal_actions(self, state):
        return super().legal_actions(state) & (state[:, 2:] != 2)


class StaleMask(MaskProbe):
    """Keeps the mask of the state before the auto-reset: the new episode's
    forbidden action can be sampled."""

    def step(self, actions, fresh=None):
        before = self.legal_actions(self.state)
        obs, reward, terminated, truncated, info = super().step(actions, fresh)
        info["action_mask"] = self.action_mask.copy_(before)
        return obs, reward, terminated, truncated, info


class MaskOfWrongWidth(MaskProbe):
    """Keeps a mask of two flags for its three actions."""

    def __init__(self, num_envs: int, *args, **kwargs) -> None:
        super().__init__(num_envs, *args, **kwargs)
        self.action_mask = self.action_mask[:, :2].clone()

    def legal_actions(self, state):
        return super().legal_actions(state)[:, :2]
