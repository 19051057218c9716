"""A job of ``esper ppo --nproc 2`` (torch's launcher, gloo on the CPU), stopped
by SIGTERM: while it runs, rank 0 holds the run directory's lock and a second
writer is refused naming rank 0's pid; told to stop, both ranks agree on a batch,
rank 0 writes one checkpoint, the exit code says SIGTERM, and the lock is free.

Real processes, every wait with a deadline. One job serves both tests: a 2-rank
start costs three torch imports (~20 CPU-seconds on a small machine).
"""

from __future__ import annotations

import signal
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_distributed import batches_so_far, events, launched, rank_env, rank_pid, wait_for
from typer.testing import CliRunner

from esper.cli import app
from esper.runs.lock import RunLock

# Its tests share a module fixture: one worker runs them all, launching the job once.
pytestmark = pytest.mark.xdist_group("test_rank_lock")

SMALL = ["--device", "cpu", "--envs", "8", "--max-epochs", "16", "--no-sanctum"]


@dataclass(frozen=True)
class StoppedJob:
    run_dir: Path
    holder: int  # rank 0's pid
    refused: dict[str, tuple[int, str]]  # a second writer's flags: its exit code and output
    ran_on: bool  # the job still ran after the second writers were refused
    starts: int  # TRAINING_STARTED events while it ran
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def stopped_job(tmp_path_factory: pytest.TempPathFactory) -> StoppedJob:
    """The job, two batches in, meets a second writer, plain and with
    ``--overwrite``, then gets SIGTERM. The writers ask through the CLI in this
    process: the lock is an flock rank 0 holds, whoever asks (tests/runs/
    test_run_lock.py refuses a writer of its own process), and while they import
    torch the ranks would train on, two cores busy for nothing."""
    run_dir = tmp_path_factory.mktemp("job")
    marker = uuid.uuid4().hex
    job = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", *SMALL, "--episodes", "100000",
        "--checkpoint-every", "100000", "--run-dir", str(run_dir),
    ]  # fmt: skip
    second = ["ppo", "--episodes", "1", *SMALL, "--run-dir", str(run_dir)]
    with launched(job, env=rank_env(ESPER_TEST_MARKER=marker)) as proc:
        wait_for(lambda: len(batches_so_far(run_dir)) >= 2, proc)
        holder = rank_pid(marker, rank=0)
        refused = {}
        for flags in ([], ["--overwrite"]):
            said = CliRunner().invoke(app, [*second, *flags])
            refused[" ".join(flags)] = (said.exit_code, said.output)
        ran_on = proc.poll() is None
        starts = [e["event_type"] for e in events(run_dir)].count("TRAINING_STARTED")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    return StoppedJob(run_dir, holder, refused, ran_on, starts, proc.returncode, stderr)


def test_rank_0_holds_the_run_dir_for_the_job_and_frees_it_at_the_end(
    stopped_job: StoppedJob,
) -> None:
    for flags, (code, output) in stopped_job.refused.items():
        assert code == 2, (flags, output[-2000:])
        (line,) = output.strip().splitlines()
        assert f"esper pid {stopped_job.holder} is training in it" in line, line
    assert stopped_job.ran_on, "the job ended while the second writers were refused"
    assert stopped_job.starts == 1
    assert stopped_job.returncode == 143, stopped_job.stderr[-2000:]
    record = events(stopped_job.run_dir)
    assert record[-1]["event_type"] == "TRAINING_INTERRUPTED"  # its record whole
    with RunLock() as lock:  # the job is over: the next writer gets the directory
        lock.take(stopped_job.run_dir)


def test_sigterm_to_the_launcher_stops_every_rank_at_one_batch(stopped_job: StoppedJob) -> None:
    """``esper ppo --nproc 2`` (torch's launcher) is told to stop: both ranks agree
    on a batch, rank 0 writes one checkpoint, and the exit code says SIGTERM."""
    stderr = stopped_job.stderr
    assert stopped_job.returncode == 143, stderr[-2000:]
    record = events(stopped_job.run_dir)
    assert record[-1]["event_type"] == "TRAINING_INTERRUPTED"
    stopped_at = record[-1]["batch"]
    assert [p.name for p in (stopped_job.run_dir / "checkpoints").glob("batch_*.pt")] == [
        f"batch_{stopped_at:06d}.pt"
    ]
    assert "Traceback" not in stderr
    assert stderr.count("resume with: torchrun --nproc-per-node=2 -m esper ppo") == 1
