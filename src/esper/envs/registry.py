"""Task names to batched environments: ``esper.envs.make(task, num_envs, device)``."""

from __future__ import annotations

import torch

from esper.envs.base import BatchedEnv
from esper.envs.cartpole import CartPole

TASKS: dict[str, type[BatchedEnv]] = {
    CartPole.spec.name: CartPole,
}


class UnknownTaskError(ValueError):
    def __init__(self, task: str) -> None:
        super().__init__(f"unknown task '{task}' (built-in: {', '.join(sorted(TASKS))})")
        self.task = task


def task_names() -> list[str]:
    return sorted(TASKS)


def env_class(task: str) -> type[BatchedEnv]:
    try:
        return TASKS[task]
    except KeyError:
        raise UnknownTaskError(task) from None


def make(task: str, num_envs: int, device: torch.device | str = "cpu", seed: int = 0) -> BatchedEnv:
    """Build ``num_envs`` copies of ``task`` on ``device``, seeded with ``seed``."""
    return env_class(task)(num_envs=num_envs, device=device, seed=seed)
