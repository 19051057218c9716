#!/usr/bin/env bash
# The device check: everything that needs a CUDA machine, in one go.
#
#   bash scripts/device_check.sh [OUT_DIR]     (default docs/bench/device-<date>)
#
# Runs the CUDA tests, every built-in task for a few batches on cuda (with a
# resume and an eval), a 2-rank nccl run when the machine has two GPUs (else one
# rank through torchrun), the benchmark at 1,024, 16,384 and 65,536 envs, and a
# 50-batch CartPole run. Uses the machine's python3 (no network there); wheels
# in .whl/ (gymnasium) are installed first when present. Each step has its own
# time limit, so one hang cannot eat the lease; the summary is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-docs/bench/device-$(date -u +%Y-%m-%d)}
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/device_check.log"
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/esper-site .whl/*.whl || exit 1
  export PYTHONPATH="$PWD/src:/tmp/esper-site"
else
  export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1
SUMMARY=()
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "=== $name: $*" | tee -a "$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  SUMMARY+=("$(printf '%-28s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
  tail -n 15 "$LOG"
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
} 2>&1 | tee -a "$LOG"
GPUS=$($PY -c "import torch; print(torch.cuda.device_count())")

step cuda-tests 240 $PY -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests
RUNS=$(mktemp -d)
for task in cartpole acrobot mountaincar mountaincar-continuous pendulum; do
  step "task-$task" 120 $PY -m esper ppo --task "$task" --episodes 3 --device cuda \
    --no-sanctum --run-dir "$RUNS/$task" --checkpoint-every 1
done
step resume 120 $PY -m esper ppo --task pendulum --episodes 2 --start-episode 3 --device cuda \
  --no-sanctum --run-dir "$RUNS/pendulum"
step eval 120 $PY -m esper eval "$RUNS/pendulum" --episodes 8 --device cuda
NPROC=$(( GPUS >= 2 ? 2 : 1 ))
step "torchrun-${NPROC}rank" 180 $PY -m torch.distributed.run --standalone --nproc-per-node "$NPROC" \
  -m esper ppo --episodes 3 --envs 1024 --device cuda --no-sanctum --run-dir "$RUNS/ranks"
step cartpole-50 240 $PY -m esper ppo --episodes 50 --device cuda --no-sanctum \
  --run-dir "$RUNS/cartpole50"
cp "$RUNS/cartpole50/telemetry.jsonl" "$OUT_DIR/cartpole50.jsonl" 2>/dev/null
step bench 300 $PY scripts/bench.py --device cuda --envs 1024 16384 65536 --batches 6 \
  --json "$OUT_DIR/bench.json"
echo "=== summary" | tee -a "$LOG"
printf '%s\n' "${SUMMARY[@]}" | tee -a "$LOG"
