"""The small runs test_cuda.py trains on the GPU, in one place, so that the CPU
can check every one of them is a run the trainer accepts
(tests/training/test_cuda_runs.py): a config refused on the GPU costs its
first minutes, as minatar-breakout's ``normalize_obs`` once did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.envs import make


def image_task(task: str) -> bool:
    return make(task, 1, "cpu", seed=0).spec.is_image


def cuda_settings(
    task: str, run_dir: Path, episodes: int, start: int = 0, device: str = "cuda", **changes: Any
) -> dict[str, Any]:
    """PPOConfig keywords of a small run with both normalisers (the observation one
    only where the task is not an image task, which refuses it)."""
    settings = dict(
        task=task, n_envs=64, horizon=16, n_minibatches=4,
        anneal_batches=4,  # the same schedule for 4 batches straight and 2 + 2
        normalize_obs=not image_task(task), normalize_reward=True, device=device,
        run_dir=str(run_dir), n_batches=episodes, start_batch=start, checkpoint_every=1,
    )  # fmt: skip
    return {**settings, **changes}
