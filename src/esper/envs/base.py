"""``BatchedEnv``: the public base class of every batched task, built-in or yours.

A task supplies a ``spec`` (name, spaces, time limit) and three pure tensor
functions: the initial-state distribution, the dynamics (state, action ->
next state, reward, terminated) and the observation of a state. This base
class adds what every task shares and must get right the same way: the time
limit, auto-reset of finished copies, ``info["final_obs"]`` for bootstrapping,
seeding, and save/restore for resume. Every step is a handful of whole-batch
tensor ops: no Python loop over copies, no host synchronisation.
``docs/custom_env.md`` walks through writing one.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from esper.envs.spaces import ActionSpace


@dataclass(frozen=True)
class EnvSpec:
    """What a task is: its name, gymnasium twin, shapes and time limit.

    Observations travel flat, ``[num_envs, obs_dim]``; ``obs_shape`` says how to
    view one (``(C, H, W)`` for an image, which the CNN encoder reads unflattened)
    and ``obs_dtype`` what they are stored as (``torch.uint8`` images stay uint8
    in the rollout buffer and are divided by 255 inside the policy).
    """

    name: str
    gym_id: str  # the gymnasium id of the same task, or "" when it has none
    obs_dim: int
    state_dim: int  # width of ``BatchedEnv.state``; 0 when the state is not exposed
    action_space: ActionSpace
    max_episode_steps: int | None  # None only for gym: tasks gymnasium sets no limit on
    obs_shape: tuple[int, ...] | None = None  # None: (obs_dim,); prod(obs_shape) == obs_dim
    obs_dtype: torch.dtype = torch.float32  # float32, or uint8 for images
    # Privileged information: the last ``critic_obs_dim`` entries of each (flat)
    # observation are for the critic alone. The actor never reads them, so
    # evaluation and exported policies run without them.
    critic_obs_dim: int = 0
    # The task says which actions each state allows (``BatchedEnv.action_mask``):
    # a bool row of ``action_space.mask_width`` flags per copy. Discrete and
    # MultiDiscrete only.
    has_action_mask: bool = False
    # Several agents act in each copy: observations ``[num_envs, n_agents,
    # obs_dim]`` (``obs_dim`` is one agent's), actions, masks and rewards per
    # agent, termination per copy. ``global_state_dim`` is the width of the
    # copy-wide state a centralized critic reads (``BatchedEnv.global_state``);
    # 0 means the concatenation of every agent's observation.
    n_agents: int = 1
    global_state_dim: int = 0

    def __post_init__(self) -> None:
        shape = (self.obs_dim,) if self.obs_shape is None else tuple(self.obs_shape)
        object.__setattr__(self, "obs_shape", shape)
        if math.prod(shape) != self.obs_dim:
            raise ValueError(f"{self.name}: obs_shape {shape} does not hold obs_dim {self.obs_dim}")
        if self.obs_dtype not in OBS_DTYPES:
            raise ValueError(f"{self.name}: obs_dtype must be torch.float32 or torch.uint8")
        if self.critic_obs_dim and (len(shape) != 1 or not 0 < self.critic_obs_dim < self.obs_dim):
            raise ValueError(
                f"{self.name}: critic_obs_dim must be between 0 and obs_dim ({self.obs_dim}) "
                "and needs a flat observation"
            )
        if self.has_action_mask and not self.action_space.is_discrete:
            raise ValueError(f"{self.name}: an action mask needs Discrete or MultiDiscrete actions")
        if self.n_agents < 1:
            raise ValueError(f"{self.name}: n_agents must be >= 1 (got {self.n_agents})")
        if self.global_state_dim and self.n_agents == 1:
            raise ValueError(f"{self.name}: global_state_dim is for tasks with several agents")

    @property
    def is_multi_agent(self) -> bool:
        return self.n_agents > 1

    @property
    def agent_shape(self) -> tuple[int, ...]:
        """The per-agent dimension a multi-agent task's tensors carry after
        ``num_envs``: ``(n_agents,)``, or ``()`` for one agent."""
        return (self.n_agents,) if self.n_agents > 1 else ()

    @property
    def actor_obs_dim(self) -> int:
        """The observation entries the actor reads: what a deployed policy takes."""
        return self.obs_dim - self.critic_obs_dim

    def describe_obs(self) -> str:
        """An observation as ``esper tasks`` and ``check-env`` show it: ``4×10×10``
        for an image (its shape), ``6`` or ``8 (2 critic-only)`` for a vector."""
        if len(self.obs_shape) > 1:
            return "×".join(map(str, self.obs_shape))
        critic = f" ({self.critic_obs_dim} critic-only)" if self.critic_obs_dim else ""
        return f"{self.obs_dim}{critic}"

    @property
    def mask_width(self) -> int:
        """Width of the task's action mask rows; 0 for a task without a mask."""
        return self.action_space.mask_width if self.has_action_mask else 0

    @property
    def is_image(self) -> bool:
        """``[C, H, W]`` observations: the CNN's input, never the normaliser's."""
        return len(self.obs_shape) == 3


