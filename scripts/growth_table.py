"""The grow-mlp learning table (docs/learning.md): PPO on training seeds chosen
beforehand against every scripted baseline, each on the same 100 evaluation
episodes.

For each training seed S: ``esper ppo --task grow-mlp --episodes 50 --seed S
--run-dir ROOT/seed_S`` (the default config), then ``esper eval ROOT/seed_S
--episodes 100 --seed 1000`` (deterministic, as the CLI does). Each scripted
baseline runs once (it does not depend on the training seed): ``esper eval
--scripted NAME --task grow-mlp --episodes 100 --seed 1000 ROOT/NAME``. Every
command is the user's, one process at a time; a step whose result is already
in ROOT is skipped, so an interrupted table resumes. The numbers are read back
from each run dir's EVALUATION_COMPLETED (telemetry.jsonl).

    OMP_NUM_THREADS=1 nice -n 5 uv run python scripts/growth_table.py --root /tmp/growth2/runs
    uv run python scripts/growth_table.py --root /tmp/growth2/runs --table-only
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

SEEDS = (1, 2, 3, 4, 5)  # chosen before any was run
BASELINES = ("never", "all-at-start", "plateau", "random")
EVAL_SEED = 1000
EVAL_EPISODES = 100


def esper(*args: str) -> None:
    command = ["esper", *args]
    print(f"$ {' '.join(command)}", flush=True)
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


def evaluation(run_dir: Path) -> dict | None:
    """The newest EVALUATION_COMPLETED in ``run_dir``'s telemetry, or None."""
    path = run_dir / "telemetry.jsonl"
    if not path.exists():
        return None
    found = None
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("event_type") == "EVALUATION_COMPLETED":
            found = event["data"]
    return found


def trained(run_dir: Path) -> bool:
    return (run_dir / "checkpoints" / "batch_000050.pt").exists()


def run_all(root: Path, seeds: tuple[int, ...], train_only: bool) -> None:
    for seed in seeds:
        run_dir = root / f"seed_{seed}"
        if not trained(run_dir):
            esper(
                "ppo",
                "--task",
                "grow-mlp",
                "--episodes",
                "50",
                "--seed",
                str(seed),
                "--run-dir",
                str(run_dir),
                "--overwrite",
                "--no-sanctum",
            )
    if train_only:
        return
    for name in BASELINES:
        run_dir = root / name
        if evaluation(run_dir) is None:
            run_dir.mkdir(parents=True, exist_ok=True)
            esper(
                "eval",
                "--scripted",
                name,
                "--task",
                "grow-mlp",
                "--episodes",
                str(EVAL_EPISODES),
                "--seed",
                str(EVAL_SEED),
                str(run_dir),
            )
    for seed in seeds:
        run_dir = root / f"seed_{seed}"
        if evaluation(run_dir) is None:
            esper("eval", str(run_dir), "--episodes", str(EVAL_EPISODES), "--seed", str(EVAL_SEED))


def mean_spread(values: list[float], digits: int = 3) -> str:
    """Mean ± sample standard deviation over the training seeds."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def cell(got: dict[str, float], key: str) -> str:
    if key not in got:
        return "-"
    return f"{got[key]:.0f}" if key == "final_params" else f"{got[key]:.3f}"


COLUMNS = ("final_score", "final_accuracy", "final_params")


def numbers(data: dict) -> dict[str, float]:
    stats = data.get("episode_statistics") or {}
    out = {"return": data["return_mean"]}
    for key in COLUMNS:
        if key in stats and stats[key] is not None:
            out[key] = stats[key]
    return out


def table(root: Path, seeds: tuple[int, ...]) -> str:
    rows = [
        "| policy | return | final score | final accuracy | final params |",
        "|---|---|---|---|---|",
    ]
    per_seed = {}
    for seed in seeds:
        data = evaluation(root / f"seed_{seed}")
        if data is not None:
            per_seed[seed] = numbers(data)
    keys = ("return", *COLUMNS)
    for seed, got in per_seed.items():
        cells = [cell(got, k) for k in keys]
        rows.append(f"| PPO, training seed {seed} | {' | '.join(cells)} |")
    if per_seed:
        cells = []
        for k in keys:
            values = [got[k] for got in per_seed.values() if k in got]
            digits = 0 if k == "final_params" else 3
            cells.append(mean_spread(values, digits) if values else "-")
        rows.append(f"| PPO, mean ± std over {len(per_seed)} seeds | {' | '.join(cells)} |")
    for name in BASELINES:
        data = evaluation(root / name)
        if data is None:
            continue
        got = numbers(data)
        cells = [cell(got, k) for k in keys]
        rows.append(f"| `{name}` | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    seeds = tuple(args.seeds)
    if not args.table_only:
        run_all(args.root, seeds, args.train_only)
    print(table(args.root, seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
