"""``--task pettingzoo:MODULE``: a PettingZoo parallel environment behind the
multi-agent batched API.

``pettingzoo:mpe2.simple_spread_v3`` imports ``mpe2.simple_spread_v3`` and calls
its ``parallel_env()`` once per copy (``pettingzoo:MODULE:FACTORY`` names
another factory). The copies step one after another on the CPU, as ``gym:``
tasks do; actions cross to the host once per step and observations, rewards
and flags come back as tensors on the training device, in the shapes of a
multi-agent ``BatchedEnv``: obs ``[num_envs, n_agents, obs_dim]``, reward
``[num_envs, n_agents]``, terminated and truncated ``[num_envs]``,
``info["final_obs"]``, and ``action_mask`` ``[num_envs, n_agents, width]``
for a masked task. So the trainer cannot tell it from a batched task except by
``on_device = False``.

What esper asks of the environment, refused in one line otherwise:

- the agents are homogeneous: every one of ``possible_agents`` has the same
  observation space and the same action space (one policy acts for all);
- the agents of a copy end together: an agent that terminates or is
  truncated while others play on (agents leaving mid-episode) is not
  supported. A copy whose agents have all ended is reset at once
  (auto-reset per copy) and its last observation kept in ``info["final_obs"]``.

Observations are flattened per agent (a ``Box`` reshaped, other spaces as
gymnasium's ``flatten`` does). Action masks come from either conventional
place: a ``Dict`` observation with an ``"action_mask"`` key (the policy
observes the rest), or ``infos[agent]["action_mask"]``. The episodes cannot be
saved: a resumed run starts fresh episodes, as ``gym:`` tasks do.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from functools import cache, cached_property
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch

from esper.envs.base import EnvSpec, SpecShapes, StepResult
from esper.envs.gym_adapter import (
    MASK_KEY,
    convert_action_space,
    masked_in_observation,
    observation_dim,
    without_mask,
)
from esper.envs.gym_ids import PETTINGZOO_PREFIX
from esper.runtime.errors import UserError
from esper.runtime.extras import install_hint

DEFAULT_FACTORY = "parallel_env"  # what PettingZoo's environment modules export


class UnsupportedAgentsError(UserError, ValueError):
    """A PettingZoo environment whose agents esper cannot train as one policy."""

    setting = "task"


class MissingParallelEnv(UserError, ValueError):
    """A ``pettingzoo:`` module or factory that cannot be loaded; the registry
    reports it as an unknown task (this module sits below the registry)."""

    setting = "task"


def load_factory(target: str) -> Callable[[], Any]:
    """The parallel-env factory ``module[:factory]`` names, imported."""
    try:
        import pettingzoo  # noqa: F401 - a missing package is named before the module
    except ImportError:
        reason = f"needs the optional package 'pettingzoo': {install_hint('pettingzoo')}"
        raise MissingParallelEnv(reason) from None
    module_name, _, attribute = target.partition(":")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))  # as module:Factory tasks: your own module here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingParallelEnv(f"cannot import {module_name}: {exc}") from None
    factory = getattr(module, attribute or DEFAULT_FACTORY, None)
    if not callable(factory):
        raise MissingParallelEnv(
            f"{module_name} has no {attribute or DEFAULT_FACTORY}() parallel-env factory"
        )
    return factory


def shared_spaces(name: str, env: Any) -> tuple[list[str], gymnasium.Space, gymnasium.Space]:
    """Every agent's name, and the one observation and action space they share;
    agents whose spaces differ from the first agent's are refused by name."""
    agents = list(env.possible_agents)
    if not agents:
        raise UnsupportedAgentsError(f"{name} declares no possible_agents")
    first = agents[0]
    obs_space, action_space = env.observation_space(first), env.action_space(first)
    differ = [
        agent
        for agent in agents[1:]
        if env.observation_space(agent) != obs_space or env.action_space(agent) != action_space
    ]
    if differ:
        raise UnsupportedAgentsError(
            f"{name}: agents {', '.join(differ)} have other observation or action spaces "
            f"than {first}; esper trains one policy for all agents, which needs the same spaces"
        )
    return agents, obs_space, action_space


