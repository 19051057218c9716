"""Multi-agent tasks the training tests build by name (``agent_tasks:NAME``)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from esper.envs import BatchedEnv, BoxSpace, EnvSpec, Transition


class Drift(BatchedEnv):
    """Three agents steer their own position toward a shared target.

    ``state`` is ``[x_0, x_1, x_2, target]``; agent ``i`` observes
    ``[x_i, target]``, is paid ``-|x_i - target|`` (rewards differ per agent)
    and the global state a central critic reads is the whole state. Episodes
    run 6 steps (truncated, so the final global state bootstraps) unless every
    agent is within 0.1 of the target (terminated)."""

    spec = EnvSpec(
        "drift",
        "",
        obs_dim=2,
        state_dim=4,
        action_space=BoxSpace((-1.0,), (1.0,)),
        max_episode_steps=6,
        n_agents=3,
        global_state_dim=4,
    )
    default_config: ClassVar[dict[str, Any]] = {"n_envs": 8, "horizon": 16, "n_minibatches": 4}

    def initial_state(self, n: int) -> torch.Tensor:
        return self.uniform(n, 4, -1.0, 1.0)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        target = state[:, 3:].expand(-1, 3)
        return torch.stack((state[:, :3], target), dim=-1).to(torch.float32)  # [n, 3, 2]

    def global_state(self, state: torch.Tensor) -> torch.Tensor:
        return state.to(torch.float32)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        positions = state[:, :3] + 0.3 * actions[..., 0].to(state.dtype)  # actions [n, 3, 1]
        distance = (positions - state[:, 3:]).abs()
        next_state = torch.cat((positions, state[:, 3:]), dim=1)
        return next_state, -distance, (distance < 0.1).all(dim=1)


class WrongAgentCount(Drift):
    """Declares four agents and observes three."""

    spec = EnvSpec(
        "wrong-agents", "", 2, 4, BoxSpace((-1.0,), (1.0,)), max_episode_steps=6, n_agents=4
    )
