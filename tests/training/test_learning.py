"""PPO learns CartPole on a fixed seed, on the CPU, with the default settings."""

from __future__ import annotations

from pathlib import Path

from esper.config import build_config
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest

SOLVED = 475.0


def test_default_cartpole_is_solved_within_the_readme_budget(tmp_path: Path) -> None:
    # The README promises `esper ppo --episodes 50` ends solved; stop as soon
    # as a batch's finished episodes average 475 or more.
    config = build_config(
        overrides={"n_episodes": 50, "device": "cpu", "seed": 1, "run_dir": str(tmp_path)}
    )
    stop = StopRequest()
    returns: list[float | None] = []

    def watch(event: TelemetryEvent) -> None:
        if event.event_type is TelemetryEventType.BATCH_COMPLETED:
            returns.append(event.data.episode_return_mean)
            if (event.data.episode_return_mean or 0.0) >= SOLVED:
                stop.request("solved")

    hub = TelemetryHub()
    hub.subscribe(watch)
    run_vectorized_ppo(config, hub, stop)
    assert max(r or 0.0 for r in returns) >= SOLVED, returns
    assert len(returns) <= 50
