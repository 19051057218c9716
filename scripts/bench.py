"""Throughput of esper's training loop, side by side with a CleanRL-style reference.

For each --envs size it measures, each in a fresh subprocess (so peak memory is
per measurement): the steady-state env-steps per second of the full loop
(rollout + update), of the rollout alone and of the update alone, and peak RSS;
the same for the reference loop (scripts/reference_ppo.py: gymnasium's
SyncVectorEnv with a per-step numpy <-> torch loop, same hyperparameters), and
prints esper's speed as a ratio to it. --telemetry also runs esper with every
sink off and with JSONL + console + the Sanctum dashboard on; --compile also
runs esper with its loss compiled (compilation is in the left-out first batch);
--time-to-target runs `esper ppo` with the default config and reports seconds
from process start to the first batch whose mean return reaches the target. The first batch
of every run is warm-up and is left out of the steady-state figures.

    uv run python scripts/bench.py --envs 8 64 512 4096 --reference --telemetry --time-to-target
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


def peak_rss_mb() -> float:
    """This worker's peak RSS, read the way BATCH_COMPLETED reads it."""
    import torch

    from esper.training.timing import memory_usage_mb

    return memory_usage_mb(torch.device("cpu"))["process_memory_mb"]


def steady(history: list[dict], batch_size: int) -> dict:
    rows = history[1:] or history
    seconds = sum(r["batch_seconds"] for r in rows)
    rollout = sum(r["rollout_seconds"] for r in rows)
    update = sum(r["update_seconds"] for r in rows)
    steps = len(rows) * batch_size
    return {"sps": steps / seconds, "rollout_sps": steps / rollout, "update_sps": steps / update}


def measure_esper(
    args: argparse.Namespace, n_envs: int, sinks: str, compile_loss: bool = False
) -> dict:
    from rich.console import Console

    from esper.config_layers import build_config
    from esper.device import resolve_device
    from esper.sanctum import SanctumAggregator, SanctumDashboard
    from esper.telemetry.console import ConsoleSink
    from esper.telemetry.hub import TelemetryHub
    from esper.telemetry.jsonl import JsonlSink
    from esper.training import run_vectorized_ppo

    with tempfile.TemporaryDirectory() as run_dir:
        config = build_config(
            overrides={
                "task": args.task,
                "n_envs": n_envs,
                "horizon": args.horizon,
                "n_batches": args.batches,
                "device": args.device,
                "run_dir": run_dir,
                "checkpoint_every": 10**6,
                "compile": compile_loss,
            }
        )
        hub = TelemetryHub()
        emit_seconds = _time_emits(hub)
        dashboard: contextlib.AbstractContextManager = contextlib.nullcontext()
        if sinks == "all":  # JSONL, console lines and a live dashboard drawing to a buffer
            hub.subscribe(JsonlSink(Path(run_dir) / "telemetry.jsonl"))
            hub.subscribe(ConsoleSink(io.StringIO()))
            aggregator = SanctumAggregator()
            hub.subscribe(aggregator)
            screen = Console(file=io.StringIO(), force_terminal=True, width=160, height=50)
            dashboard = SanctumDashboard(aggregator, console=screen)
        started = time.perf_counter()
        with dashboard:
            result = run_vectorized_ppo(config, hub)
        wall = time.perf_counter() - started
        hub.close()
    # Telemetry's own cost, measured directly rather than as a noisy A/B
    # difference: time inside emit (every sink runs synchronously there) plus
    # the CPU the dashboard's drawing thread used, as a share of the run.
    render = getattr(dashboard, "render_cpu_seconds", 0.0)
    return {
        "telemetry_cpu_pct": 100 * (emit_seconds[0] + render) / wall,
        "emit_seconds": emit_seconds[0],
        "render_cpu_seconds": render,
        "run_seconds": wall,
        "impl": "esper+comp" if compile_loss else "esper",
        "sinks": sinks,
        "device": str(resolve_device(args.device)),
        "n_envs": n_envs,
        **steady(result.history, config.batch_size),
        "peak_rss_mb": peak_rss_mb(),
    }


def _time_emits(hub) -> list[float]:
    """Wrap ``hub.emit`` to add up the seconds spent in it (a one-item list)."""
    spent = [0.0]
    emit = hub.emit

    def timed(event) -> None:
        started = time.perf_counter()
        emit(event)
        spent[0] += time.perf_counter() - started

    hub.emit = timed
    return spent


def measure_reference(args: argparse.Namespace, n_envs: int) -> dict:
    sys.path.insert(0, str(SCRIPTS))
    from reference_ppo import ReferenceSettings, run_reference

    from esper.config_layers import build_config

    config = build_config(overrides={"task": args.task, "n_envs": n_envs})
    settings = ReferenceSettings(
        n_envs=n_envs,
        horizon=args.horizon,
        n_minibatches=config.n_minibatches,
        update_epochs=config.update_epochs,
        learning_rate=config.learning_rate,
    )
    history = run_reference(settings, args.reference_batches)
    return {
        "impl": "reference",
        "sinks": "none",
        "device": "cpu",
        "n_envs": n_envs,
        **steady(history, n_envs * args.horizon),
        "peak_rss_mb": peak_rss_mb(),
    }


