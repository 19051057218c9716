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

# Trains 2 small CartPole batches and counts the collectives torch.distributed ran
# (a world of one calls none unless its group is active).
DRIVER = """
import collections, functools, json, sys
import torch.distributed as dist
import esper
calls = collections.Counter()

def counted(name, collective):
    @functools.wraps(collective)
    def call(*args, **kwargs):
        calls[name] += 1
        return collective(*args, **kwargs)
    return call

for name in ("broadcast", "all_reduce", "all_gather", "all_gather_object",
             "broadcast_object_list", "gather_object", "scatter_object_list"):
    setattr(dist, name, counted(name, getattr(dist, name)))
outcome = esper.train(
    "cartpole", 2, n_envs=8, max_epochs=16, device="cpu", seed=3,
    run_dir=sys.argv[1], checkpoint_every=1, progress=False,
)
print(json.dumps({"status": outcome.status, "calls": calls}))
"""


def train(tmp_path: Path, name: str, *launcher: str, **env: str) -> dict:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run_dir = tmp_path / name
    done = subprocess.run(
        [sys.executable, *launcher, str(driver), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        env={**os.environ, "ESPER_DIST_TIMEOUT": "60", **env},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    checkpoint = torch.load(run_dir / "checkpoints" / "batch_000002.pt", weights_only=True)
    return {**report, "policy": checkpoint["policy"], "optimizer": checkpoint["optimizer"]}


@pytest.mark.slow
def test_a_forced_one_rank_group_trains_like_one_process(tmp_path: Path) -> None:
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1"]
    forced = train(tmp_path, "forced", *torchrun, **{FORCE_ENV: "1"})
    plain = train(tmp_path, "plain", **{FORCE_ENV: ""})
    assert forced["status"] == plain["status"] == "completed"
    assert plain["calls"] == {}  # a plain process calls no collective
    calls = forced["calls"]
    assert calls["broadcast"] >= 1  # rank 0's parameters
    # one gradient average per optimiser step, and the batch's transfer gathers
    assert calls["all_reduce"] >= forced["optimizer"]["steps"] > 0
    assert calls["all_gather"] >= 2
    assert forced["policy"].keys() == plain["policy"].keys()
    for name, weight in plain["policy"].items():
        assert torch.equal(forced["policy"][name], weight), name
    assert forced["optimizer"]["steps"] == plain["optimizer"]["steps"]
    for moment in ("exp_avg", "exp_avg_sq"):  # the gradients went through the all-reduce
        pairs = zip(forced["optimizer"][moment], plain["optimizer"][moment], strict=True)
        assert all(torch.equal(a, b) for a, b in pairs), moment
