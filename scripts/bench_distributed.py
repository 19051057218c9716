"""Throughput of one training over 1 or N ranks, and the time spent in collectives.

Run it under torchrun (one process per rank; without torchrun it is one rank):

    OMP_NUM_THREADS=1 nice -n 10 torchrun --standalone --nproc-per-node 2 \\
        scripts/bench_distributed.py --envs 1024 --batches 4

Each rank trains CartPole with its default config, ``--envs`` environments in
total, on the CPU. Rank 0 prints one JSON line: the job's env-steps per second
(all ranks' steps over rank 0's batch time, median of the batches after the
first, which is warm-up) and the seconds per batch rank 0 spent inside
collectives (gradient all-reduces, advantage moments, the batch's statistics;
exact on gloo, where collectives block).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from esper.config.layers import build_config
from esper.telemetry.hub import TelemetryHub
from esper.training.distributed.collectives import process_group
from esper.training.loop import run_vectorized_ppo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--task", default="cartpole")
    args = parser.parse_args()
    with process_group() as group, tempfile.TemporaryDirectory() as scratch:
        run_dir = group.main_decides(lambda: scratch)
        config = build_config(
            overrides={
                "task": args.task,
                "n_envs": args.envs,
                "n_batches": args.batches,
                "device": "cpu",
                "run_dir": run_dir,
                "checkpoint_every": 10**6,
            }
        )
        hub = TelemetryHub()
        result = run_vectorized_ppo(config, hub, group=group)
        hub.close()
        steady = result.history[1:] or result.history
        if group.is_main:
            print(
                json.dumps(
                    {
                        "world_size": group.world_size,
                        "envs": args.envs,
                        "horizon": config.horizon,
                        "batches_timed": len(steady),
                        "env_steps_per_s": round(statistics.median(b["sps"] for b in steady)),
                        "batch_seconds": round(
                            statistics.median(b["batch_seconds"] for b in steady), 3
                        ),
                        "collective_seconds_per_batch": round(
                            result.collective_seconds / len(result.history), 4
                        ),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
