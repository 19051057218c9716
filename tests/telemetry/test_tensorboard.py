"""`esper ppo --tensorboard` writes CleanRL-named scalars that TensorBoard itself reads back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from esper.cli import app
from esper.config import PPOConfig
from esper.run_dir import RunDir, prepare_run_dir
from esper.telemetry.events import BatchCompletedPayload
from esper.telemetry.jsonl import read_events
from esper.telemetry.tensorboard import EPISODE_SCALARS, SCALARS

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]
STEPS_PER_BATCH = 8 * 16


def ppo(run_dir: Path, *args: str) -> None:
    result = CliRunner().invoke(
        app, ["ppo", "--run-dir", str(run_dir), "--tensorboard", *SMALL, *args]
    )
    assert result.exit_code == 0, result.output


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar as TensorBoard shows it: ``tag -> [(step, value), ...]``."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def batches(run_dir: Path) -> dict[int, BatchCompletedPayload]:
    """The surviving BATCH_COMPLETED of each env step, from the JSONL record."""
    return {
        e.data.env_steps: e.data
        for e in read_events(run_dir / "telemetry.jsonl")
        if isinstance(e.data, BatchCompletedPayload)
    }


def check_against_record(run_dir: Path, expected_steps: list[int]) -> None:
    logged = scalars(run_dir)
    record = batches(run_dir)
    for tag, field in SCALARS.items():
        assert [step for step, _ in logged[tag]] == expected_steps, tag
        for step, value in logged[tag]:
            assert value == pytest.approx(getattr(record[step], field), rel=1e-5, abs=1e-7), tag
    finished = [s for s in expected_steps if record[s].episodes_finished > 0]
    assert finished, "no episode finished: the episode scalars went untested"
    for tag, field in EPISODE_SCALARS.items():
        assert [step for step, _ in logged[tag]] == finished, tag
        for step, value in logged[tag]:
            assert value == pytest.approx(getattr(record[step], field), rel=1e-5), tag


def test_scalars_land_at_env_steps_and_a_resume_continues_the_axis(tmp_path: Path) -> None:
    ppo(tmp_path, "--episodes", "3")
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3)])

    ppo(tmp_path, "--episodes", "2", "--start-episode", "3")
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3, 4, 5)])


def test_a_resume_from_an_earlier_checkpoint_hides_the_superseded_steps(tmp_path: Path) -> None:
    ppo(tmp_path, "--episodes", "4", "--checkpoint-every", "2")
    ppo(tmp_path, "--episodes", "1", "--start-episode", "2", "--overwrite")
    # Batches 3 and 4 of the first invocation are gone; batch 3 is the new one.
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3)])


def test_overwrite_clears_the_old_tensorboard_logs(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.checkpoint_path(1).parent.mkdir(parents=True)
    run_dir.checkpoint_path(1).write_bytes(b"x")
    run_dir.tensorboard_dir.mkdir()
    (run_dir.tensorboard_dir / "events.out.tfevents.old").write_bytes(b"x")
    prepare_run_dir(PPOConfig(run_dir=str(tmp_path), overwrite=True))
    assert not run_dir.tensorboard_dir.exists()


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    result = CliRunner().invoke(
        app, ["ppo", "--run-dir", str(tmp_path / "run"), "--tensorboard", *SMALL]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "--tensorboard" in lines[0]
    assert "pip install 'esper-rl[tensorboard]'" in lines[0]
    assert not (tmp_path / "run" / "telemetry.jsonl").exists()  # failed before training
