"""When a rank of a job fails, rank 0 names it: which rank, its error type or that
it died without one, and its error.rankK.log; a timeout names ESPER_DIST_TIMEOUT.

Every launched process has a deadline (and every collective ESPER_DIST_TIMEOUT).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from broken_job import RANK_ONE_BREAKS, BrokenJob

from esper.training.distributed import collectives as distributed
from esper.training.distributed.collectives import process_group, rank_device
from esper.training.distributed.rank_failures import describe_failure

HERE = Path(__file__).parent
DEADLINE_S = 300

# The killed-rank job's tests: one worker runs them, launching it once.
KILLED_RANK = pytest.mark.xdist_group("killed_rank")


def test_a_rank_s_own_error_is_named_over_rank_0_s_symptom() -> None:
    posts = {1: "ValueError: bad input on this rank", 2: "DistBackendError: Connection reset"}
    failure = describe_failure("RuntimeError: Connection reset by peer", posts, 3, "runs/x", 30)
    assert str(failure) == (
        "rank 1 failed with ValueError: bad input on this rank "
        "(traceback in runs/x/error.rank1.log)"
    )
    assert failure.error_type == "ValueError"


def test_a_rank_that_posted_nothing_died_without_a_python_error() -> None:
    failure = describe_failure("RuntimeError: Connection closed by peer", {}, 2, "runs/x", 30)
    message = str(failure)
    assert message.startswith("rank 1 died without a Python error: killed by a signal")
    assert "runs/x/error.rank1.log" in message and "ESPER_DIST_TIMEOUT" not in message


def test_a_timeout_names_esper_dist_timeout() -> None:
    own = "DistBackendError: [gloo] Timed out waiting 30000ms for recv operation"
    message = str(describe_failure(own, {}, 2, "runs/x", 30))
    assert message.startswith("rank 1 did not answer within ESPER_DIST_TIMEOUT = 30 s")
    assert "raise it if a rank is just slow" in message


def test_cpu_ranks_never_set_a_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a machine with a GPU per rank, a --device cpu job must not touch CUDA."""
    import torch.distributed as dist

    chosen: list[int] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv(distributed.NCCL_ERRORS_ENV, "2")
    monkeypatch.setattr(distributed, "cuda_for_every_local_rank", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(dist, "init_process_group", lambda **_: None)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: None)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    with process_group() as group:
        assert rank_device(torch.device("cpu"), group) == torch.device("cpu")
        assert chosen == []
        assert rank_device(torch.device("cuda"), group) == torch.device("cuda", 1)
    assert chosen == [1]


def failed_event(run_dir: Path) -> dict:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    assert events[-1]["event_type"] == "TRAINING_FAILED", events[-1]
    return events[-1]["data"]


@RANK_ONE_BREAKS
def test_a_python_error_on_rank_1_is_named_in_training_failed_and_on_the_console(
    rank_one_breaks: BrokenJob,
) -> None:
    run_dir = rank_one_breaks.run_dir
    assert rank_one_breaks.returncode == 1, rank_one_breaks.stderr[-3000:]
    failed = failed_event(run_dir)
    log = run_dir / "error.rank1.log"
    assert failed["reason"].startswith(
        f"rank 1 failed with ValueError: rank one broke on purpose (traceback in {log})"
    )
    assert failed["error_type"] == "ValueError"
    assert "rank one broke on purpose" in log.read_text()
    rank0 = [
        line
        for line in rank_one_breaks.stderr.splitlines()
        if line.startswith("esper: training failed:")
    ]
    assert rank0 and rank0[0].startswith("esper: training failed: rank 1 failed with ValueError")


@dataclass(frozen=True)
class KilledRank:
    run_dir: Path
    pid: int  # rank 1's
    returncode: int
    stderr: str


