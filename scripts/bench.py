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
from process start to the first batch whose mean return reaches the target (when that
batch completed, by its telemetry timestamp). The first batch of every run is warm-up and
is left out of the steady-state figures (the first two with CUDA graphs: the second
batch is the capture).

--cuda-graphs sets esper's rows' setting (as `esper ppo --cuda-graphs`); --modes runs
several settings side by side, each a row per size with a `mode` column in the table
and the JSON, and the time to target once per mode:
eager (no compile, graphs off), graphed (graphs on), compiled (--compile, graphs off)
and compiled+graphed. A mode that fails (CUDA graphs on a CPU are refused) is a row
with its one-line error; the script then exits 1 after writing every row.

    uv run python scripts/bench.py --envs 8 64 512 4096 --reference --telemetry --time-to-target
    python3 scripts/bench.py --device cuda --envs 1024 65536 --modes eager graphed compiled
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent


# A measurement process that runs longer than this is a bug, not a measurement.
WORKER_DEADLINE_S = 1800
STOP_GRACE_S = 120  # a stopped run's time to checkpoint and exit before it is killed


def peak_rss_mb() -> float:
    """This worker's peak RSS, read the way BATCH_COMPLETED reads it."""
    import torch

    from esper.training.timing import memory_usage_mb

    return memory_usage_mb(torch.device("cpu"))["process_memory_mb"]


# The settings each --modes name stands for: (compile, cuda_graphs).
MODES = {
    "eager": (False, "off"),
    "graphed": (False, "on"),
    "compiled": (True, "off"),
    "compiled+graphed": (True, "on"),
}


def mode_name(compile_steps: bool, cuda_graphs: str) -> str:
    """The --modes name of these settings (``auto`` graphs stay eager for now)."""
    if cuda_graphs == "on":
        return "compiled+graphed" if compile_steps else "graphed"
    return "compiled" if compile_steps else "eager"


def steady(history: list[dict], batch_size: int, warmup: int = 1) -> dict:
    rows = history[warmup:] or history
    seconds = sum(r["batch_seconds"] for r in rows)
    rollout = sum(r["rollout_seconds"] for r in rows)
    update = sum(r["update_seconds"] for r in rows)
    steps = len(rows) * batch_size
    return {
        "sps": steps / seconds,
        "rollout_sps": steps / rollout,
        "update_sps": steps / update,
        "batch_seconds": seconds / len(rows),  # a steady batch, rollout + update
        "warmup_batches": len(history) - len(rows),
        "warmup_seconds": sum(r["batch_seconds"] for r in history[: len(history) - len(rows)]),
    }


