"""Wall time of K whole `esper ppo` processes run one after the other, then all at once.

Each run is ``esper ppo --episodes B --no-sanctum --device cpu`` with the task's
default config, in its own run dir; the time is from launching the first process
to the last one's exit, so import, start-up and exit are counted. ``--repeats``
alternates the two layouts; the ratio "at once / in sequence" is what several
runs on one machine cost each other (1.0: no interference beyond sharing the
cores). ``--env NAME=VALUE`` goes to every run (e.g. ``OMP_NUM_THREADS=2`` to
force the thread count the runs took before esper chose it).

    uv run python scripts/concurrent_runs.py --runs 4 --repeats 3
    uv run python scripts/concurrent_runs.py --runs 2 4 --env OMP_NUM_THREADS=2
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def launch(run_dir: Path, batches: int, env: dict[str, str]) -> subprocess.Popen:
    command = [
        *(sys.executable, "-m", "esper.cli", "ppo"),
        *("--episodes", str(batches), "--no-sanctum", "--device", "cpu"),
        *("--run-dir", str(run_dir), "--overwrite"),
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def timed(
    runs: int, together: bool, batches: int, env: dict[str, str], root: Path, limit: float
) -> float:
    """Seconds from the first launch to the last exit (inf past ``limit``: the runs
    are killed); raises if a run failed."""
    started = time.perf_counter()
    waves = [list(range(runs))] if together else [[i] for i in range(runs)]
    codes = []
    for wave in waves:
        procs = [launch(root / f"run{i}", batches, env) for i in wave]
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=max(0.0, started + limit - time.perf_counter())))
            except subprocess.TimeoutExpired:
                for other in procs:
                    other.kill()
                    other.wait()
                return float("inf")
    seconds = time.perf_counter() - started
    if any(codes):
        raise SystemExit(f"a run failed: exit codes {codes}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[4], help="runs per layout")
    parser.add_argument("--episodes", type=int, default=15, help="batches per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=float, default=600, help="seconds per layout")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(item.split("=", 1) for item in args.env)
    root = Path(tempfile.mkdtemp(prefix="esper-concurrent-"))
    try:
        for runs in args.runs:
            apart, together = [], []
            for _ in range(args.repeats):
                apart.append(timed(runs, False, args.episodes, env, root, args.limit))
                together.append(timed(runs, True, args.episodes, env, root, args.limit))
                print(f"  {runs} runs: in sequence {apart[-1]:.1f}s, at once {together[-1]:.1f}s")
            ratios = sorted(t / a for t, a in zip(together, apart, strict=True))
            print(
                f"{runs} runs {' '.join(args.env) or '(default env)'}: "
                f"in sequence {statistics.median(apart):.1f}s "
                f"({min(apart):.1f}-{max(apart):.1f}), "
                f"at once {statistics.median(together):.1f}s "
                f"({min(together):.1f}-{max(together):.1f}), "
                f"ratio median {statistics.median(ratios):.2f} "
                f"({ratios[0]:.2f}-{ratios[-1]:.2f})",
                flush=True,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
