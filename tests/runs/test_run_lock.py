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
from typer.testing import CliRunner

from esper.cli import app
from esper.runs.lock import LOCK_FILENAME, RunLock
from esper.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = ["--device", "cpu", "--envs", "4", "--max-epochs", "8", "--no-sanctum"]
TINY += ["--checkpoint-every", "1", "--set", "n_minibatches=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def esper(*args: str, timeout: float = 180) -> tuple[int, str]:
    """``esper ARGS`` in a process of its own: its exit code and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "esper", *args],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return done.returncode, done.stderr


def esper_here(*args: str) -> tuple[int, str]:
    """The same command through the CLI in this process (no torch import to pay
    for): the lock is an flock the first run's process holds, whoever asks."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def wait_for_checkpoint(process: subprocess.Popen, run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while not any((run_dir / "checkpoints").glob("batch_*.pt")):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.2)


def wait_for_batch(process: subprocess.Popen, run_dir: Path) -> None:
    deadline, record = time.monotonic() + 120, run_dir / "telemetry.jsonl"
    while not (record.is_file() and '"BATCH_COMPLETED"' in record.read_text()):
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no batch within 120 s"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_second_writer_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    """A live run refuses --overwrite, --resume and a plain start, each in one line
    naming its pid; its telemetry stays intact; once it dies (SIGKILL: the OS drops
    the lock) a resume goes on. The plain start is a process of its own; the
    others ask through the CLI in this process."""
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
        for ask, extra in ((esper_here, ["--overwrite"]), (esper_here, ["--resume"]), (esper, [])):
            code, said = ask("ppo", "--episodes", "1", "--run-dir", str(run_dir), *TINY, *extra)
            assert code == 2, (extra, said)
            lines = said.strip().splitlines()
            assert len(lines) == 1, said
            assert f"pid {first.pid}" in lines[0] and "--run-dir" in lines[0]
            assert "--resume" not in lines[0]  # resuming a live run is the harm itself
            assert first.poll() is None
        record = events(run_dir)
        assert record[0] == started  # nothing deleted or rewritten
        assert [e["event_type"] for e in record].count("TRAINING_STARTED") == 1
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        code, said = esper_here(
            "ppo", "--resume", "--episodes", "1", "--run-dir", str(run_dir), *TINY
        )
        assert code == 0, said
    finally:
        first.kill()
        first.communicate(timeout=30)


@pytest.mark.parametrize(
    "workflow, run_dir, second",
    [
        (["seeds", "--seeds", "1"], "seed-1", ["seeds", "--seeds", "1", "--overwrite"]),
        (["tune", "--trials", "1"], "trials/trial-0000", ["tune", "--trials", "2"]),
    ],
)
def test_a_seed_s_run_and_a_tune_trial_each_hold_their_own_directory(
    tmp_path: Path, workflow: list[str], run_dir: str, second: list[str]
) -> None:
    """While ``esper seeds`` or ``esper tune`` trains a run, that run's directory
    refuses another writer, --overwrite included, and a second sweep or study in the
    same folder is refused (it rewrote the first's logs and tables), each in one line.
    The refused commands ask through the CLI in this process (the lock's process
    semantics are the plain start's of the test above)."""
    if workflow[0] == "tune":
        pytest.importorskip("optuna")
    folder = tmp_path / "sweep"
    small = ["--episodes", "100000", "--set", "n_envs=4", "--set", "horizon=8"]
    small += ["--set", "checkpoint_every=1", "--set", "n_minibatches=2", "--device", "cpu"]
    first = subprocess.Popen(
        [sys.executable, "-m", "esper", *workflow, *small, "--dir", str(folder)],
        cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # the seed's own process goes with it at the end
    )  # fmt: skip
    try:
        wait_for_batch(first, folder / run_dir)  # a trial saves only at its end
        holder = (folder / run_dir / LOCK_FILENAME).read_text().strip()
        code, said = esper_here("ppo", "--episodes", "1", "--run-dir", str(folder / run_dir),
                                *TINY, "--overwrite")  # fmt: skip
        assert code == 2, said
        (line,) = said.strip().splitlines()
        assert f"esper pid {holder} is training in it" in line, line
        code, said = esper_here(*second, *small, "--dir", str(folder))
        assert code == 2, said
        (line,) = said.strip().splitlines()
        assert f"another esper {workflow[0]} is running in {folder} (pid {first.pid})" in line
        assert line.endswith("or choose another --dir"), line
        assert first.poll() is None, "the first sweep ended while the others were refused"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
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
