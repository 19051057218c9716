"""Train one task on many seeds in parallel processes: a thin caller of ``esper seeds``.

``esper seeds`` (src/esper/workflows/sweep.py) is the one implementation: each seed a
whole ``esper ppo`` run in its own process, ``--jobs`` of them at once, each
pinned to its own slice of the CPUs with that many threads (the CPU splitting
this script grew), a deadline per seed, and the table (last-5 mean, best batch,
final batch, env steps, wall and CPU seconds, then mean ± std) printed and
written to DIR/seeds.md and seeds.json. This script keeps its old flags:

    uv run python scripts/seeds.py --task cartpole --seeds 1-20 --target 475 --threshold 450
    uv run python scripts/seeds.py --seeds 1-4 --jobs 2 --set n_envs=64 --set horizon=128
    uv run python scripts/seeds.py --seeds 1-20 --keep-runs runs/sweep && esper plot runs/sweep

Without ``--keep-runs`` the runs go to a temporary dir. Exit status: 0 when every
seed completed and its last-5 mean passed ``--threshold``, 1 otherwise, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from esper.cli import app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="cartpole")
    parser.add_argument("--episodes", type=int, default=50, help="batches per run")
    parser.add_argument("--seeds", default="1-20", help="e.g. 1-20 or 1,3,5")
    parser.add_argument("--jobs", type=int, help="seeds at once (default: the usable CPUs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", type=float, default=475.0, help="batch mean to reach")
    parser.add_argument("--threshold", type=float, default=450.0, help="last-5 mean to pass")
    parser.add_argument("--keep-runs", metavar="DIR", help="the sweep's dir (for esper plot)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="PPOConfig override"
    )
    args = parser.parse_args(argv)
    words = ["seeds", "--task", args.task, "--episodes", str(args.episodes)]
    words += ["--seeds", args.seeds, "--device", args.device]
    words += ["--target", str(args.target), "--threshold", str(args.threshold)]
    words += [] if args.jobs is None else ["--jobs", str(args.jobs)]
    words += [word for pair in args.set for word in ("--set", pair)]
    with tempfile.TemporaryDirectory() as scratch:
        words += ["--dir", args.keep_runs or f"{scratch}/sweep"]
        return app(words, prog_name="esper", standalone_mode=False)


if __name__ == "__main__":
    sys.exit(main())
