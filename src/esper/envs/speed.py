"""How fast a task steps: environment steps per second under random actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from esper.envs.close import close_env
from esper.envs.random_actions import action_sequence

WARMUP_STEPS = 10  # untimed first steps: lazy initialisation, caches


def measure_speed(
    build: Callable[..., Any], device: torch.device, num_envs: int, steps: int = 100
) -> float:
    """Environment steps per second (copies x steps) of random actions."""
    env = build(num_envs=num_envs, device=device, seed=0)
    env.reset(seed=0)
    actions = action_sequence(env, steps + WARMUP_STEPS, seed=8)
    for a in actions[:WARMUP_STEPS]:
        env.step(a)
    _synchronize(device)
    start = time.perf_counter()
    for a in actions[WARMUP_STEPS:]:
        env.step(a)
    _synchronize(device)
    seconds = time.perf_counter() - start
    close_env(env)
    return num_envs * steps / seconds


def _synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so the clock measures the steps themselves."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