def in_subprocess(args: argparse.Namespace, *worker: str) -> dict:
    command = [sys.executable, __file__, "--task", args.task, "--device", args.device]
    command += ["--max-epochs", str(args.horizon), "--batches", str(args.batches)]
    command += ["--reference-batches", str(args.reference_batches), "--worker", *worker]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_to_target(args: argparse.Namespace) -> dict:
    """Seconds from starting `esper ppo` (default config) to the first solved batch."""
    with tempfile.TemporaryDirectory() as run_dir:
        command = [sys.executable, "-m", "esper", "ppo", "--task", args.task, "--no-sanctum"]
        command += ["--episodes", str(args.solve_batches), "--device", args.device]
        command += ["--run-dir", run_dir]
        started = time.perf_counter()
        # stderr dropped: stopping the run early makes esper print its resume hint
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        jsonl = Path(run_dir) / "telemetry.jsonl"
        found = None
        assert proc.stdout is not None
        for _line in proc.stdout:  # one line per batch; read the typed record
            for line in jsonl.read_text().splitlines() if jsonl.exists() else []:
                event = json.loads(line)
                data = event["data"]
                mean = data.get("episode_return_mean")
                solved = mean is not None and mean >= args.target
                if event["event_type"] == "BATCH_COMPLETED" and solved:
                    found = {"batch": event["batch"], "env_steps": data["env_steps"]}
                    break
            if found:
                found["seconds"] = time.perf_counter() - started
                proc.terminate()
                break
        proc.wait()
    return {"target": args.target, **(found or {"batch": None, "seconds": None})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="cartpole")
    parser.add_argument(
        "--envs", type=int, nargs="*", default=[8, 64, 512, 4096], help="none: skip throughput"
    )
    parser.add_argument("--max-epochs", dest="horizon", type=int, default=64)
    parser.add_argument("--batches", type=int, default=5, help="esper batches per size")
    parser.add_argument("--reference-batches", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reference", action="store_true", help="also run the reference")
    parser.add_argument(
        "--telemetry", action="store_true", help="sinks off vs JSONL + console + dashboard"
    )
    parser.add_argument("--repeats", type=int, default=3, help="telemetry on/off pairs")
    parser.add_argument(
        "--compile", action="store_true", help="also run esper with --compile (loss compiled)"
    )
    parser.add_argument("--time-to-target", action="store_true")
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--solve-batches", type=int, default=50)
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        impl, n_envs = args.worker[0], int(args.worker[1])
        if impl != "reference":  # esper's process as the `esper` command sets it up
            from esper.process import apply_process_settings

            apply_process_settings()
        if impl == "reference":
            row = measure_reference(args, n_envs)
        elif impl == "compiled":
            row = measure_esper(args, n_envs, sinks="none", compile_loss=True)
        else:
            row = measure_esper(args, n_envs, sinks=impl.removeprefix("esper-"))
        print(json.dumps(row))
        return

    rows: list[dict] = []
    print(f"task={args.task} device={args.device} horizon={args.horizon} cpus={os.cpu_count()}")
    print(
        f"{'envs':>6} {'impl':>10} {'full sps':>12} {'rollout sps':>12} "
        f"{'update sps':>12} {'peak MB':>8} {'x reference':>12}"
    )
    for n_envs in args.envs:
        esper_row = in_subprocess(args, "esper-none", str(n_envs))
        rows.append(esper_row)
        ratio = ""
        if args.reference:
            ref = in_subprocess(args, "reference", str(n_envs))
            rows.append(ref)
            esper_row["ratio_to_reference"] = esper_row["sps"] / ref["sps"]
            ratio = f"{esper_row['ratio_to_reference']:>11.1f}x"
            print(_format(ref, ""))
        print(_format(esper_row, ratio))
        if args.compile:
            compiled = in_subprocess(args, "compiled", str(n_envs))
            rows.append(compiled)
            compiled["ratio_to_eager"] = compiled["sps"] / esper_row["sps"]
            print(_format(compiled, "") + f"   {compiled['ratio_to_eager']:.2f}x eager")
        if args.telemetry:
            # Sinks off and on, alternated, medians: the machine's drift is larger than
            # the effect being measured.
            off, on = [esper_row], []
            for _ in range(args.repeats):
                on.append(in_subprocess(args, "esper-all", str(n_envs)))
                off.append(in_subprocess(args, "esper-none", str(n_envs)))
            on_row = dict(on[0], sps=statistics.median(r["sps"] for r in on))
            off_sps = statistics.median(r["sps"] for r in off)
            on_row["overhead_pct"] = 100 * (off_sps / on_row["sps"] - 1)
            on_row["telemetry_cpu_pct"] = statistics.median(r["telemetry_cpu_pct"] for r in on)
            rows.append(on_row)
            print(
                _format(on_row, "") + f"   sinks on: {on_row['overhead_pct']:+.1f}% time "
                f"(median of {len(on)} on vs {len(off)} off); telemetry's own CPU: "
                f"{on_row['telemetry_cpu_pct']:.2f}% of the run"
            )
    if args.time_to_target:
        solved = time_to_target(args)
        rows.append({"impl": "time_to_target", **solved})
        print(f"time to mean return >= {args.target:g}: {solved}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _format(row: dict, ratio: str) -> str:
    label = row["impl"] if row["impl"] != "esper" else f"esper/{row['sinks']}"
    return (
        f"{row['n_envs']:>6} {label:>10} {row['sps']:>12,.0f} {row['rollout_sps']:>12,.0f} "
        f"{row['update_sps']:>12,.0f} {row['peak_rss_mb']:>8,.0f} {ratio:>12}"
    )


if __name__ == "__main__":
    main()
