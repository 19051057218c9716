"""Task names to batched environments: ``esper.envs.make(task, num_envs, device)``.

A built-in name (``cartpole``, ...) is a ``BatchedEnv`` subclass that steps on
the training device; ``gym:ENV_ID`` wraps gymnasium's own env of that id on
the CPU (``esper.envs.gym_adapter``, imported only when such a task is asked
for, so gymnasium's import cost is paid only then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from esper.envs.acrobot import Acrobot
from esper.envs.base import BatchedEnv
from esper.envs.cartpole import CartPole
from esper.envs.mountain_car import MountainCar, MountainCarContinuous
from esper.envs.pendulum import Pendulum
from esper.errors import UserError

if TYPE_CHECKING:
    from esper.envs.gym_adapter import GymTask, GymVectorEnv

TASKS: dict[str, type[BatchedEnv]] = {
    CartPole.spec.name: CartPole,
    Acrobot.spec.name: Acrobot,
    MountainCar.spec.name: MountainCar,
    MountainCarContinuous.spec.name: MountainCarContinuous,
    Pendulum.spec.name: Pendulum,
}

GYM_PREFIX = "gym:"


class UnknownTaskError(UserError, ValueError):
    setting = "task"

    def __init__(self, task: str, reason: str | None = None) -> None:
        if reason is None:
            reason = f"built-in: {', '.join(sorted(TASKS))}; or {GYM_PREFIX}ENV_ID"
        super().__init__(f"unknown task '{task}' ({reason})")
        self.task = task


def task_names() -> list[str]:
    return sorted(TASKS)


def env_class(task: str) -> type[BatchedEnv] | GymTask:
    """What builds ``task``: called as ``(num_envs=, device=, seed=)``, with a ``spec``."""
    if task.startswith(GYM_PREFIX):
        from esper.envs.gym_adapter import GymTask, registration_problem

        gym_id = task.removeprefix(GYM_PREFIX)
        problem = registration_problem(gym_id)
        if problem is not None:
            raise UnknownTaskError(task, f"gymnasium: {problem}")
        return GymTask(gym_id)
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownTaskError(task) from None


def make(
    task: str, num_envs: int, device: torch.device | str = "cpu", seed: int = 0
) -> BatchedEnv | GymVectorEnv:
    """Build ``num_envs`` copies of ``task`` on ``device``, seeded with ``seed``."""
    return env_class(task)(num_envs=num_envs, device=device, seed=seed)


class TaskRow(NamedTuple):
    """One line of ``esper tasks``."""

    name: str
    gym_id: str
    obs_dim: int
    action_space: str
    on_device: bool  # steps as batched tensors on the training device
    max_episode_steps: int | None  # None: gymnasium sets no time limit


def describe_tasks(extra: tuple[str, ...] = ()) -> list[TaskRow]:
    """The built-in tasks in name order, then ``extra`` task names (e.g. ``gym:...``).

    Describing a ``gym:`` task builds one copy of it to read its spaces, so an
    id that is unknown or has unsupported spaces raises here.
    """
    rows = []
    for task in [*task_names(), *extra]:
        builder = env_class(task)
        spec = builder.spec
        rows.append(
            TaskRow(
                name=spec.name,
                gym_id=spec.gym_id,
                obs_dim=spec.obs_dim,
                action_space=spec.action_space.describe(),
                on_device=builder.on_device,
                max_episode_steps=spec.max_episode_steps,
            )
        )
    return rows