OBS_DTYPES = (torch.float32, torch.uint8)


@dataclass(frozen=True)
class TaskStatistic:
    """One number a task reports per batch (a mean, count or fraction over its
    copies): declared once, it reaches BATCH_COMPLETED, TensorBoard, W&B, the
    plots and Sanctum under ``name``, described by ``description``.

    ``kind`` says how several ranks combine it. ``"mean"``: ``batch_statistics``
    gives a ``(total, weight)`` pair of 0-d tensors (the job's value is the
    ranks' totals over their weights: a correctly weighted mean), or one 0-d
    tensor (then each rank that has one counts once). ``"count"``: one 0-d
    tensor, summed over the ranks."""

    name: str
    description: str
    kind: str = "mean"

    def __post_init__(self) -> None:
        if not STATISTIC_NAME.fullmatch(self.name):
            raise ValueError(f"task statistic {self.name!r} must be snake_case")
        if self.kind not in STATISTIC_KINDS:
            raise ValueError(f"task statistic {self.name!r}: kind must be mean or count")


STATISTIC_NAME = re.compile(r"[a-z][a-z0-9_]*")
STATISTIC_KINDS = ("mean", "count")


def statistic_values(reported: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``batch_statistics``' values as one process sees them, on the device: a
    mean's total over its weight (NaN when the weight is 0)."""
    return {
        name: value[0] / value[1] if isinstance(value, tuple) else value
        for name, value in reported.items()
    }


StartFact = int | float | str | list[int] | list[str]

StepResult = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]
Transition = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # next_state, reward, terminated


