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

from esper.config import build_config
from esper.envs.registry import env_class
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest

WINDOW_EPISODES = 100


def recent_mean(batches: list[tuple[float, int]]) -> float | None:
    """Mean return over the newest batches holding >= WINDOW_EPISODES episodes."""
    total, count = 0.0, 0
    for mean, finished in reversed(batches):
        total += mean * finished
        count += finished
        if count >= WINDOW_EPISODES:
            return total / count
    return None


def train_until(task: str, target: float, n_batches: int, run_dir: Path) -> list[float]:
    """Train ``task`` with its defaults; return the score after each judged batch."""
    config = build_config(
        overrides={
            "task": task,
            "n_episodes": n_batches,
            "device": "cpu",
            "seed": 1,
            "run_dir": str(run_dir),
            "checkpoint_every": 10**6,
        }
    )
    time_limit = env_class(task).spec.max_episode_steps or 0
    stop = StopRequest()
    batches: list[tuple[float, int]] = []
    scores: list[float] = []

    def watch(event: TelemetryEvent) -> None:
        if event.event_type is not TelemetryEventType.BATCH_COMPLETED:
            return
        data = event.data
        if data.episode_return_mean is not None:
            batches.append((data.episode_return_mean, data.episodes_finished))
        score = recent_mean(batches)
        if score is None or event.batch * config.max_epochs < time_limit:
            return
        scores.append(score)
        if score > target:
            stop.request("target reached")

    hub = TelemetryHub()
    hub.subscribe(watch)
    run_vectorized_ppo(config, hub, stop)
    return scores


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


def test_gym_cartpole_learns_as_the_batched_cartpole_does(tmp_path) -> None:
    """The same config through gymnasium's own vector env (proves the adapter)."""
    from esper.config import build_config, task_default_values
    from esper.telemetry.hub import TelemetryHub
    from esper.training import run_vectorized_ppo
    from esper.training.interrupt import StopRequest

    config = build_config(
        overrides={
            **task_default_values("cartpole"),
            "task": "gym:CartPole-v1",
            "n_episodes": 50,
            "device": "cpu",
            "seed": 1,
            "run_dir": str(tmp_path),
        }
    )
    stop = StopRequest()
    best = []

    def watch(event) -> None:
        mean = getattr(event.data, "episode_return_mean", None)
        if event.event_type == "BATCH_COMPLETED" and mean is not None:
            best.append(mean)
            if mean >= 475:
                stop.request("solved")

    hub = TelemetryHub()
    hub.subscribe(watch)
    run_vectorized_ppo(config, hub, stop)
    assert max(best) >= 475, best
