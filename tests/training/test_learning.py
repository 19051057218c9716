"""PPO learns CartPole on a fixed seed, on the CPU, with the default settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.config.layers import build_config
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest
from esper.training.scoring import ReturnScore

SOLVED = 475.0


@pytest.mark.slow
def test_default_cartpole_is_solved_within_the_readme_budget(tmp_path: Path) -> None:
    # The README promises `esper ppo --episodes 50` ends solved; stop as soon
    # as a batch's finished episodes average 475 or more.
    config = build_config(
        overrides={"n_batches": 50, "device": "cpu", "seed": 1, "run_dir": str(tmp_path)}
    )
    stop = StopRequest()
    score = ReturnScore(SOLVED, stop)
    hub = TelemetryHub()
    hub.subscribe(score)
    result = run_vectorized_ppo(config, hub, stop)
    assert score.reached_at is not None, score.scores
    assert score.reached_at[0] <= 50 and result.final_batch == score.reached_at[0]
