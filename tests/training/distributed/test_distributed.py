"""One training over two ranks (torchrun, gloo on the CPU).

Every launched process has a deadline and every collective a timeout
(ESPER_DIST_TIMEOUT), so a broken collective fails the test instead of hanging it.
Each torchrun start costs several seconds of imports per rank on a small
machine, so the runs are few and shared between tests.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import torch
from batch_stats import learning_fields

from esper.runtime.errors import ConfigError
from esper.training.checkpoint import load_checkpoint
from esper.training.distributed.collectives import Collectives, combine_fields
from esper.training.transfer import (
    PACKED_FIELDS,
    PACKED_REDUCTIONS,
    PACKED_WEIGHT_COLUMN,
    LostBatchReport,
    pack_device_stats,
    to_host,
    unpack_device_stats,
)
from esper.training.transfer import combine_ranks as _combine_ranks

# The tests of one policy share its launches (two_rank_runs): one worker runs
# them, launching once; the two policies' groups run side by side, and the
# module's other tests go wherever a worker is free.
RUNS_OF = {
    policy: pytest.param(policy, marks=pytest.mark.xdist_group(f"two_rank_runs_{policy}"))
    for policy in ("mlp", "gru")
}

HERE = Path(__file__).parent
LAUNCH_DEADLINE_S = 300  # one torchrun start, imports included, on a busy 2-core machine


def torchrun_command(*args: str, nproc: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *args,
    ]


def rank_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "ESPER_DIST_TIMEOUT": "30", **extra}


def esper_ppo(run_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node 2 -m esper ppo`` on small CartPole batches."""
    command = torchrun_command(
        "-m", "esper", "ppo", "--device", "cpu", "--envs", "8", "--max-epochs", "16",
        "--run-dir", str(run_dir), "--no-sanctum", *flags,
    )  # fmt: skip
    return subprocess.run(
        command, capture_output=True, text=True, timeout=LAUNCH_DEADLINE_S, env=rank_env()
    )


def events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def batches(run_dir: Path) -> dict[int, dict]:
    found: dict[int, dict] = {}
    for event in events(run_dir):
        if event["event_type"] == "BATCH_COMPLETED":
            assert event["batch"] not in found, f"batch {event['batch']} twice"
            found[event["batch"]] = event["data"]
    return found


