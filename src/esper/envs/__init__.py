"""Batched tensor environments: every task implements ``BatchedEnv``'s contract."""

from esper.envs.base import BatchedEnv, EnvSpec
from esper.envs.registry import (
    TASKS,
    TaskRow,
    UnknownTaskError,
    describe_tasks,
    env_class,
    make,
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
    "UnknownTaskError",
    "describe_tasks",
    "env_class",
    "make",
    "task_names",
]