@pytest.fixture(scope="module")
def killed_rank(tmp_path_factory: pytest.TempPathFactory) -> KilledRank:
    """SIGKILL to rank 1 of ``esper ppo --nproc 2`` after its first checkpoint."""
    import signal
    import uuid

    from test_distributed import launched, rank_env, rank_pid, wait_for

    run_dir = tmp_path_factory.mktemp("killed_rank")
    marker = uuid.uuid4().hex
    command = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", "--device", "cpu",
        "--envs", "8", "--max-epochs", "16", "--episodes", "100000", "--checkpoint-every", "1",
        "--run-dir", str(run_dir), "--no-sanctum",
    ]  # fmt: skip
    with launched(command, env=rank_env(ESPER_TEST_MARKER=marker)) as proc:
        wait_for(lambda: (run_dir / "checkpoints" / "batch_000001.pt").exists(), proc)
        pid = rank_pid(marker, rank=1)
        os.kill(pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)  # the deadline: the job must end by then
    return KilledRank(run_dir, pid, proc.returncode, stderr)


@KILLED_RANK
def test_the_launcher_names_the_signal_that_killed_a_rank(killed_rank: KilledRank) -> None:
    stderr = killed_rank.stderr
    assert killed_rank.returncode != 0
    assert f"esper: rank 1 (pid {killed_rank.pid}) was killed by SIGKILL" in stderr, stderr[-3000:]
    assert "esper: training failed: rank 1 died without a Python error" in stderr
    assert "Traceback" not in stderr


@KILLED_RANK
def test_a_killed_rank_ends_the_job_and_rank_0_records_the_failure(
    killed_rank: KilledRank,
) -> None:
    """Rank 0 names the rank that died, not its own symptom ("Connection reset by
    peer"), and the newest checkpoint is a whole two-rank one."""
    from esper.training.checkpoint import load_checkpoint

    run_dir = killed_rank.run_dir
    reason = failed_event(run_dir)["reason"]
    assert reason.startswith("rank 1 died without a Python error: killed by a signal"), reason
    assert str(run_dir / "error.rank1.log") in reason
    checkpoints = sorted((run_dir / "checkpoints").glob("batch_*.pt"))
    newest = load_checkpoint(checkpoints[-1])
    assert newest["world_size"] == 2 and len(newest["rank_states"]) == 1
    assert not list((run_dir / "checkpoints").glob(".*tmp*"))


def test_ranks_whose_launcher_is_killed_checkpoint_and_stop(tmp_path: Path) -> None:
    """``kill -9`` of ``esper ppo --nproc 2`` leaves its ranks without a parent:
    they stop by themselves at one batch, as on SIGHUP, with a checkpoint to
    resume from, instead of training on unseen."""
    import signal
    import time
    import uuid

    from test_distributed import events, launched, rank_env, rank_pid, wait_for

    marker = uuid.uuid4().hex
    command = [
        sys.executable, "-m", "esper", "ppo", "--nproc", "2", "--device", "cpu",
        "--envs", "8", "--max-epochs", "16", "--episodes", "100000",
        "--checkpoint-every", "100000", "--run-dir", str(tmp_path), "--no-sanctum",
    ]  # fmt: skip
    with launched(command, env=rank_env(ESPER_TEST_MARKER=marker)) as proc:
        wait_for(lambda: '"BATCH_COMPLETED"' in read_telemetry(tmp_path), proc)
        ranks = [rank_pid(marker, rank) for rank in (0, 1)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        end = time.monotonic() + DEADLINE_S
        while any(alive(pid) for pid in ranks):
            assert time.monotonic() < end, "the orphaned ranks trained on"
            time.sleep(0.2)
    last = events(tmp_path)[-1]
    assert last["event_type"] == "TRAINING_INTERRUPTED", last
    # Each rank polls for its launcher: rank 0 records its own stop, or rank 1's
    # when rank 1 noticed first (seen on a loaded machine).
    reason = last["data"]["reason"]
    assert reason in ("SIGHUP received", "a stop on another rank received"), reason
    assert (tmp_path / "checkpoints" / f"batch_{last['data']['resume_batch']:06d}.pt").exists()


def alive(pid: int) -> bool:
    """Running: not gone, and not a zombie its new parent has yet to reap."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_telemetry(run_dir: Path) -> str:
    path = run_dir / "telemetry.jsonl"
    return path.read_text() if path.exists() else ""