@pytest.fixture(scope="module", params=list(RUNS_OF.values()))
def two_rank_runs(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, Path]:
    """Two-rank CartPole: 5 batches in one go (a checkpoint at batch 3 and at its
    end), and a resume of that batch-3 checkpoint, copied into a folder of its own,
    for 2 more: the same 5 batches in two jobs. One learning-rate schedule (annealed
    over 5 batches) in both; with the MLP policy and with a recurrent one (each rank
    carries its envs' memory)."""
    root = tmp_path_factory.mktemp("two_ranks")
    config = root / "schedule.toml"
    policy = (
        'recurrent = "gru"\nrnn_hidden = 8\nn_minibatches = 2\n' if request.param == "gru" else ""
    )
    config.write_text(f"anneal_batches = 5\n{policy}")
    split, whole = root / "split", root / "whole"
    done = esper_ppo(whole, "--config", str(config), "--episodes", "5", "--checkpoint-every", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    (split / "checkpoints").mkdir(parents=True)
    shutil.copy(whole / "checkpoints" / "batch_000003.pt", split / "checkpoints")
    # --resume extends the newest checkpoint the folder holds: batch 3's
    done = esper_ppo(split, "--config", str(config), "--episodes", "2", "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    return {"split": split, "whole": whole}


def started_and_done(run_dir: Path) -> tuple[dict, dict[int, dict]]:
    """The run's one TRAINING_STARTED and its batches, checked to have completed."""
    record = events(run_dir)
    (started,) = [e["data"] for e in record if e["event_type"] == "TRAINING_STARTED"]
    assert record[-1]["event_type"] == "TRAINING_COMPLETED"
    assert (started["world_size"], started["env_device_counts"]) == (2, {"cpu": 8})
    return started, batches(run_dir)


def test_two_ranks_train_as_one_job(two_rank_runs: dict[str, Path]) -> None:
    started, done = started_and_done(two_rank_runs["whole"])
    assert (started["start_batch"], started["max_batches"]) == (0, 5)
    assert sorted(done) == [1, 2, 3, 4, 5]
    # --envs is the job's total: each batch adds 8 envs x 16 steps over both ranks.
    assert [done[b]["env_steps"] for b in sorted(done)] == [128 * b for b in range(1, 6)]


def test_a_two_rank_resume_extends_the_newest_checkpoint(two_rank_runs: dict[str, Path]) -> None:
    started, done = started_and_done(two_rank_runs["split"])
    assert (started["start_batch"], started["max_batches"]) == (3, 5)
    assert sorted(done) == [4, 5]
    assert [done[b]["env_steps"] for b in (4, 5)] == [128 * 4, 128 * 5]  # the count goes on


def test_two_rank_resume_continues_bit_for_bit(two_rank_runs: dict[str, Path]) -> None:
    split = load_checkpoint(two_rank_runs["split"] / "checkpoints" / "batch_000005.pt")
    whole = load_checkpoint(two_rank_runs["whole"] / "checkpoints" / "batch_000005.pt")
    assert split["world_size"] == whole["world_size"] == 2
    assert len(split["rank_states"]) == 1  # rank 1's envs, RNG streams and trackers
    if split["config"]["recurrent"] != "none":  # each rank's memory is in its part
        assert split["memory"].shape == (4, 8) and split["rank_states"][0]["memory"].shape == (4, 8)
    keys = ("policy", "optimizer", "env", "next_obs", "memory", "episodes", "rng", "rank_states")
    for key in keys:
        assert_same(split[key], whole[key], key)
    split_stats, whole_stats = batches(two_rank_runs["split"]), batches(two_rank_runs["whole"])
    for batch in (4, 5):  # the two batches after the resume
        left, right = learning_fields(split_stats[batch]), learning_fields(whole_stats[batch])
        assert left == right, batch


def test_one_process_refuses_a_two_rank_checkpoint(two_rank_runs: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from esper.cli import app

    run_dir = two_rank_runs["split"]
    args = ["ppo", "--run-dir", str(run_dir), "--start-episode", "5", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.startswith("esper: error: --nproc: ")
    assert "written by 2 rank(s)" in message and "this run has 1" in message
    assert "Traceback" not in message and len(message.splitlines()) == 1


def assert_same(left, right, where: str) -> None:
    if isinstance(left, torch.Tensor):
        assert torch.equal(left, right), where
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            assert_same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list | tuple):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert left == right, where


def test_two_shards_step_equals_one_step_over_their_union(tmp_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    try:
        from distributed_union_worker import one_step
    finally:
        sys.path.remove(str(HERE))
    done = subprocess.run(
        torchrun_command(str(HERE / "distributed_union_worker.py"), str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=LAUNCH_DEADLINE_S,
        env=rank_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    union = one_step(rank=0, world_size=1)
    for name in ("gradient", "parameters", "obs_mean", "obs_var"):
        # Both ranks hold the same values, and they are the union's.
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
        torch.testing.assert_close(ranks[0][name], union[name], rtol=1e-5, atol=1e-5)
    assert not torch.equal(ranks[0]["gradient"], torch.zeros_like(union["gradient"]))
    mean_loss = (ranks[0]["policy_loss"] + ranks[1]["policy_loss"]) / 2
    torch.testing.assert_close(mean_loss, union["policy_loss"], rtol=1e-5, atol=1e-5)


def rank_stats(episodes: list[tuple[float, float]], loss: float) -> torch.Tensor:
    """One rank's packed batch statistics for finished ``(return, length)`` pairs."""
    returns = torch.tensor([r for r, _ in episodes], dtype=torch.float64)
    lengths = torch.tensor([n for _, n in episodes], dtype=torch.float64)
    values = {f.name: torch.tensor(loss, dtype=torch.float64) for f in PACKED_FIELDS}
    values |= {
        "episodes_finished": torch.tensor(float(len(episodes)), dtype=torch.float64),
        "episode_return_mean": returns.mean(),
        "episode_return_min": returns.min() if episodes else torch.tensor(float("inf")),
        "episode_return_max": returns.max() if episodes else torch.tensor(float("-inf")),
        "episode_length_mean": lengths.mean(),
    }
    return pack_device_stats(values)


def job_stats(*ranks: torch.Tensor) -> dict:
    combined = combine_fields(torch.stack(ranks), PACKED_REDUCTIONS, PACKED_WEIGHT_COLUMN)
    return unpack_device_stats(combined.tolist())


def test_job_statistics_are_every_rank_s_episodes_combined_as_the_metrics_table_says() -> None:
    job = job_stats(
        rank_stats([(10.0, 100.0), (20.0, 200.0)], loss=1.0),
        rank_stats([], loss=2.0),  # no episode ended on this rank: it adds none
        rank_stats([(40.0, 30.0)], loss=6.0),
    )
    assert job["episodes_finished"] == 3
    assert job["episode_return_mean"] == pytest.approx(70.0 / 3)  # weighted by episodes
    assert job["episode_length_mean"] == pytest.approx(110.0)
    assert (job["episode_return_min"], job["episode_return_max"]) == (10.0, 40.0)
    assert job["policy_loss"] == pytest.approx(3.0)  # losses: the ranks' mean
    nothing = job_stats(rank_stats([], loss=1.0), rank_stats([], loss=1.0))
    assert nothing["episodes_finished"] == 0 and nothing["episode_return_mean"] is None


class RankOneHasTwiceTheMemory(Collectives):
    """Two ranks in one process: rank 1's columns are rank 0's with its memory doubled."""

    def reduce_fields(self, values, kinds, weight_column):
        other = values.clone()
        other[-2:] *= 2  # the memory columns end the vector
        return combine_fields(torch.stack((values, other)), kinds, weight_column)


def test_job_memory_is_the_largest_rank_s_and_cuda_memory_stays_absent_off_cuda() -> None:
    group = RankOneHasTwiceTheMemory(world_size=2)
    packed = rank_stats([(10.0, 100.0)], loss=1.0)
    memory = {"process_memory_mb": 300.0, "cuda_memory_mb": None}
    combined = _combine_ranks(group, packed, False, memory).tolist()
    stop, arrived, process_mb, cuda_mb = combined[len(PACKED_REDUCTIONS) :]
    assert (stop, arrived, process_mb) == (0.0, 1.0, 600.0)
    assert math.isnan(cuda_mb)  # off CUDA on every rank: BATCH_COMPLETED says None


def test_a_batch_report_an_aborted_collective_never_wrote_fails_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After an nccl abort ``all_gather`` can return without writing its outputs. The
    memory they were allocated from (here: ones, as a stop column of garbage > 0
    would read) must not become the batch's report, which would end the job as
    stopped ("interrupted") rather than failed."""
    import torch.distributed as dist

    monkeypatch.setattr(dist, "all_gather", lambda outputs, tensor: None)  # nothing written
    monkeypatch.setattr(torch, "empty_like", torch.ones_like)  # leftover memory
    group = Collectives(world_size=2)
    packed = rank_stats([(10.0, 100.0)], loss=1.0)
    memory = {"process_memory_mb": 300.0, "cuda_memory_mb": None}
    with pytest.raises(LostBatchReport, match="did not arrive"):
        to_host(
            dict(zip([f.name for f in PACKED_FIELDS], packed, strict=True)), memory, False, group
        )


def test_envs_that_do_not_split_over_the_ranks_are_refused_naming_envs() -> None:
    from esper.cli import CLI_NAMES

    with pytest.raises(ConfigError) as refused:
        Collectives(world_size=3).shard(8)
    line = refused.value.in_words(CLI_NAMES).one_line()
    assert line.startswith("--envs: 8 environments do not split evenly over 3 ranks")


@contextmanager
def launched(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """A launcher (torchrun, ``esper ppo --nproc``) in its own process group: a
    failing test kills its ranks with it, rather than leaving them training."""
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_for(ready, proc: subprocess.Popen, deadline_s: float = LAUNCH_DEADLINE_S) -> None:
    end = time.monotonic() + deadline_s
    while not ready():
        assert proc.poll() is None, f"torchrun ended early: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < end, "the run never reached its second checkpoint"
        time.sleep(0.2)


def rank_pid(marker: str, rank: int) -> int:
    """The pid of this test's worker process of ``rank`` (found by its environment)."""
    wanted = {f"ESPER_TEST_MARKER={marker}".encode(), f"RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ:
            return int(entry.name)
    raise AssertionError(f"no rank {rank} process found")


def batches_so_far(run_dir: Path) -> list[str]:
    path = run_dir / "telemetry.jsonl"
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if '"BATCH_COMPLETED"' in line]


@pytest.mark.parametrize("rank, lines", [("0", 1), ("1", 0)])
def test_bad_input_is_one_line_on_rank_0_only(
    rank: str, lines: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every rank of a job sees the same bad input; only rank 0 says so, and
    every rank exits 2."""
    from typer.testing import CliRunner

    from esper.cli import app

    monkeypatch.setenv("RANK", rank)
    result = CliRunner().invoke(app, ["ppo", "--episodes", "0", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert len(result.output.splitlines()) == lines
    assert "Traceback" not in result.output
