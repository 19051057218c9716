"""Train one task on many seeds in parallel processes and print a table per seed.

Each seed is a whole esper run (the task's default config, plus any ``--set
KEY=VALUE`` overrides), the same trainer ``esper ppo`` runs, in its own process
with one torch thread. Per seed the table shows the first batch whose batch mean
return (over the episodes finished in that batch) reaches ``--target``, the mean
of the last 5 batch means, the final batch mean, the wall time and the CPU time
(one thread; steadier than wall time on a busy machine); the last lines count
the seeds that reached the target and whose last-5 mean passed
``--threshold``. Long sweeps: keep them out of the test suite.

    uv run python scripts/seeds.py --task cartpole --seeds 1-20 --target 475 --threshold 450
    uv run python scripts/seeds.py --task acrobot --episodes 50 --seeds 1-5 --threshold -100
    uv run python scripts/seeds.py --seeds 1-4 --jobs 2 --set n_envs=64 --set horizon=128
    uv run python scripts/seeds.py --seeds 1-20 --keep-runs runs/sweep && esper plot runs/sweep/*

Exit status: 0 when every seed's last-5 mean passed the threshold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from learning_check import parse_set  # scripts/ is on the path when run as a script

from esper.errors import UserError

LAST = 5  # batches averaged for the "last 5" column


@dataclass
class SeedResult:
    seed: int
    batch_means: list[float | None] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # this process's CPU time: less at the mercy of a busy machine
    env_steps: int = 0
    status: str = ""

    def first_reaching(self, target: float) -> int | None:
        for batch, mean in enumerate(self.batch_means, start=1):
            if mean is not None and mean >= target:
                return batch
        return None

    def last_mean(self) -> float | None:
        tail = [m for m in self.batch_means[-LAST:] if m is not None]
        return statistics.fmean(tail) if tail else None

    def final(self) -> float | None:
        return self.batch_means[-1] if self.batch_means else None


def parse_seeds(text: str) -> list[int]:
    """``1-20``, ``1,3,7`` or a mix (``1-5,9``)."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def run_seed(
    task: str, episodes: int, seed: int, device: str, extra: dict[str, Any], keep: str | None
) -> SeedResult:
    """One esper run in this (worker) process, as ``esper ppo`` runs it (telemetry.jsonl
    included, no checkpoints); its batch means are read back from that record."""
    import torch

    torch.set_num_threads(1)
    from esper.api import make_config, run_training
    from esper.run_curves import read_curves

    with tempfile.TemporaryDirectory() as scratch:
        run_dir = Path(keep or scratch) / f"{task.replace(':', '-')}-s{seed}"
        config = make_config(
            None,
            {
                **extra,
                "task": task,
                "n_batches": episodes,
                "seed": seed,
                "device": device,
                "run_dir": str(run_dir),
                "overwrite": True,
                "checkpoint_every": 10**9,
            },
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = run_training(config, display="none")
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        if outcome.result.status != "completed":
            # a plain error: it crosses back from the worker process intact
            raise RuntimeError(
                f"seed {seed}: training {outcome.result.status}: {outcome.result.reason}"
            )
        batches = read_curves(run_dir).batches.values()
    return SeedResult(
        seed,
        batch_means=[b.episode_return_mean for b in batches],
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        env_steps=max(b.env_steps for b in batches),
        status=str(outcome.result.status),
    )


def _fmt(value: float | None) -> str:
    return "     -" if value is None else f"{value:8.1f}"


def table(results: list[SeedResult], target: float, threshold: float) -> str:
    first = f"first>={target:g}"
    lines = [f"{'seed':>4}  {first:>12}  {'last-5':>8}  {'final':>8}  wall s   cpu s"]
    for r in results:
        first = r.first_reaching(target)
        lines.append(
            f"{r.seed:>4}  {('-' if first is None else str(first)):>12}  "
            f"{_fmt(r.last_mean())}  {_fmt(r.final())}  {r.seconds:6.1f}  {r.cpu_seconds:6.1f}"
        )
    reached = sum(r.first_reaching(target) is not None for r in results)
    settled = sum((r.last_mean() or float("-inf")) >= threshold for r in results)
    seconds = [r.seconds for r in results]
    cpu = [r.cpu_seconds for r in results]
    lines.append(f"reached {target:g}: {reached}/{len(results)}")
    lines.append(f"last-5 mean >= {threshold:g}: {settled}/{len(results)}")
    lines.append(
        f"wall time per seed: median {statistics.median(seconds):.1f}s, max {max(seconds):.1f}s; "
        f"CPU time median {statistics.median(cpu):.1f}s"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="cartpole")
    parser.add_argument("--episodes", type=int, default=50, help="batches per run")
    parser.add_argument("--seeds", default="1-20", help="e.g. 1-20 or 1,3,5")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--target", type=float, default=475.0, help="batch mean to reach")
    parser.add_argument("--threshold", type=float, default=450.0, help="last-5 mean to pass")
    parser.add_argument(
        "--keep-runs", metavar="DIR", help="keep each run as DIR/TASK-sSEED (for esper plot)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="PPOConfig override"
    )
    args = parser.parse_args(argv)
    extra = parse_set(args.set)
    seeds = parse_seeds(args.seeds)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # a mistake in the task or a --set is one line here, not one per worker
        from esper.api import make_config

        make_config(None, {**extra, "task": args.task, "n_batches": args.episodes})
    except UserError as exc:
        print(f"seeds.py: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        futures = [
            pool.submit(
                run_seed, args.task, args.episodes, seed, args.device, extra, args.keep_runs
            )
            for seed in seeds
        ]
        results = []
        for future in futures:
            results.append(future.result())
            r = results[-1]
            print(
                f"seed {r.seed}: last-5 {_fmt(r.last_mean())}, {r.env_steps} env steps "
                f"in {r.seconds:.1f}s ({r.env_steps / r.seconds:.0f}/s)",
                flush=True,
            )
    print(f"\n{args.task}, {args.episodes} batches, overrides {extra or 'none'}")
    print(table(results, args.target, args.threshold))
    print(f"sweep wall time {time.perf_counter() - started:.0f}s with {args.jobs} jobs")
    settled = all((r.last_mean() or float("-inf")) >= args.threshold for r in results)
    return 0 if settled else 1


if __name__ == "__main__":
    sys.exit(main())
