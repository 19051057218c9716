"""Under torchrun, rank 0 holds the run directory's lock for the job's life: a
second writer is refused naming rank 0's pid, and the lock is free once the job ends.
Real processes (``esper ppo --nproc 2``, gloo on the CPU), every wait with a deadline."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

from test_distributed import batches_so_far, events, launched, rank_env, rank_pid, wait_for

from esper.runs.lock import RunLock

SMALL = ["--device", "cpu", "--envs", "8", "--max-epochs", "16", "--no-sanctum"]


def test_rank_0_holds_the_run_dir_for_the_job_and_frees_it_at_the_end(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    job = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", *SMALL, "--episodes", "100000",
        "--checkpoint-every", "100000", "--run-dir", str(tmp_path),
    ]  # fmt: skip
    with launched(job, env=rank_env(ESPER_TEST_MARKER=marker)) as proc:
        wait_for(lambda: len(batches_so_far(tmp_path)) >= 1, proc)
        holder = rank_pid(marker, rank=0)
        for extra in ([], ["--overwrite"]):
            second = subprocess.run(
                [sys.executable, "-m", "esper", "ppo", "--episodes", "1", *SMALL,
                 "--run-dir", str(tmp_path), *extra],
                capture_output=True, text=True, timeout=180, env=rank_env(),
            )  # fmt: skip
            assert second.returncode == 2, (extra, second.stderr[-2000:])
            (line,) = second.stderr.strip().splitlines()
            assert f"esper pid {holder} is training in it" in line, line
            assert proc.poll() is None, "the job ended while the second writer was refused"
        assert [e["event_type"] for e in events(tmp_path)].count("TRAINING_STARTED") == 1
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-2000:]
    assert events(tmp_path)[-1]["event_type"] == "TRAINING_INTERRUPTED"  # its record whole
    with RunLock() as lock:  # the job is over: the next writer gets the directory
        lock.take(tmp_path)
