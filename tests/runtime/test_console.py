"""A closed console never fails a run: telemetry and checkpoints go on."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from esper.runtime.console import QuietWhenGone

REPO = Path(__file__).resolve().parents[2]
TINY = ["--device", "cpu", "--envs", "4", "--max-epochs", "8", "--set", "n_minibatches=1"]


def test_a_pipe_closed_after_the_first_line_does_not_fail_the_run(tmp_path: Path) -> None:
    """``esper ppo ... 2>&1 | head -1``: every line after the first meets a broken pipe."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "esper", "ppo", "--episodes", "4", "--run-dir", str(run_dir),
         "--checkpoint-every", "1", *TINY],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(b"esper: cartpole on cpu")
        process.stdout.close()  # the reader goes, as head does
        assert process.wait(timeout=240) == 0
    finally:
        process.kill()
        process.wait(timeout=30)
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["event_type"] for line in lines]
    assert kinds[-1] == "TRAINING_COMPLETED" and kinds.count("BATCH_COMPLETED") == 4
    assert "TRAINING_FAILED" not in kinds and "SINK_FAILED" not in kinds
    assert (run_dir / "checkpoints" / "batch_000004.pt").is_file()
    assert not (run_dir / "error.log").exists()


def test_a_closed_stream_goes_quiet() -> None:
    closed = io.StringIO()
    closed.close()
    stream = QuietWhenGone(closed)  # type: ignore[arg-type]
    print("dropped", file=stream, flush=True)
    assert stream.gone
    print("dropped too", file=stream, flush=True)
