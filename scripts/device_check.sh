#!/usr/bin/env bash
# The device check: everything that needs a CUDA machine, in one go.
#
#   bash scripts/device_check.sh [OUT_DIR]     (default docs/bench/<gpu>-<date>)
#
# Runs the CUDA tests (pytest -m cuda), every built-in task for a few batches on
# cuda with a resume and an eval, a 2-rank nccl run when the machine has two
# GPUs (else one rank, still through torchrun), the benchmark at 1,024, 16,384
# and 65,536 envs, and a 50-batch CartPole run. Each step's output goes to
# OUT_DIR/logs/<step>.log (all of it to OUT_DIR/device_check.log) and its last
# lines are printed after it; OUT_DIR/summary.md, printed last, is the table.
#
# The machine needs no network, only its python3 with torch, pytest, typer,
# rich and numpy. Wheels in .whl/ are installed first when present (gymnasium
# is not on the device machines); make them on a machine with a network:
#   pip download --only-binary=:all: --no-deps --python-version 3.12 -d .whl \
#     gymnasium cloudpickle farama-notifications
#
# Every step has its own time limit, and all of them together stay within
# BUDGET_S (default 420 s): a step that would start with less left is skipped,
# so one hang cannot eat a lease. The exit status is 1 when any step failed.
#
# DEVICE=cpu runs the same flow on the CPU at toy sizes (a test does, to check
# this script's own logic on machines without a GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-420}
if [[ $DEVICE == cpu ]]; then  # toy sizes: the flow, not the figures
  TASKS=${TASKS:-pendulum}
  TASK_ARGS=(--envs 16 --max-epochs 8)
  RANK_ENVS=16
  CARTPOLE_BATCHES=2
  BENCH_ARGS=(--envs 64 128 --batches 2 --max-epochs 8)
  PYTEST_PATHS=(tests/training/test_cuda.py)
  TAG=cpu
else
  TASKS=${TASKS:-cartpole acrobot mountaincar mountaincar-continuous pendulum}
  TASK_ARGS=()
  RANK_ENVS=1024
  CARTPOLE_BATCHES=50
  BENCH_ARGS=(--envs 1024 16384 65536 --batches 6)
  PYTEST_PATHS=(tests)
  TAG=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 \
    | awk '{print tolower($NF)}')
fi
OUT_DIR=${1:-docs/bench/${TAG:-gpu}-$(date -u +%Y-%m-%d)}
mkdir -p "$OUT_DIR/logs"
LOG="$OUT_DIR/device_check.log"
STEPS="$OUT_DIR/steps.tsv"
: >"$LOG"
: >"$STEPS"

WHEELS=${WHEELS:-.whl}
export PYTHONPATH="$PWD/src"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE=$(mktemp -d)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
    "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:$SITE"
fi
export PYTHONUNBUFFERED=1

START=$SECONDS
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log, record, show the tail
  local name=$1 limit=$2
  shift 2
  local own="$OUT_DIR/logs/$name.log" left=$((BUDGET_S - (SECONDS - START)))
  echo "=== $name: $*" | tee -a "$LOG"
  if ((left < 15)); then
    echo "skipped: ${left}s of the ${BUDGET_S}s budget left" | tee -a "$LOG"
    printf '%s\tskipped\t0\n' "$name" >>"$STEPS"
    return
  fi
  ((limit > left)) && limit=$left
  local began=$SECONDS
  timeout -k 15 "$limit" "$@" >"$own" 2>&1
  local rc=$?
  ((rc == 124 || rc == 137)) && echo "timed out after ${limit}s" >>"$own"
  cat "$own" >>"$LOG"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - began))" >>"$STEPS"
  tail -n 12 "$own"
}

{
  if [[ $DEVICE != cpu ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  fi
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', \
torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
} 2>&1 | tee -a "$LOG" "$OUT_DIR/machine.txt"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
RUNS=$(mktemp -d)

step cuda-tests 240 $PY -m pytest -q -p no:cacheprovider -m cuda "${PYTEST_PATHS[@]}"
for task in $TASKS; do
  step "task-$task" 90 $PY -m esper ppo --task "$task" --episodes 3 --device "$DEVICE" \
    "${TASK_ARGS[@]}" --no-sanctum --run-dir "$RUNS/$task" --checkpoint-every 1
done
LAST_TASK=${TASKS##* }  # resumed for 2 more batches, then evaluated
step resume 90 $PY -m esper ppo --task "$LAST_TASK" --episodes 2 --start-episode 3 \
  --device "$DEVICE" "${TASK_ARGS[@]}" --no-sanctum --run-dir "$RUNS/$LAST_TASK"
step eval 60 $PY -m esper eval "$RUNS/$LAST_TASK" --episodes 8 --device "$DEVICE"
NPROC=$((GPUS >= 2 ? 2 : 1))
step "torchrun-${NPROC}rank" 120 $PY -m torch.distributed.run --standalone \
  --nproc-per-node "$NPROC" -m esper ppo --episodes 3 --envs "$RANK_ENVS" --device "$DEVICE" \
  --no-sanctum --run-dir "$RUNS/ranks"
step "cartpole-$CARTPOLE_BATCHES" 180 $PY -m esper ppo --episodes "$CARTPOLE_BATCHES" \
  --device "$DEVICE" --no-sanctum --run-dir "$RUNS/cartpole"
cp "$RUNS/cartpole/telemetry.jsonl" "$OUT_DIR/cartpole$CARTPOLE_BATCHES.jsonl" 2>/dev/null
step bench 180 $PY scripts/bench.py --device "$DEVICE" "${BENCH_ARGS[@]}" \
  --json "$OUT_DIR/bench.json"
rm -rf "$RUNS"

echo "=== summary (${OUT_DIR}, $((SECONDS - START))s)" | tee -a "$LOG"
$PY - "$OUT_DIR" "$CARTPOLE_BATCHES" <<'EOF' | tee -a "$LOG"
import json
import sys
from pathlib import Path

out, batches = Path(sys.argv[1]), sys.argv[2]
rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()]
notes = {}
cartpole = out / f"cartpole{batches}.jsonl"
if cartpole.exists():
    events = [json.loads(line) for line in cartpole.read_text().splitlines() if line.strip()]
    done = [e for e in events if e["event_type"] == "BATCH_COMPLETED"]
    means = [(e["batch"], e["data"]["episode_return_mean"]) for e in done]
    solved = next((b for b, m in means if m is not None and m >= 475), None)
    last = [m for _, m in means if m is not None][-1:] or [None]
    sps = sorted(e["data"]["sps"] for e in done)
    notes[f"cartpole-{batches}"] = (
        f"475 at batch {solved}; last mean {last[0]}; median {sps[len(sps) // 2]:,.0f} sps"
        if sps
        else "no batch completed"
    )
bench = out / "bench.json"
if bench.exists():
    notes["bench"] = "; ".join(
        f"{r['n_envs']:,} envs {r['sps']:,.0f} sps" for r in json.loads(bench.read_text())
    )
table = ["| step | status | seconds | result |", "|---|---|---:|---|"]
for name, rc, seconds in rows:
    status = {"0": "ok", "skipped": "skipped", "124": "timeout", "137": "timeout"}.get(
        rc, f"failed ({rc})"
    )
    table.append(f"| {name} | {status} | {seconds} | {notes.get(name, '')} |")
(out / "summary.md").write_text("\n".join(table) + "\n")
print("\n".join(table))
EOF
! cut -f2 "$STEPS" | grep -qv '^0$'
