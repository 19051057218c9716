#!/usr/bin/env bash
# The device check: everything that needs a CUDA machine, in one go.
#
#   bash scripts/device_check.sh [OUT_DIR]
#
# On a GPU machine lent by the device tool, run exactly (its $OUT comes back):
#
#   run(command="bash scripts/device_check.sh", timeout_s=400)
#
# OUT_DIR is the given folder, else $OUT when set (the device machine's folder
# that comes back), else docs/bench/<gpu>-<date> (e.g. h100-2026-12-06). It
# receives three files, within the 8 a device machine hands back:
# - summary.md: the steps and the comparison tables (also printed last);
# - results.json: the same as data (machine, steps, benchmark rows);
# - logs.tar.gz: every step's log, the benchmark JSON and the CartPole telemetry.
#
# Runs, in this order:
# - the CUDA tests (pytest -m cuda tests), each failure's traceback kept (-rfE):
#   a test past TEST_TIMEOUT_S fails with its traceback, and tests that would
#   start after the step's deadline are skipped, so pytest ends by itself
#   (tests/budget.py; no pytest-timeout needed);
# - every built-in task for a few batches on cuda, with a resume and an eval;
# - a 2-rank nccl run when the machine has two GPUs (else one rank, still
#   through torchrun), and a 1-rank torchrun job with ESPER_FORCE_DIST=1, which
#   builds the nccl group anyway and runs its broadcast, all-reduces and
#   all-gathers (NCCL_DEBUG lines in its log say which ran); the same job with
#   --cuda-graphs on must be refused in one line;
# - the default 50-batch CartPole run (`esper ppo --episodes 50`) eager and
#   graphed (--cuda-graphs on): seconds from process start to the first batch
#   whose mean return is >= 475 (scripts/bench.py --time-to-target);
# - the benchmark, eager and graphed, at 128 (the default), 1,024, 16,384 and
#   65,536 CartPole envs: env-steps/s and seconds per steady batch;
# - the same compiled (--compile) and compiled+graphed, last: compilation is
#   the slowest step, so it is the one the budget cuts short. A torch whose
#   dynamo cannot trace backward() skips them (esper refuses --compile there).
#
# The machine needs no network, only its python3 with torch, pytest, typer,
# rich and numpy: test modules that need matplotlib, tensorboard or gymnasium
# skip themselves without them, and `esper ppo` on a built-in task imports none.
# Wheels in .whl/ are installed first when present (gymnasium is not on the
# device machines; with it, its comparison tests run); make them on a machine
# with a network:
#   pip download --only-binary=:all: --no-deps --python-version 3.12 -d .whl \
#     gymnasium cloudpickle farama-notifications
#
# Every step has its own time limit, and all of them together stay within
# BUDGET_S (default 330 s, so the check ends within 6 minutes): a step that
# would start with less than 15 s left is skipped, so one hang cannot eat a
# lease. STEPS="name ..." runs only the named steps (a rerun of what failed);
# STEP_LIMIT_SCALE=4 gives each step 4 times its limit (a loaded CPU machine).
# The exit status is 1 when any step failed.
#
# DEVICE=cpu runs the same flow on the CPU at toy sizes, faking nothing: the
# CUDA-only steps are not run, the cuda tests are collected (and skip) as on a
# bare GPU machine (tests/bare_machine.py: only torch, numpy, pytest, typer
# and rich importable), and the step graphed-refused checks that
# `--cuda-graphs on` fails with a one-line error. tests/test_device_check.py
# runs it so.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-330}
TEST_TIMEOUT_S=${TEST_TIMEOUT_S:-75}
DEVICE_COMMAND='run(command="bash scripts/device_check.sh", timeout_s=400)'

gpu_tag() {  # gpu_tag "NVIDIA H100 80GB HBM3" -> h100: the model, not the memory's kind
  local model
  model=$(grep -oE '\b[A-Z]{1,3}[0-9]{2,4}[A-Z]?\b' <<<"$1" | head -n 1)
  [[ -z $model ]] && model=$(tr -cs 'A-Za-z0-9' '-' <<<"$1" | sed 's/^-*//; s/-*$//')
  tr '[:upper:]' '[:lower:]' <<<"${model:-gpu}"
}

