"""One writer per run directory: a second training is refused while the first lives,
whatever flags it gives, and the first run's record stays whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esper.runs.lock import LOCK_FILENAME, RunLock
from esper.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = ["--device", "cpu", "--envs", "4", "--max-epochs", "8", "--no-sanctum"]
TINY += ["--checkpoint-every", "1", "--set", "n_minibatches=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def esper(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "esper", *args],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def wait_for_checkpoint(process: subprocess.Popen, run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not any((run_dir / "checkpoints").glob("batch_*.pt")):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """A live run refuses --overwrite, --resume and a plain start, each in one line
    naming its pid; its telemetry stays intact; once it dies (SIGKILL: the OS drops
    the lock) a resume goes on."""
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "esper", "ppo", "--episodes", "100000", "--run-dir", str(run_dir),
         *TINY],
        cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_checkpoint(first, run_dir)
        # Stopped, it holds its lock as a running trainer does, without taking a
        # core from the writers it refuses.
        first.send_signal(signal.SIGSTOP)
        started = events(run_dir)[0]
        for extra in (["--overwrite"], ["--resume"], []):
            second = esper("ppo", "--episodes", "1", "--run-dir", str(run_dir), *TINY, *extra)
            assert second.returncode == 2, (extra, second.stdout, second.stderr)
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert f"pid {first.pid}" in lines[0] and "--run-dir" in lines[0]
            assert "--resume" not in lines[0]  # resuming a live run is the harm itself
            assert first.poll() is None
        record = events(run_dir)
        assert record[0] == started  # nothing deleted or rewritten
        assert [e["event_type"] for e in record].count("TRAINING_STARTED") == 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        resumed = esper("ppo", "--resume", "--episodes", "1", "--run-dir", str(run_dir), *TINY)
        assert resumed.returncode == 0, resumed.stderr
    finally:
        first.kill()
        first.communicate(timeout=30)


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path: Path) -> None:
    with RunLock() as held:
        held.take(tmp_path)
        held.take(tmp_path)  # the config step and the run share one lock
        assert (tmp_path / LOCK_FILENAME).read_text().strip() == str(os.getpid())
        with pytest.raises(ConfigError, match=rf"^run_dir: .* esper pid {os.getpid()} is training"):
            RunLock().take(tmp_path)
    with RunLock() as next_writer:
        next_writer.take(tmp_path)


def test_a_refused_run_leaves_no_directory_behind(tmp_path: Path) -> None:
    with RunLock() as lock:
        lock.take(tmp_path / "runs" / "new")
    assert list(tmp_path.iterdir()) == []  # runs/ too: the lock made it