def per_copy(flags: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[n]`` per-copy flags shaped to broadcast over ``like`` (``[n, ...]``)."""
    return flags.view(-1, *([1] * (like.dim() - 1)))


class SpecShapes:
    """What every environment (batched or gym:) derives from its ``spec``, and
    the parts of the contract a task may leave at their defaults: no mask, no
    statistics, no start facts."""

    spec: EnvSpec
    # The allowed actions of the latest observations, ``[num_envs, mask_width]``
    # bool, kept in place; None for a task without a mask.
    action_mask: torch.Tensor | None = None
    # What ``batch_statistics`` reports, in order; see ``TaskStatistic``.
    statistics: ClassVar[tuple[TaskStatistic, ...]] = ()

    def batch_statistics(self) -> dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Per declared statistic, over the steps since the last call: a mean's
        ``(total, weight)`` (weight 0: nothing to report) or one 0-d float tensor
        (NaN: nothing to report), accumulators then zeroed in place (see
        ``TaskStatistic.kind``). The trainer calls it once per batch, outside any graph."""
        return {}

    # What ``episode_values`` reports for each finished episode, in order: an
    # evaluation's numbers beside the return (EVALUATION_COMPLETED's
    # ``episode_statistics``, each the mean over its counted episodes).
    episode_statistics: ClassVar[tuple[TaskStatistic, ...]] = ()

    def episode_values(self, final_obs: torch.Tensor) -> torch.Tensor:
        """``[n, len(episode_statistics)]``: each copy's numbers at the end of the
        episode whose last observation is ``final_obs`` (the step's
        ``info["final_obs"]``), on the device; read only where an episode ended."""
        return final_obs.new_zeros(final_obs.shape[0], 0)

    def start_facts(self) -> dict[str, StartFact]:
        """Numbers known when the run begins; they land in TRAINING_STARTED's
        ``task_facts``."""
        return {}

    @property
    def copies(self) -> int:
        """The task's copies: ``num_envs``, except where each agent of a copy is a
        row of its own (``esper.envs.agents.AgentRows``)."""
        return self.num_envs  # type: ignore[attr-defined]

    @property
    def n_agents(self) -> int:
        """Agents acting in each copy."""
        return self.spec.n_agents

    @property
    def action_space(self) -> ActionSpace:
        return self.spec.action_space

    @property
    def obs_dim(self) -> int:
        return self.spec.obs_dim


class BatchedEnv(SpecShapes, ABC):
    """``num_envs`` copies of one task, stepped together on one device.

    Subclass it with a class attribute ``spec`` and the methods
    ``initial_state`` and ``dynamics`` (and ``observe`` when the observation
    is not the state itself). Every tensor a subclass makes belongs on
    ``self.device``; random draws come from ``self.generator`` (``uniform``
    helps), so a seed reproduces the episodes and a checkpoint restores them.
    ``default_config`` holds ``PPOConfig`` values that suit the task; they
    apply under the user's ``--config`` and flags.
    """

    spec: ClassVar[EnvSpec]
    on_device: ClassVar[bool] = True  # steps as tensors on the training device
    restorable: ClassVar[bool] = True  # state_dict() holds the running episodes
    default_config: ClassVar[dict[str, Any]] = {}
    # The ``pettingzoo:`` module of the same task, whose runs then train with this
    # task's config file (as ``gym:`` twins do with ``spec.gym_id``); "" for none.
    pettingzoo_twin: ClassVar[str] = ""

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """``dtype`` is the state's: float64 is for checking the physics against
        gymnasium (which computes in float64) where float32 rounding shows;
        observations and rewards are float32 either way."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs})")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.state = torch.zeros(num_envs, self.spec.state_dim, device=self.device, dtype=dtype)
        self.elapsed_steps = torch.zeros(num_envs, dtype=torch.int64, device=self.device)
        if self.spec.has_action_mask:
            shape = (num_envs, *self.spec.agent_shape, self.spec.action_space.mask_width)
            self.action_mask = torch.ones(shape, dtype=torch.bool, device=self.device)

    # --- what a task defines -------------------------------------------------
    # True where ``initial_state(n)`` is one draw of ``n`` rows from the
    # generator (``uniform``), so ``initial_state(a * n)`` is ``a`` such draws
    # in a row (``draw_initial_states``); tests/envs/test_drawn_states.py checks it.
    draws_at_once: ClassVar[bool] = False

    @abstractmethod
    def initial_state(self, n: int) -> torch.Tensor:
        """``[n, state_dim]`` fresh states drawn with ``self.generator``."""

    @abstractmethod
    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        """One step for every copy: ``(next_state, reward [n], terminated [n] bool)``.

        With several agents, ``actions`` is ``[n, n_agents, ...]`` and ``reward``
        is ``[n, n_agents]`` (or ``[n]``, one team reward every agent receives);
        ``terminated`` stays per copy: the agents of a copy end together."""

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``[n, obs_dim]`` observation of a state (``[n, n_agents, obs_dim]``
        with several agents); the state itself by default."""
        return state.to(torch.float32)

    def global_state(self, state: torch.Tensor) -> torch.Tensor:
        """``[n, global_state_dim]``: what a centralized critic reads of a copy.
        By default every agent's observation, concatenated (a task that sets
        ``spec.global_state_dim`` overrides this)."""
        return self.observe(state).flatten(1)

    def legal_actions(self, state: torch.Tensor) -> torch.Tensor:
        """``[n, mask_width]`` bool (``[n, n_agents, mask_width]`` with several
        agents): the actions each state allows (tasks with
        ``spec.has_action_mask``). Every row must allow at least one."""
        shape = (state.shape[0], *self.spec.agent_shape, self.spec.action_space.mask_width)
        return torch.ones(shape, dtype=torch.bool, device=state.device)

    # --- the shared contract ----------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy; returns obs ``[num_envs, obs_dim]``."""
        if seed is not None:
            self.generator.manual_seed(seed)
        fresh = self.initial_state(self.num_envs)
        self.state.copy_(fresh)  # in place, as every step updates it
        self.elapsed_steps.zero_()
        if self.action_mask is not None:
            self.action_mask.copy_(self.legal_actions(fresh))
        return self.observe(fresh)  # not a view of ``state``, which steps overwrite

    def step(self, actions: torch.Tensor, fresh: torch.Tensor | None = None) -> StepResult:
        """Advance every copy; finished copies reset themselves.

        ``info["final_obs"]`` holds, for every copy, the observation it reached
        with this step, before any reset: for unfinished copies it equals
        ``obs``; for truncated ones it is what the value bootstrap needs.
        ``fresh`` (``[num_envs, state_dim]``) is this step's row of
        ``draw_initial_states``; without it the step draws its own. A task
        with an action mask updates ``action_mask`` in place and returns it
        as ``info["action_mask"]``. A task with ``spec.global_state_dim``
        returns ``info["global_state"]`` (of ``obs``) and
        ``info["final_global_state"]`` (of ``final_obs``).
        """
        actions = actions.to(self.device, non_blocking=True)
        # A copy in: what dynamics returns may view its input (a probe's reward is
        # its observation), and the state's own storage is overwritten below.
        next_state, reward, terminated = self.dynamics(self.state.clone(), actions)
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= self.spec.max_episode_steps
        final_obs = self.observe(next_state)
        done = terminated | truncated
        if fresh is None:
            fresh = self.initial_state(self.num_envs)
        # In place: the state keeps its storage, so a captured CUDA graph replays it.
        ended = done.unsqueeze(1)  # [n, 1]: per copy over the state's columns
        torch.where(ended, fresh, next_state, out=self.state)
        self.elapsed_steps.masked_fill_(done, 0)
        ended = ended if final_obs.dim() == 2 else per_copy(done, final_obs)  # the same view
        obs = torch.where(ended, self.observe(fresh), final_obs)
        info = {"final_obs": final_obs}
        if self.spec.global_state_dim:  # a centralized critic's, before and after the reset
            info["final_global_state"] = self.global_state(next_state)
            info["global_state"] = self.global_state(self.state)
        if self.action_mask is not None:  # the mask of ``obs``: after the auto-reset
            info["action_mask"] = self.action_mask.copy_(self.legal_actions(self.state))
        if self.spec.is_multi_agent and reward.dim() == 1:  # a team reward: every agent's
            reward = reward.unsqueeze(1).expand(self.num_envs, self.spec.n_agents)
        return obs, reward.to(torch.float32), terminated, truncated, info

    @property
    def takes_drawn_states(self) -> bool:
        """Whether ``step`` takes ``draw_initial_states``' rows: a subclass that
        overrides ``step`` keeps drawing its own."""
        return type(self).step is BatchedEnv.step

    def draw_initial_states(self, steps: int) -> torch.Tensor:
        """``[steps, num_envs, state_dim]``: the fresh states ``steps`` calls of
        ``step`` would draw, in the same order from the same generator. A
        rollout draws them before its loop, so its steps hold no random draw
        from a ``torch.Generator`` (which ``torch.compile`` cannot trace).
        A task whose ``initial_state`` is one uniform draw (``draws_at_once``)
        draws all of them in one call on the CPU, whose generator fills a
        tensor in order: the same numbers, a handful of ops instead of ~4 a step."""
        if self.draws_at_once and self.device.type == "cpu":
            return self.initial_state(steps * self.num_envs).view(steps, self.num_envs, -1)
        return torch.stack([self.initial_state(self.num_envs) for _ in range(steps)])

    # --- videos -----------------------------------------------------------------
    render_fps: ClassVar[int] = 30  # frames per second of this task's videos

    def render(self, index: int = 0) -> np.ndarray:
        """An RGB picture of copy ``index``'s current state, ``uint8 [H, W, 3]``,
        for ``esper eval --video`` and ``--video-every``: override it to record
        videos of your task (H and W even, as H.264 needs). Called once per
        frame on one copy, outside training, so it may read the state on the host."""
        raise NotImplementedError(f"{self.spec.name} draws no pictures (BatchedEnv.render)")

    @classmethod
    def renders(cls) -> bool:
        """Whether this task overrides ``render``: can its episodes be recorded?"""
        return cls.render is not BatchedEnv.render

    # --- checkpoints ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.clone(),
            "elapsed_steps": self.elapsed_steps.clone(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.state.copy_(saved["state"])
        self.elapsed_steps.copy_(saved["elapsed_steps"])
        self.generator.set_state(saved["generator"])
        if self.action_mask is not None:
            self.action_mask.copy_(self.legal_actions(self.state))

    def uniform(self, n: int, width: int, low: float, high: float) -> torch.Tensor:
        """``[n, width]`` uniform draws in ``[low, high)`` from this env's generator."""
        u = torch.rand(n, width, generator=self.generator, device=self.device, dtype=self.dtype)
        return u.mul_(high - low).add_(low)