if [[ $DEVICE == cpu ]]; then  # toy sizes: the flow, not the figures
  TASKS=${TASKS:-pendulum}
  TASK_ARGS=(--envs 16 --max-epochs 8)
  RANK_ENVS=16
  CARTPOLE_BATCHES=2
  BENCH_ARGS=(--batches 2 --max-epochs 8)
  BENCH_ENVS=(64)  # a row is a process of its own: one proves the flow
  COMPILED_ENVS=(64)  # a compiled row costs ~30 s of compilation on 2 cores
  FAST_MODES=(eager)  # graphed: refused on the CPU (step graphed-refused)
  SLOW_MODES=(compiled)
  PYTEST=("$PY" tests/bare_machine.py)  # as the GPU machine's bare python collects
  TAG=cpu
else
  TASKS=${TASKS:-cartpole acrobot mountaincar mountaincar-continuous pendulum}
  TASK_ARGS=()
  RANK_ENVS=1024
  CARTPOLE_BATCHES=50
  BENCH_ARGS=(--batches 6)
  BENCH_ENVS=(128 1024 16384 65536)
  COMPILED_ENVS=("${BENCH_ENVS[@]}")
  FAST_MODES=(eager graphed)
  SLOW_MODES=(compiled compiled+graphed)
  PYTEST=("$PY" -m pytest)
  TAG=$(gpu_tag "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)")
fi
OUT_DIR=${1:-${OUT:-docs/bench/$TAG-$(date -u +%Y-%m-%d)}}
mkdir -p "$OUT_DIR" || exit 2
WORK=$(mktemp -d)  # the logs, until they are packed into OUT_DIR/logs.tar.gz
mkdir -p "$WORK/logs"
LOG="$WORK/device_check.log"
STEPS_TSV="$WORK/steps.tsv"
: >"$LOG"
: >"$STEPS_TSV"
echo "device check: $DEVICE, budget ${BUDGET_S}s, results in $OUT_DIR" | tee -a "$LOG"
echo "on a GPU machine: $DEVICE_COMMAND" | tee -a "$LOG"

WHEELS=${WHEELS:-.whl}
export PYTHONPATH="$PWD/src"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:$SITE"
fi
export PYTHONUNBUFFERED=1

refused() {  # refused COMMAND...: passes when COMMAND exits 2 with one line "esper: error: ..."
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  printf '%s\nexit %s\n' "$out" "$rc"
  [[ $rc == 2 && $out == "esper: error: "* && $out != *$'\n'* ]]
}
export -f refused

# refused_by_rank PATTERN COMMAND...: COMMAND (torchrun) fails, and a rank said
# PATTERN in one "esper: error:" line (torchrun adds its own report of the exit).
refused_by_rank() {
  local pattern=$1 out rc
  shift
  out=$("$@" 2>&1)
  rc=$?
  printf '%s\nexit %s\n' "$out" "$rc"
  ((rc != 0)) && grep -qE "^(\[rank0\]:)?esper: error: .*$pattern" <<<"$out"
}
export -f refused_by_rank

START=$SECONDS
wanted() { [[ -z ${STEPS:-} || " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record, show the tail
  local name=$1 limit=$2
  shift 2
  wanted "$name" || return 0
  local own="$WORK/logs/$name.log" left=$((BUDGET_S - (SECONDS - START)))
  echo "=== $name: $*" | tee -a "$LOG"
  if ((left < 15)); then
    echo "skipped: ${left}s of the ${BUDGET_S}s budget left" | tee -a "$LOG"
    printf '%s\tskipped\t0\n' "$name" >>"$STEPS_TSV"
    return
  fi
  limit=$((limit * ${STEP_LIMIT_SCALE:-1}))  # a slow or loaded machine: longer step limits
  ((limit > left)) && limit=$left
  local began=$SECONDS
  STEP_DEADLINE=$(($(date +%s) + limit)) timeout -k 15 "$limit" "$@" >"$own" 2>&1
  local rc=$?
  ((rc == 124 || rc == 137)) && echo "timed out after ${limit}s" >>"$own"
  cat "$own" >>"$LOG"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - began))" >>"$STEPS_TSV"
  tail -n 12 "$own"
}
skip_step() {  # skip_step NAME WHY: recorded as not run, with the reason
  wanted "$1" || return 0
  echo "=== $1: not run: $2" | tee -a "$LOG"
  printf '%s\tnot run\t0\n' "$1" >>"$STEPS_TSV"
  echo "$2" >"$WORK/logs/$1.log"
}

# One probe (each python that imports torch costs seconds): the machine's line,
# then whether this torch's dynamo traces backward() (0 when esper cannot say).
PROBE=$($PY -c "import sys, torch
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda',
      torch.version.cuda, 'gpus', torch.cuda.device_count(), flush=True)
try:
    from esper.training.fast.capture import traces_backward
    print(int(traces_backward()))
