"""Each task's default config learns it on a fixed seed, on the CPU.

One test per task whose ``configs/<task>.toml`` reaches its target within
about a minute on a 2-core CPU; slower tasks (MountainCar-v0) are checked by
``scripts/learning_check.py`` instead. A run stops as soon as the target is
reached. The score is gymnasium's: the mean return of the latest >= 100
finished episodes (whole batches), judged only once every env has run for a
full time limit, so that episodes cut by the limit (the failures, on the
MountainCar tasks) have had their chance to count.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.config.layers import build_config, task_default_values
from esper.envs.registry import env_class
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest
from esper.training.scoring import ReturnScore, judge_from

WINDOW_EPISODES = 100


def train_until(task: str, target: float, n_batches: int, run_dir: Path) -> list[float]:
    """Train ``task`` with its defaults; return the score after each judged batch."""
    config = build_config(
        overrides={
            "task": task,
            "n_batches": n_batches,
            "device": "cpu",
            "seed": 1,
            "run_dir": str(run_dir),
            "checkpoint_every": 10**6,
        }
    )
    stop = StopRequest()
    score = ReturnScore(
        target,
        stop,
        window=WINDOW_EPISODES,
        judge_from_batch=judge_from(env_class(task).spec.max_episode_steps, config.horizon),
        strictly_above=True,
    )
    hub = TelemetryHub()
    hub.subscribe(score)
    run_vectorized_ppo(config, hub, stop)
    return score.scores


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "target", "n_batches"),
    [
        # CleanRL's PPO reaches -86.4 in 500k steps; ~25 batches (100k steps) here.
        ("acrobot", -100.0, 50),
        # ~20 batches (512k steps).
        ("pendulum", -250.0, 60),
        # Above 0 means the car drives to the goal rather than standing still.
        ("mountaincar-continuous", 0.0, 50),
    ],
)
def test_task_default_config_learns(
    task: str, target: float, n_batches: int, tmp_path: Path
) -> None:
    scores = train_until(task, target, n_batches, tmp_path)
    assert scores, f"{task}: no batch was judged"
    assert max(scores) > target, f"{task}: best {max(scores):.1f} <= {target}: {scores}"


@pytest.mark.slow
def test_gym_cartpole_learns_as_the_batched_cartpole_does(tmp_path: Path) -> None:
    """The same config through gymnasium's own vector env (proves the adapter)."""
    config = build_config(
        overrides={
            **task_default_values("cartpole"),
            "task": "gym:CartPole-v1",
            "n_batches": 50,
            "device": "cpu",
            "seed": 1,
            "run_dir": str(tmp_path),
        }
    )
    stop = StopRequest()
    score = ReturnScore(475.0, stop)
    hub = TelemetryHub()
    hub.subscribe(score)
    run_vectorized_ppo(config, hub, stop)
    assert score.reached_at is not None, score.scores
