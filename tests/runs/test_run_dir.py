"""The run directory owns its layout; the sinks are only handed paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.config.schema import PPOConfig
from esper.runs.directory import RunDir, check_run_dir, claim_run_dir
from esper.runtime.errors import ConfigError


def test_run_dir_names_its_files_without_importing_a_sink() -> None:
    code = (
        "import sys, esper.runs.directory; "
        "print(sorted(m for m in sys.modules if m.startswith('esper.telemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    run = RunDir(Path("runs/x"))
    assert run.telemetry_path == Path("runs/x/telemetry.jsonl")
    assert run.tensorboard_dir == Path("runs/x/tensorboard")


# --- failures a user can cause: one line, exit 2, nothing lost ------------------

TINY = ("--device", "cpu", "--envs", "4", "--max-epochs", "8", "--no-sanctum")


def esper(*args: str):
    from esper.cli import app

    return CliRunner().invoke(app, list(args))


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_a_run_dir_under_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine")
    result = esper("ppo", "--episodes", "1", "--run-dir", str(tmp_path / "afile" / "run"), *TINY)
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("esper: error: --run-dir: cannot create")
    assert "is a file" in line
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="needs a read-only /sys")
def test_an_unwritable_run_dir_is_one_line() -> None:
    result = esper("ppo", "--episodes", "1", "--run-dir", "/sys/esper-run", *TINY)
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("esper: error: --run-dir: cannot write /sys/esper-run")


def old_run(run_dir: Path) -> None:
    """A run dir holding a finished run: a checkpoint and a completed batch."""
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "batch_000001.pt").write_bytes(b"old weights")
    (run_dir / "telemetry.jsonl").write_text(
        '{"event_type": "TRAINING_STARTED"}\n{"event_type": "BATCH_COMPLETED"}\n'
    )


def test_overwrite_deletes_nothing_when_a_later_check_refuses_the_run(tmp_path: Path) -> None:
    """Two ranks of 4 envs x 9 steps hold 36 transitions, which 8 minibatches do
    not divide: build_state refuses, after the run dir check has passed."""
    from esper.telemetry.hub import TelemetryHub
    from esper.training.distributed.collectives import Collectives
    from esper.training.loop import run_vectorized_ppo

    class RankZeroOfTwo(Collectives):  # rank 0 of a two-rank job, in one process
        def main_decides(self, decide):
            return decide()

    old_run(tmp_path)
    config = PPOConfig(
        n_envs=8, horizon=9, n_minibatches=8, device="cpu", run_dir=str(tmp_path), overwrite=True
    )
    with pytest.raises(ConfigError, match=r"^n_minibatches: each of 2 ranks"):
        run_vectorized_ppo(config, TelemetryHub(), group=RankZeroOfTwo(world_size=2))
    assert (tmp_path / "checkpoints" / "batch_000001.pt").read_bytes() == b"old weights"
    assert "BATCH_COMPLETED" in (tmp_path / "telemetry.jsonl").read_text()


def test_overwrite_still_clears_once_every_check_has_passed(tmp_path: Path) -> None:
    old_run(tmp_path)
    config = PPOConfig(run_dir=str(tmp_path), overwrite=True)
    run_dir = check_run_dir(config)
    assert (tmp_path / "checkpoints" / "batch_000001.pt").exists()  # checking changes nothing
    claim_run_dir(config, run_dir)
    assert not run_dir.checkpoints() and not run_dir.telemetry_path.exists()


def failed_in_batch_1(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    events = [
        {"event_type": "TRAINING_STARTED", "batch": 0, "data": {}},
        {"event_type": "TRAINING_FAILED", "batch": 0, "data": {"reason": "boom"}},
    ]
    (run_dir / "telemetry.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_run_that_failed_in_batch_1_can_be_retried_with_a_note(tmp_path: Path) -> None:
    failed_in_batch_1(tmp_path)
    result = esper("ppo", "--episodes", "1", "--run-dir", str(tmp_path), *TINY)
    assert result.exit_code == 0, result.output
    assert "esper: note: " in result.output and "completed no batch" in result.output
    lines = (tmp_path / "telemetry.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["event_type"] for line in lines]
    # The failed attempt stays on record; the retry follows it.
    assert kinds[:2] == ["TRAINING_STARTED", "TRAINING_FAILED"]
    assert kinds[2] == "TRAINING_STARTED" and kinds[-1] == "TRAINING_COMPLETED"


def test_a_start_without_an_end_still_holds_the_run_dir(tmp_path: Path) -> None:
    (tmp_path / "telemetry.jsonl").write_text('{"event_type": "TRAINING_STARTED"}\n')
    with pytest.raises(ConfigError, match="stopped without recording its end"):
        check_run_dir(PPOConfig(run_dir=str(tmp_path)))


def test_stale_temporary_checkpoints_are_removed_at_the_next_start(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir(parents=True)
    dead = 2**22 + 12345  # above the default pid_max: no process has it
    stale = checkpoints / f".batch_000004.pt.tmp-{dead}"
    live = checkpoints / f".batch_000004.pt.tmp-{os.getpid()}"  # a writer still at work
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    config = PPOConfig(run_dir=str(tmp_path))
    claim_run_dir(config, check_run_dir(config))
    assert not stale.exists() and live.exists()


def test_overwrite_clears_everything_the_run_wrote_and_only_that(tmp_path: Path) -> None:
    old_run(tmp_path)
    written = [
        "tensorboard/events.out", "videos/batch_000001.mp4", "wandb/offline-run-1/run.wandb",
        "wandb-run-id", "error.log", "error.rank1.log", "policy_batch_000001.onnx",
        "checkpoints/best.pt",
    ]  # fmt: skip
    mine = ["notes.txt", "videos/my_edit.mp4", "policy.onnx"]
    for name in written + mine:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    config = PPOConfig(run_dir=str(tmp_path), overwrite=True)
    claim_run_dir(config, check_run_dir(config))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(mine)


def test_a_rewind_drops_every_artefact_of_the_discarded_batches(tmp_path: Path) -> None:
    """--start-episode 1 --overwrite after 3 batches: the checkpoints, videos,
    exports and best.pt of batches 2-3 go; batch 1's stay."""
    import shutil

    import esper

    tiny = {"n_envs": 4, "horizon": 8, "n_minibatches": 1, "device": "cpu", "progress": False}
    esper.train(episodes=3, run_dir=str(tmp_path), checkpoint_every=1, **tiny)
    checkpoints = tmp_path / "checkpoints"
    shutil.copy(checkpoints / "batch_000003.pt", checkpoints / "best.pt")  # best at batch 3
    for batch in (1, 3):
        (tmp_path / "videos").mkdir(exist_ok=True)
        (tmp_path / "videos" / f"batch_{batch:06d}.mp4").write_text("clip")
        (tmp_path / f"policy_batch_{batch:06d}.onnx").write_text("export")
    outcome = esper.train(
        episodes=1, run_dir=str(tmp_path), start_episode=1, overwrite=True, **tiny
    )
    assert outcome.status == "completed"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["batch_000001.pt", "batch_000002.pt"]
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["batch_000001.mp4"]
    assert sorted(p.name for p in tmp_path.glob("policy_*")) == ["policy_batch_000001.onnx"]
    # best.pt from a kept batch stays through a rewind
    shutil.copy(checkpoints / "batch_000001.pt", checkpoints / "best.pt")
    esper.train(episodes=1, run_dir=str(tmp_path), start_episode=1, overwrite=True, **tiny)
    assert (checkpoints / "best.pt").is_file()
