"""Stepping speed of MPE's simple_spread: the built-in batched port against the
same task through PettingZoo, side by side in one run.

Random actions, environment stepping only (no policy, no update), as
``esper check-env`` measures speed: each size is built, reset and warmed up,
then timed over ``--steps`` steps. Env-steps count copies x steps; agent-steps
are env-steps x 3 (every agent acts every step).

    uv run python scripts/bench_agents.py
    uv run python scripts/bench_agents.py --envs 1024 65536 --pettingzoo-envs 64 --device cuda

The PettingZoo copies always step on the CPU, one after another (their
observations then cross to --device); their speed per copy barely moves with
the count, so the largest count is a matter of memory (mpe2 keeps a 700x700
drawing surface per copy, about 2 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from esper.envs import env_class
from esper.envs.speed import measure_speed

BUILT_IN = "simple-spread"
PETTINGZOO = "pettingzoo:mpe2.simple_spread_v3"


def measure(task: str, sizes: list[int], steps: int, device: torch.device) -> list[dict]:
    builder = env_class(task)
    agents = builder.spec.n_agents
    rows = []
    for size in sizes:
        env_steps = measure_speed(builder, device, size, steps=steps)
        rows.append(
            {
                "task": task,
                "envs": size,
                "env_steps_per_s": env_steps,
                "agent_steps_per_s": env_steps * agents,
            }
        )
        print(f"  {task} x{size}: {env_steps:,.0f} env-steps/s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1024], help="built-in copies")
    parser.add_argument(
        "--pettingzoo-envs", type=int, nargs="+", default=[1, 64, 1024], help="PettingZoo copies"
    )
    parser.add_argument("--steps", type=int, default=100, help="timed steps per size")
    parser.add_argument("--pettingzoo-steps", type=int, default=20, help="timed steps per size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    device = torch.device(args.device)
    rows = measure(BUILT_IN, args.envs, args.steps, device)
    rows += measure(PETTINGZOO, args.pettingzoo_envs, args.pettingzoo_steps, device)
    threads = torch.get_num_threads()
    print(f"\nsimple_spread, random actions, device {device}, {threads} torch thread(s)")
    print(f"{'task':<36} {'envs':>7} {'env-steps/s':>13} {'agent-steps/s':>15}")
    for row in rows:
        print(
            f"{row['task']:<36} {row['envs']:>7} {row['env_steps_per_s']:>13,.0f} "
            f"{row['agent_steps_per_s']:>15,.0f}"
        )
    best = {
        task: max(r["env_steps_per_s"] for r in rows if r["task"] == task)
        for task in (BUILT_IN, PETTINGZOO)
    }
    print(f"built-in / PettingZoo (best of each): {best[BUILT_IN] / best[PETTINGZOO]:,.0f}x")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
