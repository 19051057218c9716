"""Trains 2 small CartPole batches and counts the collectives torch.distributed
ran (a world of one calls none unless its group is active): run by torchrun as a
script, and called in the test's own process for the plain run."""

from __future__ import annotations

import collections
import functools
import json
import sys
from collections.abc import Callable

import torch.distributed as dist

import esper

COLLECTIVES = (
    "broadcast", "all_reduce", "all_gather", "all_gather_object",
    "broadcast_object_list", "gather_object", "scatter_object_list",
)  # fmt: skip


def counting(setattr_: Callable = setattr) -> collections.Counter:
    """Wrap each collective of torch.distributed with a counter (``setattr_``:
    a test's ``monkeypatch.setattr``, so that the wrapping ends with it)."""
    calls: collections.Counter = collections.Counter()

    def counted(name, collective):
        @functools.wraps(collective)
        def call(*args, **kwargs):
            calls[name] += 1
            return collective(*args, **kwargs)

        return call

    for name in COLLECTIVES:
        setattr_(dist, name, counted(name, getattr(dist, name)))
    return calls


def train(run_dir: str) -> str:
    outcome = esper.train(
        "cartpole", 2, n_envs=8, max_epochs=16, device="cpu", seed=3,
        run_dir=run_dir, checkpoint_every=1, progress=False,
    )  # fmt: skip
    return outcome.status


if __name__ == "__main__":
    calls = counting()
    print(json.dumps({"status": train(sys.argv[1]), "calls": calls}))
