"""PPO learns CartPole on a fixed seed, on the CPU, with the default settings."""

from __future__ import annotations

import json

import pytest

SOLVED = 475.0

# The session's solved CartPole (tests/conftest.py) is built once, on the worker
# that runs its tests: these and tests/workflows/test_evaluate.py's.
pytestmark = pytest.mark.xdist_group("solved_cartpole")


def test_default_cartpole_is_solved_within_the_readme_budget(solved_cartpole) -> None:
    """The README promises `esper ppo --episodes 50` ends solved: a batch whose
    finished episodes average 475 or more, within 50. The session's solved
    CartPole is that run (the defaults, seed 1, up to 50 batches); it stops once
    16 episodes average 490, past the first such batch."""
    lines = (solved_cartpole.run_dir / "telemetry.jsonl").read_text().splitlines()
    means = {
        event["batch"]: event["data"]["episode_return_mean"]
        for event in map(json.loads, lines)
        if event["event_type"] == "BATCH_COMPLETED"
    }
    assert max(means) <= 50  # the README's budget (the fixture's n_batches)
    assert any(mean is not None and mean >= SOLVED for mean in means.values()), means
