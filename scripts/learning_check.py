"""Train a task with its default config and report how fast it reached its target.

Each task runs with ``configs/<task>.toml`` (plus any ``--set KEY=VALUE``
overrides) until its score passes (exceeds) the task's target, or until its batch budget or
``--max-seconds`` runs out. The score is gymnasium's: the mean return of the
latest >= 100 finished episodes (whole batches), judged only once every env
has run for a full time limit, so that episodes cut by the limit count too
(the same rule as tests/training/test_learning_suite.py). Prints one
line every ``--every`` batches and a summary: batches, env steps, seconds (from
the first batch, so interpreter and torch start-up are excluded) and the best
score, with the batch where it was seen.

    uv run python scripts/learning_check.py --task mountaincar
    uv run python scripts/learning_check.py --task all --seed 2
    uv run python scripts/learning_check.py --task pendulum --set learning_rate=0.002

Exit status: 0 when every task checked passed its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from typing import Any

from esper.config.layers import build_config
from esper.envs.registry import env_class
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.interrupt import StopRequest
from esper.training.scoring import recent_mean

WINDOW_EPISODES = 100


@dataclass(frozen=True)
class Check:
    target: float  # mean episode return that counts as learned
    batches: int  # the run's --episodes (the learning rate decays over it)


# Targets: what counts as learned (gymnasium's "solved" threshold where it is
# reachable in minutes on a CPU).
CHECKS: dict[str, Check] = {
    "cartpole": Check(target=475.0, batches=50),
    "acrobot": Check(target=-100.0, batches=50),
    "pendulum": Check(target=-250.0, batches=60),
    # -200 is every episode timing out; one lucky episode already lifts a
    # batch above it, so ask for a policy that reaches the goal in ~150 steps.
    "mountaincar": Check(target=-150.0, batches=100),
    "mountaincar-continuous": Check(target=0.0, batches=50),
}


@dataclass
class Outcome:
    task: str
    target: float
    reached_at: tuple[int, int, float] | None = None  # (batch, env steps, seconds)
    best: float | None = None
    best_batch: int = 0
    batches: int = 0
    env_steps: int = 0
    seconds: float = 0.0


def parse_set(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each VALUE read as a TOML value (``true``, ``0.5``, ``[64, 64]``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE (got {pair!r})")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare string
    return out


def check_task(
    task: str,
    check: Check,
    *,
    seed: int,
    device: str,
    batches: int | None,
    max_seconds: float,
    every: int,
    keep_going: bool,
    extra: dict[str, Any],
) -> Outcome:
    outcome = Outcome(task=task, target=check.target)
    stop = StopRequest()
    started = [time.perf_counter()]
    batches: list[tuple[float, int]] = []
    time_limit = env_class(task).spec.max_episode_steps or 0
    horizon = [1]

    def watch(event: TelemetryEvent) -> None:
        if event.event_type is TelemetryEventType.TRAINING_STARTED:
            started[0] = time.perf_counter()
            return
        if event.event_type is not TelemetryEventType.BATCH_COMPLETED:
            return
        data = event.data
        seconds = time.perf_counter() - started[0]
        if data.episode_return_mean is not None:
            batches.append((data.episode_return_mean, data.episodes_finished))
        ret = recent_mean(batches, WINDOW_EPISODES)
        if event.batch * horizon[0] < time_limit:
            ret = None  # not judged yet: some envs have not reached the time limit
        outcome.batches, outcome.env_steps, outcome.seconds = event.batch, data.env_steps, seconds
        if ret is not None and (outcome.best is None or ret > outcome.best):
            outcome.best, outcome.best_batch = ret, event.batch
        reached = ret is not None and ret > check.target and outcome.reached_at is None
        if reached:
            outcome.reached_at = (event.batch, data.env_steps, seconds)
        if event.batch % every == 0 or reached:
            shown = "   n/a" if ret is None else f"{ret:8.1f}"
            print(
                f"  batch {event.batch:4d}  steps {data.env_steps:9d}  {seconds:7.1f}s  "
                f"score {shown}  entropy {data.entropy:6.3f}",
                flush=True,
            )
        if reached and not keep_going:
            stop.request("target reached")
        elif seconds > max_seconds:
            stop.request("time budget spent")

    with tempfile.TemporaryDirectory() as run_dir:
        overrides = {
            **extra,
            "task": task,
            "n_batches": batches or check.batches,
            "seed": seed,
            "device": device,
            "run_dir": run_dir,
            "checkpoint_every": 10**9,
        }
        config = build_config(overrides=overrides)
        horizon[0] = config.horizon
        print(
            f"{task}: target {check.target:g}, {config.n_batches} batches of "
            f"{config.n_envs} envs x {config.horizon} steps, seed {seed}, {device}",
            flush=True,
        )
        hub = TelemetryHub()
        hub.subscribe(watch)
        run_vectorized_ppo(config, hub, stop)
    return outcome


def summarize(outcome: Outcome) -> str:
    best = "none" if outcome.best is None else f"{outcome.best:.1f} (batch {outcome.best_batch})"
    best = f"best mean return of {WINDOW_EPISODES}+ episodes {best}"
    if outcome.reached_at is not None:
        batch, steps, seconds = outcome.reached_at
        head = f"PASSED {outcome.target:g} at batch {batch}, {steps} env steps, {seconds:.1f}s"
    else:
        head = (
            f"did NOT pass {outcome.target:g} in {outcome.batches} batches, "
            f"{outcome.env_steps} env steps, {outcome.seconds:.1f}s"
        )
    return f"{outcome.task}: {head}; {best}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="all", choices=["all", *CHECKS])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=None, help="batches (default: per task)")
    parser.add_argument("--target", type=float, default=None, help="override the task's target")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="per task")
    parser.add_argument("--every", type=int, default=5, help="print every N batches")
    parser.add_argument(
        "--keep-going", action="store_true", help="run all batches even after the target"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="PPOConfig override"
    )
    args = parser.parse_args(argv)
    extra = parse_set(args.set)
    tasks = list(CHECKS) if args.task == "all" else [args.task]
    outcomes = []
    for task in tasks:
        check = CHECKS[task]
        if args.target is not None:
            check = Check(target=args.target, batches=check.batches)
        outcomes.append(
            check_task(
                task,
                check,
                seed=args.seed,
                device=args.device,
                batches=args.episodes,
                max_seconds=args.max_seconds,
                every=args.every,
                keep_going=args.keep_going,
                extra=extra,
            )
        )
        print(summarize(outcomes[-1]), flush=True)
    if len(outcomes) > 1:
        print("\nsummary")
        for outcome in outcomes:
            print("  " + summarize(outcome))
    return 0 if all(o.reached_at is not None for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
