"""`esper plot` draws learning curves from telemetry.jsonl, a resumed run as one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from esper.cli import app
from esper.plot import _labels, read_curves
from esper.telemetry.events import (
    BatchCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingStartedPayload,
)
from esper.telemetry.jsonl import JsonlSink

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]
STEPS_PER_BATCH = 8 * 16

runner = CliRunner()


def lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 batches, then a resume for 2 more: two TRAINING_STARTED in one file."""
    run_dir = tmp_path_factory.mktemp("resumed")
    for args in (["--episodes", "3"], ["--episodes", "2", "--start-episode", "3"]):
        result = runner.invoke(app, ["ppo", "--run-dir", str(run_dir), *SMALL, *args])
        assert result.exit_code == 0, result.output
    return run_dir


def test_plot_of_a_resumed_run_writes_a_png_of_the_expected_size(
    resumed_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "figures" / "curves.png"
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(output), "--dpi", "80"])
    assert result.exit_code == 0, result.output
    assert str(output) in result.output
    height, width, _ = imread(output).shape
    assert (width, height) == (12 * 80, round(7.5 * 80))  # the default 12 x 7.5 inches


def test_a_resumed_run_is_one_continuous_series(resumed_run: Path) -> None:
    curves = read_curves(resumed_run)
    assert list(curves.batches) == [1, 2, 3, 4, 5]
    assert curves.env_steps == [STEPS_PER_BATCH * b for b in range(1, 6)]
    assert curves.resumes == [3 * STEPS_PER_BATCH]
    assert curves.task == "cartpole"


def _started(start_batch: int, env_steps: int) -> TrainingStartedPayload:
    return TrainingStartedPayload(
        n_envs=1,
        max_epochs=10,
        max_batches=start_batch + 4,
        start_batch=start_batch,
        task="cartpole",
        device="cpu",
        seed=1,
        policy_params=10,
        env_steps=env_steps,
    )


def _batch(env_steps: int, value_loss: float) -> BatchCompletedPayload:
    return BatchCompletedPayload(
        env_steps=env_steps,
        sps=100.0,
        batch_seconds=0.1,
        episodes_finished=0,
        episode_return_mean=None,
        episode_return_min=None,
        episode_return_max=None,
        episode_length_mean=None,
        policy_loss=0.0,
        value_loss=value_loss,
        entropy=0.6,
        approx_kl=0.0,
        clip_fraction=0.0,
        explained_variance=0.0,
        learning_rate=1e-3,
        grad_norm=0.5,
    )


def test_a_resume_from_an_earlier_batch_supersedes_what_followed_it(tmp_path: Path) -> None:
    # Batches 1..4, then a resume from batch 2's checkpoint that ran batch 3 again.
    records = [(TelemetryEventType.TRAINING_STARTED, None, _started(0, 0))]
    records += [(TelemetryEventType.BATCH_COMPLETED, b, _batch(10 * b, 1.0)) for b in (1, 2, 3, 4)]
    records += [
        (TelemetryEventType.TRAINING_STARTED, 2, _started(2, 20)),
        (TelemetryEventType.BATCH_COMPLETED, 3, _batch(30, 2.0)),
    ]
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for kind, batch, payload in records:
        sink.handle(TelemetryEvent(event_type=kind, group_id="run", data=payload, batch=batch))
    sink.close()
    curves = read_curves(tmp_path)
    assert curves.series("value_loss") == ([10, 20, 30], [1.0, 1.0, 2.0])


def test_runs_are_labelled_by_their_directory_name() -> None:
    paths = [Path("a/cartpole"), Path("b/cartpole"), Path("runs/acrobot")]
    assert _labels(paths) == ["a/cartpole", "b/cartpole", "acrobot"]


def test_missing_matplotlib_is_one_line_naming_the_extra(
    resumed_run: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "pip install 'esper[plot]'" in result.output


def test_a_missing_run_dir_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "no telemetry" in result.output


def test_an_unknown_image_format_is_one_line(resumed_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(tmp_path / "c.xyz")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "cannot write '.xyz'" in result.output
    assert not (tmp_path / "c.xyz").exists()


def test_a_superseded_resume_draws_no_resume_marker(tmp_path: Path) -> None:
    # 1..4, a resume from 3 that crashed after batch 4, then a resume from 2.
    records = [(TelemetryEventType.TRAINING_STARTED, None, _started(0, 0))]
    records += [(TelemetryEventType.BATCH_COMPLETED, b, _batch(10 * b, 1.0)) for b in (1, 2, 3)]
    records += [(TelemetryEventType.TRAINING_STARTED, 3, _started(3, 30))]
    records += [(TelemetryEventType.BATCH_COMPLETED, 4, _batch(40, 1.0))]
    records += [(TelemetryEventType.TRAINING_STARTED, 2, _started(2, 20))]
    records += [(TelemetryEventType.BATCH_COMPLETED, 3, _batch(30, 2.0))]
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for kind, batch, payload in records:
        sink.handle(TelemetryEvent(event_type=kind, group_id="run", data=payload, batch=batch))
    sink.close()
    curves = read_curves(tmp_path)
    assert curves.resumes == [20]
    assert curves.series("value_loss") == ([10, 20, 30], [1.0, 1.0, 2.0])
