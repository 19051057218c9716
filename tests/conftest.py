"""Fixtures shared across the suite."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from esper.config import build_config
from esper.run_dir import RunDir
from esper.telemetry.hub import TelemetryHub
from esper.telemetry.jsonl import JsonlSink
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest
from esper.training.scoring import ReturnScore

SOLVED_BATCH_RETURN = 490.0  # stop training once a batch's finished episodes average this


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    final_batch: int  # the newest checkpoint
    returns: list[float]  # each batch's mean return (batches where an episode finished)


@pytest.fixture(scope="session")
def solved_cartpole(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """CartPole trained once per session with its default settings until solved.

    Up to 50 batches on the CPU, seed 1, stopping early once a batch's mean
    return reaches 490 (the trainer then checkpoints that batch). 50 is the
    README's `esper ppo --episodes 50`, which the defaults are tuned for: the
    learning rate decays over the run's length. Only the invocation's own keys
    are set here, so the fixture follows configs/cartpole.toml. The run dir holds the telemetry
    record as well as the checkpoints; tests may append to it (``esper eval``).
    """
    run_dir = tmp_path_factory.mktemp("solved_cartpole")
    config = build_config(
        overrides={"n_episodes": 50, "device": "cpu", "seed": 1, "run_dir": str(run_dir)}
    )
    stop = StopRequest()
    score = ReturnScore(SOLVED_BATCH_RETURN, stop)
    hub = TelemetryHub()
    hub.subscribe(JsonlSink(RunDir(run_dir).telemetry_path))
    hub.subscribe(score)
    try:
        result = run_vectorized_ppo(config, hub, stop)
    finally:
        hub.close()
    assert result.status in ("completed", "interrupted"), result.reason
    return TrainedRun(
        run_dir=run_dir, final_batch=max(RunDir(run_dir).checkpoints()), returns=score.scores
    )
