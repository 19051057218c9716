"""A digest of what a few batches of training leave behind, to compare two trees.

A change that claims to leave the numbers alone (a module move, a speed trick
that must equal the plain code) is checked by training the same tasks for the
same batches on both trees and comparing these digests::

    PYTHONPATH=/path/to/old/src uv run python scripts/fingerprint.py > old.txt
    uv run python scripts/fingerprint.py > new.txt && diff old.txt new.txt

It uses only ``esper.train`` and the checkpoint file, so it runs against older
trees too. Each digest covers the policy's weights, the optimiser's state and
the observation normaliser after the last batch, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch

import esper

DEFAULT_TASKS = ("cartpole", "pendulum", "acrobot", "cartpole-no-velocity")


def digest(tree: Any, hasher: Any) -> None:
    """Feed every tensor of a nested checkpoint entry to ``hasher``, keys sorted."""
    if isinstance(tree, torch.Tensor):
        hasher.update(tree.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(tree, dict):
        for key in sorted(tree, key=str):
            hasher.update(str(key).encode())
            digest(tree[key], hasher)
    elif isinstance(tree, list | tuple):
        for value in tree:
            digest(value, hasher)
    else:
        hasher.update(repr(tree).encode())


def fingerprint(task: str, batches: int, seed: int) -> str:
    with tempfile.TemporaryDirectory() as folder:
        run_dir = Path(folder) / "run"
        esper.train(
            task=task,
            episodes=batches,
            seed=seed,
            device="cpu",
            run_dir=str(run_dir),
            progress=False,
        )
        [last] = sorted((run_dir / "checkpoints").glob("batch_*.pt"))[-1:]
        saved = torch.load(last, weights_only=True)
    hasher = hashlib.sha256()
    for key in ("policy", "optimizer", "obs_normalizer"):
        hasher.update(key.encode())
        digest(saved.get(key), hasher)
    return hasher.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the same reduction order on every machine
    for task in args.tasks:
        print(f"{task} {fingerprint(task, args.batches, args.seed)}", flush=True)


if __name__ == "__main__":
    main()
