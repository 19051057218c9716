"""Env-steps per second of the full training loop at several --envs sizes.

Each size runs in its own subprocess so peak memory (max RSS) is per size.
The first batch (allocation, warm-up) is excluded from the steady-state figure.

    uv run python scripts/bench.py --envs 8 64 512 4096 --device auto
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def measure(task: str, n_envs: int, max_epochs: int, batches: int, device: str) -> dict:
    """Run in this process: train ``batches`` batches with no sinks, report speed."""
    from esper.config import PPOConfig
    from esper.device import resolve_device
    from esper.telemetry.hub import TelemetryHub
    from esper.training import run_vectorized_ppo

    minibatches = 4 if n_envs * max_epochs % 4 == 0 else 1
    with tempfile.TemporaryDirectory() as run_dir:
        config = PPOConfig(
            task=task,
            n_envs=n_envs,
            max_epochs=max_epochs,
            n_minibatches=minibatches,
            n_episodes=batches,
            device=device,
            run_dir=run_dir,
            checkpoint_every=10**6,
        )
        started = time.perf_counter()
        result = run_vectorized_ppo(config, TelemetryHub())
        wall = time.perf_counter() - started
    steady = result.history[1:] or result.history
    seconds = sum(s["batch_seconds"] for s in steady)
    steps = len(steady) * config.batch_size
    rollout = sum(s["rollout_seconds"] for s in steady)
    update = sum(s["update_seconds"] for s in steady)
    return {
        "task": task,
        "device": str(resolve_device(device)),
        "n_envs": n_envs,
        "max_epochs": max_epochs,
        "batches": batches,
        "sps": steps / seconds,
        "rollout_sps": steps / rollout,
        "update_sps": steps / update,
        "wall_seconds": wall,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cartpole")
    parser.add_argument("--envs", type=int, nargs="+", default=[8, 64, 512, 4096])
    parser.add_argument("--max-epochs", type=int, default=64)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()

    if args.one is not None:
        row = measure(args.task, args.one, args.max_epochs, args.batches, args.device)
        print(json.dumps(row))
        return

    rows = []
    header = f"{'envs':>6} {'full sps':>12} {'rollout sps':>12} {'update sps':>12} {'peak MB':>8}"
    print(f"task={args.task} device={args.device} max_epochs={args.max_epochs}")
    print(header)
    for n_envs in args.envs:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n_envs), "--task", args.task,
             "--max-epochs", str(args.max_epochs), "--batches", str(args.batches),
             "--device", args.device],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{n_envs:>6} {row['sps']:>12,.0f} {row['rollout_sps']:>12,.0f} "
            f"{row['update_sps']:>12,.0f} {row['peak_rss_mb']:>8,.0f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
