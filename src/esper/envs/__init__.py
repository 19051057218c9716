"""Batched tensor environments.

Write your own task by subclassing ``BatchedEnv`` and name it with
``register``, an ``esper.envs`` entry point, or ``--task package.module:Factory``.
"""

from esper.envs.base import BatchedEnv, EnvSpec, Transition
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
from esper.envs.spaces import BoxSpace, DiscreteSpace

__all__ = [
    "TASKS",
    "BatchedEnv",
    "BoxSpace",
    "DiscreteSpace",
    "EnvSpec",
    "TaskRow",
    "Transition",
    "UnknownTaskError",
    "describe_tasks",
    "env_class",
    "make",
    "register",
    "task_names",
]