def measure_esper(
    args: argparse.Namespace,
    n_envs: int,
    sinks: str,
    compile_loss: bool = False,
    cuda_graphs: str = "auto",
) -> dict:
    from rich.console import Console

    from esper.config.layers import build_config
    from esper.config.text import parse_assignments
    from esper.runtime.device import resolve_device
    from esper.sanctum import SanctumAggregator, SanctumDashboard
    from esper.telemetry.console import ConsoleSink
    from esper.telemetry.hub import TelemetryHub
    from esper.telemetry.jsonl import JsonlSink
    from esper.training import run_vectorized_ppo

    with tempfile.TemporaryDirectory() as run_dir:
        config = build_config(
            overrides={
                **parse_assignments(args.set),
                "task": args.task,
                "n_envs": n_envs,
                "horizon": args.horizon,
                "n_batches": args.batches,
                "device": args.device,
                "run_dir": run_dir,
                "checkpoint_every": 10**6,
                "compile": compile_loss,
                "cuda_graphs": cuda_graphs,
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
        "mode": mode_name(compile_loss, cuda_graphs),
        "compile": compile_loss,
        "cuda_graphs": cuda_graphs,
        "sinks": sinks,
        "settings": list(args.set),
        "device": str(resolve_device(args.device)),
        "n_envs": n_envs,
        # a graphed run's second batch is its capture: warm-up too
        **steady(result.history, config.batch_size, warmup=2 if cuda_graphs == "on" else 1),
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

    from esper.config.layers import build_config

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


def in_subprocess(args: argparse.Namespace, *worker: str, failure: dict | None = None) -> dict:
    """A worker's row. With ``failure`` (the row's identity), a worker that fails
    gives that row with its last line of error output instead of raising."""
    command = [sys.executable, __file__, "--task", args.task, "--device", args.device]
    command += ["--max-epochs", str(args.horizon), "--batches", str(args.batches)]
    command += ["--cuda-graphs", args.cuda_graphs or "auto"]
    command += ["--reference-batches", str(args.reference_batches), "--worker", *worker]
    command += [f"--set={pair}" for pair in args.set]
    out = subprocess.run(
        command, capture_output=True, text=True, check=failure is None, timeout=WORKER_DEADLINE_S
    )
    if out.returncode == 0:
        return json.loads(out.stdout.strip().splitlines()[-1])
    assert failure is not None
    last = (out.stderr.strip() or out.stdout.strip() or f"exit {out.returncode}").splitlines()
    return {**failure, "error": last[-1][:300]}


def time_to_target(args: argparse.Namespace, mode: str | None = None) -> dict:
    """Seconds from starting `esper ppo` (default config; ``mode``'s settings, else
    --cuda-graphs) to the completion of the first batch whose mean return reaches
    the target, by that batch's telemetry timestamp against the wall clock taken
    just before the process started. Stops the run there unless --run-to-end."""
    compile_steps, cuda_graphs = MODES[mode] if mode else (False, args.cuda_graphs)
    with contextlib.ExitStack() as stack:
        run_dir = stack.enter_context(tempfile.TemporaryDirectory())
        command = [sys.executable, "-m", "esper", "ppo", "--task", args.task, "--no-sanctum"]
        command += ["--episodes", str(args.solve_batches), "--device", args.device]
        command += ["--run-dir", run_dir]
        command += ["--compile"] * compile_steps
        command += ["--cuda-graphs", cuda_graphs] if cuda_graphs else []
        wall_start = time.time()
        started = time.perf_counter()
        # stderr to a file (read only for a failure's message: stopping the run
        # early makes esper print its resume hint there)
        errors = stack.enter_context(tempfile.TemporaryFile("w+"))
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        jsonl = Path(run_dir) / "telemetry.jsonl"
        found = None
        assert proc.stdout is not None
        for _line in proc.stdout:  # one line per batch; read the typed record
            found = _solved(jsonl, args.target)
            if found and not args.run_to_end:
                proc.terminate()
                break
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:  # a run that ignores its SIGTERM must not hang us
            proc.kill()
            proc.wait()
        errors.seek(0)
        stderr = errors.read()
        process_seconds = time.perf_counter() - started
        events = _events(jsonl)
        found = found or _solved(jsonl, args.target)
        row: dict = {"target": args.target, **(found or {"batch": None, "seconds": None})}
        if found:
            row["seconds"] = row.pop("completed_at") - wall_start
        if mode:
            row["mode"] = mode
        if args.run_to_end:
            row.update(_run_summary(events), process_seconds=process_seconds)
            row["returncode"] = proc.returncode
            if proc.returncode:
                row["error"] = (stderr.strip() or f"exit {proc.returncode}").splitlines()[-1]
            if args.keep_telemetry and jsonl.exists():
                name = f"{args.task}{args.solve_batches}-{mode or 'default'}.jsonl"
                Path(args.keep_telemetry).mkdir(parents=True, exist_ok=True)
                shutil.copy(jsonl, Path(args.keep_telemetry) / name)
    return row


def _events(jsonl: Path) -> list[dict]:
    text = jsonl.read_text() if jsonl.exists() else ""
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line still being written
            break
    return events


def _solved(jsonl: Path, target: float) -> dict | None:
    """The first BATCH_COMPLETED whose mean return reaches ``target``, and when it
    completed (its timestamp, seconds since the epoch)."""
    for event in _events(jsonl):
        data = event["data"]
        mean = data.get("episode_return_mean")
        if event["event_type"] == "BATCH_COMPLETED" and mean is not None and mean >= target:
            completed_at = datetime.fromisoformat(event["timestamp"]).timestamp()
            return {
                "batch": event["batch"],
                "env_steps": data["env_steps"],
                "completed_at": completed_at,
            }
    return None


def _run_summary(events: list[dict]) -> dict:
    """A whole run's batches: how many, the last mean return, median sps and batch seconds."""
    done = [e["data"] for e in events if e["event_type"] == "BATCH_COMPLETED"]
    means = [d["episode_return_mean"] for d in done if d["episode_return_mean"] is not None]
    return {
        "batches": len(done),
        "last_mean": means[-1] if means else None,
        "median_sps": statistics.median(d["sps"] for d in done) if done else None,
        "median_batch_seconds": (
            statistics.median(d["batch_seconds"] for d in done) if done else None
        ),
    }


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
        "--compile", action="store_true", help="also run esper with --compile (steps compiled)"
    )
    parser.add_argument(
        "--cuda-graphs",
        choices=["auto", "on", "off"],
        help="esper's rows' --cuda-graphs (default: the config's)",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        help="instead of esper's row (and --compile's): one row per mode and size, and "
        "one time to target per mode, with a mode column",
    )
    parser.add_argument("--time-to-target", action="store_true")
    parser.add_argument("--target", type=float, default=475.0)
    parser.add_argument("--solve-batches", type=int, default=50)
    parser.add_argument(
        "--run-to-end",
        action="store_true",
        help="time to target: run every --solve-batches batch, not stop at the target",
    )
    parser.add_argument(
        "--keep-telemetry", metavar="DIR", help="with --run-to-end: copy each run's telemetry here"
    )
    parser.add_argument("--json", help="also write every row to this file (after each row)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any PPOConfig key for esper's rows, as esper ppo --set (repeatable): "
        "recurrent=gru, encoder=mlp, ...",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        impl, n_envs = args.worker[0], int(args.worker[1])
        if impl != "reference":  # esper's process as the `esper` command sets it up
            from esper.runtime.process import apply_process_settings

            apply_process_settings()
        graphs = args.cuda_graphs or "auto"
        if impl == "reference":
            row = measure_reference(args, n_envs)
        elif impl == "compiled":
            row = measure_esper(args, n_envs, sinks="none", compile_loss=True, cuda_graphs=graphs)
        elif impl.startswith("mode:"):
            compile_steps, graphs = MODES[impl.removeprefix("mode:")]
            row = measure_esper(
                args, n_envs, "none", compile_loss=compile_steps, cuda_graphs=graphs
            )
        else:
            row = measure_esper(args, n_envs, sinks=impl.removeprefix("esper-"), cuda_graphs=graphs)
        print(json.dumps(row))
        return

    if args.modes:
        sys.exit(compare_modes(args))
    rows: list[dict] = []
    print(f"task={args.task} device={args.device} horizon={args.horizon} cpus={os.cpu_count()}")
    print(
        f"{'envs':>6} {'impl':>10} {'full sps':>12} {'rollout sps':>12} "
        f"{'update sps':>12} {'peak MB':>8} {'x reference':>12}"
    )
    for n_envs in args.envs:
        esper_row = in_subprocess(args, "esper-none", str(n_envs))
        rows.append(esper_row)
        save(args, rows)
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
            save(args, rows)
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
            save(args, rows)
            print(
                _format(on_row, "") + f"   sinks on: {on_row['overhead_pct']:+.1f}% time "
                f"(median of {len(on)} on vs {len(off)} off); telemetry's own CPU: "
                f"{on_row['telemetry_cpu_pct']:.2f}% of the run"
            )
    if args.time_to_target:
        solved = time_to_target(args)
        rows.append({"impl": "time_to_target", **solved})
        print(f"time to mean return >= {args.target:g}: {solved}")
    save(args, rows)


def compare_modes(args: argparse.Namespace) -> int:
    """Every --modes row at every size, and the time to target per mode, as one
    table with a mode column; 1 when any mode failed (its row says why)."""
    rows: list[dict] = []
    print(f"task={args.task} device={args.device} horizon={args.horizon} cpus={os.cpu_count()}")
    print(
        f"{'envs':>6} {'mode':>16} {'full sps':>12} {'batch s':>8} {'warm-up s':>9} "
        f"{'rollout sps':>12} {'update sps':>12} {'peak MB':>8} {'x eager':>8}"
    )
    for n_envs in args.envs:
        eager = None
        for mode in args.modes:
            identity = {"impl": "esper", "mode": mode, "n_envs": n_envs, "device": args.device}
            row = in_subprocess(args, f"mode:{mode}", str(n_envs), failure=identity)
            if mode == "eager" and "error" not in row:
                eager = row
            if eager is not None and "error" not in row:
                row["ratio_to_eager"] = row["sps"] / eager["sps"]
            rows.append(row)
            save(args, rows)
            print(_format_mode(row))
    if args.time_to_target:
        for mode in args.modes:
            solved = time_to_target(args, mode)
            rows.append({"impl": "time_to_target", **solved})
            save(args, rows)
            print(f"{mode}: time to mean return >= {args.target:g}: {solved}")
    return 1 if any("error" in row for row in rows) else 0


def save(args: argparse.Namespace, rows: list[dict]) -> None:
    """Every row so far to --json (after each row, so a run stopped by a time
    limit keeps the rows it finished)."""
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def _format_mode(row: dict) -> str:
    if "error" in row:
        return f"{row['n_envs']:>6} {row['mode']:>16} failed: {row['error']}"
    ratio = f"{row['ratio_to_eager']:.2f}x" if "ratio_to_eager" in row else ""
    return (
        f"{row['n_envs']:>6} {row['mode']:>16} {row['sps']:>12,.0f} {row['batch_seconds']:>8.3f} "
        f"{row['warmup_seconds']:>9.2f} {row['rollout_sps']:>12,.0f} {row['update_sps']:>12,.0f} "
        f"{row['peak_rss_mb']:>8,.0f} {ratio:>8}"
    )


def _format(row: dict, ratio: str) -> str:
    label = row["impl"] if row["impl"] != "esper" else f"esper/{row['sinks']}"
    return (
        f"{row['n_envs']:>6} {label:>10} {row['sps']:>12,.0f} {row['rollout_sps']:>12,.0f} "
        f"{row['update_sps']:>12,.0f} {row['peak_rss_mb']:>8,.0f} {ratio:>12}"
    )


if __name__ == "__main__":
    main()
