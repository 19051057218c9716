"""Batched tensor environments.

Write your own task by subclassing ``BatchedEnv`` and name it with
``register``, an ``esper.envs`` entry point, or ``--task package.module:Factory``.
"""

from esper.envs.base import BatchedEnv, EnvSpec, TaskStatistic, Transition
from esper.envs.registry import (
    TASKS,
    TaskRow,
    UnknownTaskError,
    describe_tasks,
    env_class,
    make,
    register,
    task_names,
)
from esper.envs.spaces import BoxSpace, DiscreteSpace, MultiDiscreteSpace

__all__ = [
    "TASKS",
    "BatchedEnv",
    "BoxSpace",
    "DiscreteSpace",
    "EnvSpec",
    "MultiDiscreteSpace",
    "TaskRow",
    "TaskStatistic",
    "Transition",
    "UnknownTaskError",
    "describe_tasks",
    "env_class",
    "make",
    "register",
    "task_names",
]
