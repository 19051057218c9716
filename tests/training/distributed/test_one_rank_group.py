"""ESPER_FORCE_DIST=1: a one-rank torchrun job builds its process group and runs
every collective (broadcast, all-reduce, all-gather), as several ranks would.

The device check runs this path with nccl on a one-GPU machine; here it runs
with gloo on the CPU. A group of one changes no number: the broadcast copies
rank 0's parameters onto themselves, the gradient average divides by 1 and the
all-gathers stack one rank, so the weights equal a plain run's bit for bit.
Each process runs under a deadline (and the group under its own collective
timeout), so a hung rendezvous fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from esper.training.distributed.collectives import FORCE_ENV

DEADLINE_S = 180
HERE = Path(__file__).parent


def checkpoint(run_dir: Path) -> dict:
    state = torch.load(run_dir / "checkpoints" / "batch_000002.pt", weights_only=True)
    return {"policy": state["policy"], "optimizer": state["optimizer"]}


def forced(tmp_path: Path) -> dict:
    """one_rank_driver.py under a one-rank torchrun, its group forced."""
    run_dir = tmp_path / "forced"
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    done = subprocess.run(
        [sys.executable, *torchrun, str(HERE / "one_rank_driver.py"), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={
            **os.environ,
            "ESPER_DIST_TIMEOUT": "60",
            FORCE_ENV: "1",
            # the plain run's threads (this process's), so that its matmuls match
            "OMP_NUM_THREADS": str(torch.get_num_threads()),
        },
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {**report, **checkpoint(run_dir)}


def plain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The same training in this process, without a group: no launch to pay for."""
    from one_rank_driver import counting, train

    monkeypatch.delenv(FORCE_ENV, raising=False)
    calls = counting(monkeypatch.setattr)
    status = train(str(tmp_path / "plain"))
    return {"status": status, "calls": dict(calls), **checkpoint(tmp_path / "plain")}


def test_a_forced_one_rank_group_trains_like_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forced_run = forced(tmp_path)
    plain_run = plain(tmp_path, monkeypatch)
    assert forced_run["status"] == plain_run["status"] == "completed"
    assert plain_run["calls"] == {}  # a plain process calls no collective
    calls = forced_run["calls"]
    assert calls["broadcast"] >= 1  # rank 0's parameters
    # one gradient average per optimiser step, and the batch's transfer gathers
    assert calls["all_reduce"] >= forced_run["optimizer"]["steps"] > 0
    assert calls["all_gather"] >= 2
    assert forced_run["policy"].keys() == plain_run["policy"].keys()
    for name, weight in plain_run["policy"].items():
        assert torch.equal(forced_run["policy"][name], weight), name
    assert forced_run["optimizer"]["steps"] == plain_run["optimizer"]["steps"]
    for moment in ("exp_avg", "exp_avg_sq"):  # the gradients went through the all-reduce
        pairs = zip(forced_run["optimizer"][moment], plain_run["optimizer"][moment], strict=True)
        assert all(torch.equal(a, b) for a, b in pairs), moment