except Exception:
    print(0)" 2>&1)
{
  if [[ $DEVICE != cpu ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  fi
  if [[ $PROBE == python\ * ]]; then head -n 1 <<<"$PROBE"; else echo "$PROBE"; fi
} 2>&1 | tee -a "$LOG" "$WORK/machine.txt"
GPUS=$(head -n 1 <<<"$PROBE" | sed -nE 's/^python .* gpus ([0-9]+)$/\1/p')
GPUS=${GPUS:-0}
TRACES=$(sed -n 2p <<<"$PROBE")
[[ $TRACES == 1 ]] || TRACES=0
RUNS=$(mktemp -d)

# The tests' own budget: each test at most TEST_TIMEOUT_S, none started within
# 20 s of the step's end, so pytest prints every failure before `timeout` acts.
# One process, without the suite's -n auto: one GPU, and a bare machine has no xdist.
step cuda-tests 150 bash -c 'ESPER_TEST_DEADLINE=$((STEP_DEADLINE - 20)) "$@"' cuda-tests \
  env ESPER_TEST_TIMEOUT_S="$TEST_TIMEOUT_S" "${PYTEST[@]}" -rfEs --tb=short -p no:cacheprovider \
  -o "addopts=-ra --import-mode=importlib" \
  -o faulthandler_timeout=$((TEST_TIMEOUT_S + 10)) -m cuda tests
for task in $TASKS; do
  step "task-$task" 45 $PY -m esper ppo --task "$task" --episodes 3 --device "$DEVICE" \
    "${TASK_ARGS[@]}" --no-sanctum --run-dir "$RUNS/$task" --checkpoint-every 1
done
LAST_TASK=${TASKS##* }  # resumed for 2 more batches, then evaluated
step resume 45 $PY -m esper ppo --task "$LAST_TASK" --episodes 2 --start-episode 3 \
  --device "$DEVICE" "${TASK_ARGS[@]}" --no-sanctum --run-dir "$RUNS/$LAST_TASK"
step eval 45 $PY -m esper eval "$RUNS/$LAST_TASK" --episodes 8 --device "$DEVICE"
NPROC=$((GPUS >= 2 ? 2 : 1))
step "torchrun-${NPROC}rank" 60 $PY -m torch.distributed.run --standalone \
  --nproc-per-node "$NPROC" -m esper ppo --episodes 3 --envs "$RANK_ENVS" --device "$DEVICE" \
  --no-sanctum --run-dir "$RUNS/ranks"
# One rank that still builds the process group (nccl on cuda, gloo on the CPU) and
# runs every collective; a checkpoint per batch adds the object gathers.
step torchrun-forced 60 env ESPER_FORCE_DIST=1 NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,COLL \
  $PY -m torch.distributed.run --standalone --nproc-per-node 1 -m esper ppo --episodes 3 \
  --envs "$RANK_ENVS" --device "$DEVICE" --no-sanctum --run-dir "$RUNS/forced" --checkpoint-every 1
if [[ $DEVICE == cpu ]]; then
  step graphed-refused 30 bash -c 'refused "$@"' refused $PY -m esper ppo --cuda-graphs on \
    --episodes 1 --device cpu --no-sanctum --run-dir "$RUNS/refused"
fi
# A group of one would hold its collectives outside any graph: refused, not wrong.
step forced-graphed-refused 45 env ESPER_FORCE_DIST=1 bash -c 'refused_by_rank "$@"' \
  refused_by_rank "--cuda-graphs: on runs without a process group" \
  $PY -m torch.distributed.run --standalone --nproc-per-node 1 -m esper ppo --episodes 1 \
  --device "$DEVICE" --cuda-graphs on --no-sanctum --run-dir "$RUNS/forced-graphed"
# The default run, whole, per mode: seconds from process start to mean return >= 475.
step "cartpole-$CARTPOLE_BATCHES" 120 $PY scripts/bench.py --device "$DEVICE" --envs \
  --time-to-target --run-to-end --solve-batches "$CARTPOLE_BATCHES" --modes "${FAST_MODES[@]}" \
  --keep-telemetry "$WORK" --json "$WORK/solve.json"
step bench 150 $PY scripts/bench.py --device "$DEVICE" "${BENCH_ARGS[@]}" \
  --envs "${BENCH_ENVS[@]}" --modes "${FAST_MODES[@]}" --json "$WORK/bench.json"
if [[ $TRACES == 1 ]]; then
  step bench-compiled 300 $PY scripts/bench.py --device "$DEVICE" "${BENCH_ARGS[@]}" \
    --envs "${COMPILED_ENVS[@]}" --modes "${SLOW_MODES[@]}" --json "$WORK/bench-compiled.json"
else
  skip_step bench-compiled "this torch's dynamo cannot trace backward(): esper refuses --compile"
fi
rm -rf "$RUNS"

echo "=== summary (${OUT_DIR}, $((SECONDS - START))s)" | tee -a "$LOG"
$PY - "$WORK" "$OUT_DIR" "$CARTPOLE_BATCHES" "$DEVICE" "${BENCH_ENVS[*]}" "${FAST_MODES[*]}" \
  "${COMPILED_ENVS[*]}" "${SLOW_MODES[*]}" "$BUDGET_S" "$((SECONDS - START))" \
  "$DEVICE_COMMAND" <<'EOF' | tee -a "$LOG"
import json
import re
import sys
from pathlib import Path

out, dest, batches, device = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
fast_envs, fast_modes, slow_envs, slow_modes = (arg.split() for arg in sys.argv[5:9])
budget, elapsed, command = int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
STATUS = {
    "0": "ok", "skipped": "skipped", "not run": "not run", "124": "timeout", "137": "timeout"
}
status = {name: STATUS.get(rc, f"failed ({rc})") for name, rc, _ in rows}


def load(name):
    try:
        return json.loads((out / name).read_text())
    except (OSError, ValueError):
        return []


def num(value, spec):
    return "-" if value is None else format(value, spec)


notes = {}
sections = []

# Time to 475, the default CartPole run, per mode.
solve = [r for r in load("solve.json") if r.get("impl") == "time_to_target"]
table = [
    f"## Default CartPole run ({batches} batches): time to a batch mean return >= 475",
    "",
    "Seconds from process start (the wall clock before the process started) to the"
    " completion of the first batch averaging >= 475 (its telemetry timestamp).",
    "",
    "| mode | seconds to 475 | batch | env steps | last mean | median env-steps/s "
    "| median s/batch | process s |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
]
for r in solve:
    if "error" in r:
        table.append(f"| {r['mode']} | failed: {r['error']} | | | | | | |")
        continue
    table.append(
        f"| {r['mode']} | {num(r.get('seconds'), '.1f')} | {num(r.get('batch'), 'd')} "
        f"| {num(r.get('env_steps'), ',d')} | {num(r.get('last_mean'), '.1f')} "
        f"| {num(r.get('median_sps'), ',.0f')} | {num(r.get('median_batch_seconds'), '.3f')} "
        f"| {num(r.get('process_seconds'), '.1f')} |"
    )
for mode in fast_modes:
    if not any(r.get("mode") == mode for r in solve):
        step = f"cartpole-{batches}"
        table.append(f"| {mode} | not run (step {status.get(step, 'missing')}) | | | | | | |")
sections.append("\n".join(table))
notes[f"cartpole-{batches}"] = "; ".join(
    f"{r['mode']}: failed"
    if "error" in r
    else f"{r['mode']}: 475 at batch {r['batch']} in {r['seconds']:.1f} s"
    if r.get("seconds") is not None
    else f"{r['mode']}: 475 not reached, last mean {num(r.get('last_mean'), '.1f')}"
    for r in solve
)

# Throughput per size and mode.
ORDER = ["eager", "graphed", "compiled", "compiled+graphed"]
measured = {}
for file, step in (("bench.json", "bench"), ("bench-compiled.json", "bench-compiled")):
    found = [r for r in load(file) if r.get("impl") != "time_to_target"]
    for r in found:
        measured[(r["n_envs"], r["mode"])] = r
    failed = sum("error" in r for r in found)
    notes[step] = f"{len(found)} rows" + (f", {failed} failed" if failed else "")
expected = {(int(n), m) for n in fast_envs for m in fast_modes}
expected |= {(int(n), m) for n in slow_envs for m in slow_modes}
table = [
    "## Throughput (CartPole, default config but --envs)",
    "",
    "Steady batches after the warm-up (the first batch; with CUDA graphs also the"
    " second, the capture; compilation is in the first).",
    "",
    "| envs | mode | env-steps/s | s/batch | warm-up s (batches) | rollout env-steps/s "
    "| update samples/s | x eager |",
    "|---:|---|---:|---:|---:|---:|---:|---:|",
]
for n_envs, mode in sorted(set(measured) | expected, key=lambda k: (k[0], ORDER.index(k[1]))):
    r = measured.get((n_envs, mode))
    if r is None:
        step = "bench" if mode in fast_modes else "bench-compiled"
        table.append(f"| {n_envs:,} | {mode} | not run (step {status.get(step, 'missing')}) "
                     "| | | | | |")
        continue
    if "error" in r:
        table.append(f"| {n_envs:,} | {mode} | failed: {r['error']} | | | | | |")
        continue
    eager = measured.get((n_envs, "eager"), {})
    ratio = f"{r['sps'] / eager['sps']:.2f}x" if "sps" in eager else "-"
    table.append(
        f"| {n_envs:,} | {mode} | {r['sps']:,.0f} | {num(r.get('batch_seconds'), '.4f')} "
        f"| {num(r.get('warmup_seconds'), '.2f')} ({r.get('warmup_batches', '-')}) "
        f"| {num(r.get('rollout_sps'), ',.0f')} | {num(r.get('update_sps'), ',.0f')} | {ratio} |"
    )
if device == "cpu":
    table += ["", "On the CPU the graphed modes are not run: `--cuda-graphs on` is refused"
              " there with a one-line error (step graphed-refused checks it)."]
sections.append("\n".join(table))

# The forced one-rank group: which collectives its NCCL log shows.
forced_log = out / "logs" / "torchrun-forced.log"
if forced_log.exists():
    text = forced_log.read_text(errors="replace")
    ops = {}
    for op in re.findall(r"NCCL INFO (\w+): opCount", text):
        ops[op] = ops.get(op, 0) + 1
    if "Init COMPLETE" in text or ops:
        seen = ", ".join(f"{count} {op}" for op, count in sorted(ops.items()))
        notes["torchrun-forced"] = "nccl init seen" + (f"; {seen}" if seen else "")
    elif device == "cpu":
        notes["torchrun-forced"] = "gloo (no NCCL on the CPU)"

# The cuda tests: pytest's last line, and the failed tests by name (-rfE).
tests_log = out / "logs" / "cuda-tests.log"
if tests_log.exists():
    text = tests_log.read_text(errors="replace")
    counts = re.findall(r"^=+ (.*?) in [0-9.]+s", text, re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    cut = sum(int(n) for n in re.findall(r"^SKIPPED \[(\d+)\].*ESPER_TEST_DEADLINE", text, re.M))
    notes["cuda-tests"] = "; ".join(
        [
            *counts[-1:],
            *([f"{cut} not started: the step's time ran out (rerun: STEPS=cuda-tests)"] if cut else []),
            *(["failed: " + ", ".join(failed[:8])] if failed else []),
        ]
    )

steps = ["| step | status | seconds | result |", "|---|---|---:|---|"]
for name, rc, seconds in rows:
    steps.append(f"| {name} | {status[name]} | {seconds} | {notes.get(name, '')} |")
machine = (out / "machine.txt").read_text(errors="replace").strip().splitlines()
heading = [
    f"Device check on {device}: {machine[-2] if len(machine) > 1 else ''} "
    f"{machine[-1] if machine else ''}".rstrip(),
    "",
    f"{elapsed} s of a {budget} s budget. On a GPU machine: `{command}`.",
    "Every log: logs.tar.gz (logs/<step>.log, device_check.log).",
]
summary = "\n\n".join(["\n".join(heading), "\n".join(steps), *sections]) + "\n"
(dest / "summary.md").write_text(summary)
results = {
    "device": device,
    "machine": machine,
    "budget_s": budget,
    "seconds": elapsed,
    "device_command": command,
    "steps": [
        {"name": name, "status": status[name], "rc": rc, "seconds": int(seconds),
         "result": notes.get(name, "")}
        for name, rc, seconds in rows
    ],
    "solve": load("solve.json"),
    "bench": load("bench.json"),
    "bench_compiled": load("bench-compiled.json"),
}
(dest / "results.json").write_text(json.dumps(results, indent=1) + "\n")
print(summary, end="")
EOF
FAILED=0
cut -f2 "$STEPS_TSV" | grep -qvE '^(0|not run)$' && FAILED=1
# Every log in one file (a device machine hands back at most 8, 16 MiB each):
# a log over 2 MiB keeps its last 2 MiB.
find "$WORK" -type f -size +2M -exec sh -c 'tail -c 2M "$1" >"$1.tail" && mv "$1.tail" "$1"' \
  _ {} \;
tar -czf "$OUT_DIR/logs.tar.gz" -C "$WORK" . && rm -rf "$WORK"
echo "results: $OUT_DIR/summary.md, $OUT_DIR/results.json, $OUT_DIR/logs.tar.gz"
echo "on a GPU machine: $DEVICE_COMMAND"
exit "$FAILED"