def parallel_spec(name: str, env: Any) -> EnvSpec:
    """The ``EnvSpec`` of a parallel env: one agent's spaces, ``n_agents``, and the
    time limit its ``max_cycles`` sets (None when it declares none)."""
    agents, obs_space, action_space = shared_spaces(name, env)
    masked = masked_in_observation(obs_space)
    if masked:
        obs_space = without_mask(obs_space)
    actions = convert_action_space(name, action_space)
    if not masked and actions.is_discrete:
        _, infos = env.reset(seed=0)  # the other convention: the mask in each agent's info
        masked = any(MASK_KEY in (infos.get(agent) or {}) for agent in agents)
    return EnvSpec(
        name=name,
        gym_id="",
        obs_dim=observation_dim(name, obs_space),
        state_dim=0,
        action_space=actions,
        max_episode_steps=getattr(env.unwrapped, "max_cycles", None),
        has_action_mask=masked,
        n_agents=len(agents),
    )


@cache
def probe_spec(target: str) -> EnvSpec:
    """The spec of ``pettingzoo:target``, read from one env built and closed."""
    env = load_factory(target)()
    try:
        return parallel_spec(PETTINGZOO_PREFIX + target, env)
    finally:
        env.close()


class PettingZooVectorEnv(SpecShapes):
    """``num_envs`` copies of a PettingZoo parallel env, with a multi-agent
    ``BatchedEnv``'s methods; ``state_dict`` only records which env it is."""

    on_device: ClassVar[bool] = False
    restorable: ClassVar[bool] = False

    def __init__(
        self, target: str, num_envs: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs})")
        self.target = target
        self.num_envs = num_envs
        self.device = torch.device(device)
        factory = load_factory(target)
        self.envs = [factory() for _ in range(num_envs)]
        name = PETTINGZOO_PREFIX + target
        self.spec = parallel_spec(name, self.envs[0])
        self.agents, obs_space, action_space = shared_spaces(name, self.envs[0])
        self._mask_in_obs = masked_in_observation(obs_space)
        self._obs_space = without_mask(obs_space) if self._mask_in_obs else obs_space
        self._action_space = action_space
        self._action_start = int(getattr(action_space, "start", 0))
        self._pending_seed: int | None = seed  # used by the first reset without a seed
        # Host arrays keep an agent axis even for one agent; ``_to_device`` drops it.
        rows = (num_envs, len(self.agents))
        self._obs = np.zeros((*rows, self.spec.obs_dim), dtype=np.float32)
        self._final_obs = np.zeros_like(self._obs)
        self._reward = np.zeros(rows, dtype=np.float32)
        if self.spec.has_action_mask:
            width = self.spec.action_space.mask_width
            self._mask = np.ones((*rows, width), dtype=bool)
            shape = (num_envs, *self.spec.agent_shape, width)
            self.action_mask = torch.ones(shape, dtype=torch.bool, device=self.device)

    # --- the batched contract ---------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy (copy ``i`` seeded ``seed + i``); obs ``[num_envs, n_agents, obs_dim]``.
        Without a seed, the first reset uses the constructor's; later ones carry
        on each copy's own random stream."""
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        for i in range(self.num_envs):
            self._reset_copy(i, None if seed is None else seed + i)
        self._mask_to_device()
        return self._to_device(self._obs)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Step every copy; copies whose agents all ended reset, ``info["final_obs"]``
        as ``BatchedEnv``."""
        host = actions.detach().cpu().numpy().reshape(self.num_envs, len(self.agents), -1)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            step = env.step(
                {agent: self._action(host[i, k]) for k, agent in enumerate(self.agents)}
            )
            obs, rewards, terminations, truncations, infos = step
            ended = self._ended(i, obs, terminations, truncations)
            self._final_obs[i] = self._rows(obs)
            self._reward[i] = [float(rewards.get(agent, 0.0)) for agent in self.agents]
            terminated[i] = ended and all(bool(terminations.get(a)) for a in self.agents)
            truncated[i] = ended and not terminated[i]
            if ended:
                self._reset_copy(i, None)
            else:
                self._obs[i] = self._final_obs[i]
                self._read_mask(i, obs, infos)
        info = {"final_obs": self._to_device(self._final_obs)}
        if self._mask_to_device():
            info["action_mask"] = self.action_mask
        return (
            self._to_device(self._obs),
            self._to_device(self._reward),
            torch.as_tensor(terminated).to(self.device),
            torch.as_tensor(truncated).to(self.device),
            info,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"pettingzoo": self.target, "num_envs": self.num_envs}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Only checks the saved env is this one: PettingZoo envs cannot be restored."""
        if saved.get("pettingzoo") != self.target or saved.get("num_envs") != self.num_envs:
            raise ValueError(
                f"saved environment {saved.get('pettingzoo')} x{saved.get('num_envs')} "
                f"does not match {self.spec.name} x{self.num_envs}"
            )

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # --- one copy at a time, on the host ---------------------------------------
    def _reset_copy(self, i: int, seed: int | None) -> None:
        obs, infos = self.envs[i].reset(seed=seed)
        self._obs[i] = self._rows(obs)
        self._read_mask(i, obs, infos)

    def _ended(self, i: int, obs: dict, terminations: dict, truncations: dict) -> bool:
        """Whether copy ``i``'s episode is over; refused when only some agents ended."""
        ended = [bool(terminations.get(a)) or bool(truncations.get(a)) for a in self.agents]
        gone = [a for a, done in zip(self.agents, ended, strict=True) if done or a not in obs]
        if gone and not all(ended):
            raise UnsupportedAgentsError(
                f"{self.spec.name}: {', '.join(gone)} left copy {i} while other agents played "
                "on; agents that leave mid-episode are not supported (all must end together)"
            )
        return all(ended)

    def _rows(self, obs: dict) -> np.ndarray:
        """``[n_agents, obs_dim]`` float32: each agent's observation flattened."""
        return np.stack([self._flat(obs[agent]) for agent in self.agents])

    def _flat(self, value: Any) -> np.ndarray:
        if self._mask_in_obs:
            value = {key: part for key, part in value.items() if key != MASK_KEY}
        if isinstance(self._obs_space, gymnasium.spaces.Box):
            return np.asarray(value, dtype=np.float32).reshape(-1)
        return gymnasium.spaces.flatten(self._obs_space, value).astype(np.float32)

    def _action(self, row: np.ndarray) -> Any:
        """One agent's action as its space takes it (``Discrete`` counts from its start)."""
        space = self._action_space
        if isinstance(space, gymnasium.spaces.Discrete):
            return int(row[0]) + self._action_start
        if isinstance(space, gymnasium.spaces.MultiDiscrete):
            return row.astype(np.int64)
        return row.astype(space.dtype)

    def _read_mask(self, i: int, obs: dict, infos: dict) -> None:
        if self.action_mask is None:
            return
        for k, agent in enumerate(self.agents):
            where = obs[agent] if self._mask_in_obs else (infos.get(agent) or {})
            if MASK_KEY not in where:
                raise ValueError(f"{self.spec.name} stopped giving {agent}'s {MASK_KEY!r}")
            self._mask[i, k] = np.asarray(where[MASK_KEY]).reshape(-1).astype(bool)

    def _mask_to_device(self) -> bool:
        """Copy the host masks into ``action_mask``; False for an unmasked task."""
        if self.action_mask is None:
            return False
        self.action_mask.copy_(self._to_device(self._mask))
        return True

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        """A copy (the host arrays are reused) on the device, without the agent
        axis when there is one agent: the single-agent contract's shapes."""
        tensor = torch.as_tensor(array.copy())
        if not self.spec.is_multi_agent and tensor.dim() > 1:
            tensor = tensor.squeeze(1)
        return tensor.to(self.device)


class PettingZooTask:
    """What ``env_class("pettingzoo:MODULE")`` returns: called like a ``BatchedEnv``
    class; ``spec`` reads one probe env (``probe_spec``)."""

    on_device: ClassVar[bool] = False
    restorable: ClassVar[bool] = False
    origin: ClassVar[str] = "pettingzoo"

    def __init__(self, target: str) -> None:
        self.target = target
        self.name = PETTINGZOO_PREFIX + target

    @cached_property
    def spec(self) -> EnvSpec:
        return probe_spec(self.target)

    def __call__(
        self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> PettingZooVectorEnv:
        return PettingZooVectorEnv(self.target, num_envs=num_envs, device=device, seed=seed)
