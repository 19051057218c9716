"""scripts/device_check.sh, checked on a machine without a GPU.

Its flow (steps, time limits, the budget, per-step tails, the summary, the
three files it hands back and the exit status) runs against a stand-in python
that only echoes what it was asked to run, on the CPU's flow and on the GPU's;
its cuda-tests step runs for real (the collection a bare GPU machine makes);
one slow test runs every real command on the CPU at toy sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.sh"

# Runs the summary (python code on stdin) itself and answers the machine probe
# (-c) with $GPUS_SAID GPUs (default 0) and a dynamo that traces backward();
# every other command is echoed, a training run writes two batches of CartPole
# telemetry, the benchmark a row per --modes name (the time
# to target one per mode) and `--cuda-graphs on` is refused as on a CPU.
STAND_IN = """#!/usr/bin/env bash
case "$1" in
  -) exec {python} "$@";;
  -c) echo "python 3.x torch stand-in cuda None gpus ${{GPUS_SAID:-0}}"; echo 1; exit 0;;
esac
if [[ "$*" == *"--cuda-graphs on"* && $ESPER_FORCE_DIST == 1 ]]; then  # as a rank says it
  echo "esper: error: --cuda-graphs: on runs without a process group only; use auto or off" >&2
  echo "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:" >&2
  exit 1
elif [[ "$*" == *"--cuda-graphs on"* ]]; then  # refused in one line, as esper does
  echo "esper: error: --cuda-graphs: on needs a CUDA device; use auto or off" >&2
  exit 2
fi
echo "stand-in: $*"
if [[ "$*" == *"-m cuda tests"* && -n "${{PYTEST_SAYS:-}}" ]]; then
  printf '%b\n' "$PYTEST_SAYS"; exit 1
fi
[[ "$*" == *torch.distributed.run* ]] && sleep "${{HANG:-0}}"
args=("$@")
modes=()
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in
    --modes) for ((j = i + 1; j < ${{#args[@]}}; j++)); do
        [[ ${{args[j]}} == --* ]] && break
        modes+=("${{args[j]}}")
      done ;;
  esac
done
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in
    --run-dir) mkdir -p "${{args[i + 1]}}"
      printf '%s\\n' {batch1} {batch2} >"${{args[i + 1]}}/telemetry.jsonl" ;;
    --json) rows=()
      for mode in "${{modes[@]}}"; do
        if [[ "$*" == *--time-to-target* ]]; then rows+=("{solved}")
        else rows+=("{measured}"); fi
        rows[-1]=${{rows[-1]//MODE/$mode}}
      done
      (IFS=,; echo "[${{rows[*]}}]") >"${{args[i + 1]}}" ;;
  esac
done
"""
MEASURED = {
    "impl": "esper",
    "mode": "MODE",
    "n_envs": 64,
    "sps": 1234.5,
    "batch_seconds": 0.5,
    "warmup_batches": 1,
    "warmup_seconds": 2.0,
    "rollout_sps": 5000.0,
    "update_sps": 2000.0,
}
SOLVED = {
    "impl": "time_to_target",
    "mode": "MODE",
    "target": 475.0,
    "batch": 2,
    "env_steps": 16384,
    "seconds": 3.25,
    "batches": 2,
    "last_mean": 480.0,
    "median_sps": 5000.0,
    "median_batch_seconds": 0.4,
    "process_seconds": 4.5,
}


def batch_line(batch: int, mean: float) -> str:
    event = {"event_type": "BATCH_COMPLETED", "batch": batch}
    event["data"] = {"episode_return_mean": mean, "sps": 5000.0}
    return "'" + json.dumps(event) + "'"


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    stand_in = tmp_path / "python"
    stand_in.write_text(
        STAND_IN.format(
            python=sys.executable,
            batch1=batch_line(1, 400.0),
            batch2=batch_line(2, 480.0),
            measured=json.dumps(MEASURED).replace('"', '\\"'),
            solved=json.dumps(SOLVED).replace('"', '\\"'),
        )
    )
    stand_in.chmod(0o755)
    env = {"DEVICE": "cpu", "PYTHON": str(stand_in), "WHEELS": str(tmp_path), **env}
    args = [] if "OUT" in env else [str(tmp_path / "out")]
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def table_rows(out: Path, heading: str = "") -> list[list[str]]:
    """The cells of summary.md's first table after ``heading`` (the steps table
    first of all), header rows left out."""
    text = (out / "summary.md").read_text()
    lines = text.split(heading, 1)[1].splitlines() if heading else text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def summary_rows(out: Path) -> dict[str, list[str]]:
    return {cells[0]: cells[1:] for cells in table_rows(out)}


def log_text(out: Path, name: str) -> str:
    """A file of the logs' tarball (``logs/<step>.log``, ``device_check.log``)."""
    with tarfile.open(out / "logs.tar.gz") as tar:
        return tar.extractfile(f"./{name}").read().decode()


def test_every_step_runs_and_the_summary_comes_last(tmp_path: Path) -> None:
    done = run_script(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = summary_rows(tmp_path / "out")
    assert list(rows) == [
        "cuda-tests",
        "task-pendulum",
        "resume",
        "eval",
        "torchrun-1rank",
        "torchrun-forced",
        "graphed-refused",
        "forced-graphed-refused",
        "cartpole-2",
        "bench",
        "bench-compiled",
    ]
    assert all(status == "ok" for status, _, _ in rows.values()), rows
    assert rows["cartpole-2"][2] == "eager: 475 at batch 2 in 3.2 s"
    assert rows["bench"][2] == rows["bench-compiled"][2] == "1 rows"
    assert rows["torchrun-forced"][2] == "gloo (no NCCL on the CPU)"
    out = tmp_path / "out"
    assert table_rows(out, "## Default CartPole run") == [
        ["eager", "3.2", "2", "16,384", "480.0", "5,000", "0.400", "4.5"]
    ]
    throughput = table_rows(out, "## Throughput")
    assert throughput[0] == [
        "64",
        "eager",
        "1,234",
        "0.5000",
        "2.00 (1)",
        "5,000",
        "2,000",
        "1.00x",
    ]
    assert throughput[1][:2] == ["64", "compiled"] and throughput[1][-1] == "1.00x"
    assert len(throughput) == 2
    assert "`--cuda-graphs on` is refused" in (out / "summary.md").read_text()
    table = (out / "summary.md").read_text().strip()
    assert table in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "results.json", "summary.md"]
    results = json.loads((out / "results.json").read_text())
    assert [step["name"] for step in results["steps"]] == list(rows)
    assert results["bench"][0]["sps"] == 1234.5
    command = 'run(command="bash scripts/device_check.sh", timeout_s=400)'
    assert results["device_command"] == command
    assert done.stdout.strip().splitlines()[-1] == f"on a GPU machine: {command}"


def test_each_step_shows_only_its_own_output(tmp_path: Path) -> None:
    stdout = run_script(tmp_path).stdout
    eval_section = stdout.split("=== eval:")[1].split("===")[0]
    assert "stand-in: -m esper eval" in eval_section
    assert "esper ppo" not in eval_section.split("\n", 1)[1]  # nothing of the steps before
    assert "stand-in: -m esper ppo --task pendulum --episodes 2" in log_text(
        tmp_path / "out", "logs/resume.log"
    )


def test_a_hanging_step_is_stopped_and_the_budget_holds(tmp_path: Path) -> None:
    done = run_script(tmp_path, HANG="120", BUDGET_S="20")
    assert done.returncode == 1
    rows = summary_rows(tmp_path / "out")
    assert rows["torchrun-1rank"][0] == "timeout"
    later = ["torchrun-forced", "graphed-refused", "forced-graphed-refused", "cartpole-2"]
    later += ["bench", "bench-compiled"]
    assert [rows[name][0] for name in later] == ["skipped"] * len(later)
    assert "timed out after" in log_text(tmp_path / "out", "logs/torchrun-1rank.log")


# Every step of the CPU flow but the first, which the next test runs for real.
CPU_STEPS_BUT_THE_TESTS = (
    "task-pendulum", "resume", "eval", "torchrun-1rank", "torchrun-forced", "graphed-refused",
    "forced-graphed-refused", "cartpole-2", "bench", "bench-compiled",
)  # fmt: skip


@pytest.mark.slow
def test_the_real_commands_run_on_the_cpu_at_toy_sizes(tmp_path: Path) -> None:
    """Every command of the check but its pytest step, for real: about 2 minutes
    of CPU time (a dozen processes that each import torch, one compiling), so
    several on a loaded machine; marked slow. The steps' limits are the GPU's, scaled by 8 here so
    that a loaded CI machine (a torch import can take most of a 45 s step) fails
    this test only for a real fault, never for its speed."""
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
        env={
            **os.environ,
            "DEVICE": "cpu",
            "PYTHON": sys.executable,
            "WHEELS": str(tmp_path),
            "BUDGET_S": "850",
            "STEP_LIMIT_SCALE": os.environ.get("STEP_LIMIT_SCALE", "8"),
            "STEPS": " ".join(CPU_STEPS_BUT_THE_TESTS),
        },
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = summary_rows(tmp_path / "out")
    assert sorted(rows) == sorted(CPU_STEPS_BUT_THE_TESTS)  # what STEPS leaves out is not listed
    assert all(status == "ok" for status, _, _ in rows.values()), rows
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "results.json", "summary.md"]
    results = json.loads((out / "results.json").read_text())
    bench, compiled = results["bench"], results["bench_compiled"]
    assert [(row["n_envs"], row["mode"]) for row in bench] == [(64, "eager")]
    assert [(row["n_envs"], row["mode"]) for row in compiled] == [(64, "compiled")]
    assert all(row["sps"] > 0 and row["batch_seconds"] > 0 for row in bench + compiled)
    (solved,) = results["solve"]
    assert (solved["mode"], solved["batches"], solved["returncode"]) == ("eager", 2, 0)
    assert json.loads(log_text(out, "cartpole2-eager.jsonl").splitlines()[0])
    assert "exit 2" in log_text(out, "logs/graphed-refused.log")


@pytest.mark.slow
def test_the_cuda_tests_step_collects_for_real_as_on_a_bare_machine(tmp_path: Path) -> None:
    """The check's first step, for real, in its CPU mode: ``pytest -m cuda tests``
    under tests/bare_machine.py (only torch, numpy, pytest, typer and rich), as
    the GPU machine's python collects it. A module that cannot be imported there
    (gymnasium at a module's top) fails it here, not in a GPU's first minutes."""
    done = subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DEVICE": "cpu", "PYTHON": sys.executable, "STEPS": "cuda-tests"},
    )
    out = tmp_path / "out"
    assert done.returncode == 0, done.stdout[-3000:]
    assert summary_rows(out)["cuda-tests"][0] == "ok"
    log = log_text(out, "logs/cuda-tests.log")
    assert "error" not in log.split("short test summary info")[-1].lower()
    assert "(a bare machine)" in log  # the optional modules were really missing
    assert "skipped" in summary_rows(out)["cuda-tests"][2]  # collected, then skipped: no GPU


def test_the_gpu_flow_hands_back_three_files_to_out(tmp_path: Path) -> None:
    """The GPU's flow (stand-ins for python and nvidia-smi, two GPUs): every step
    in order, the 2-rank job, the graphed and compiled modes too, a forced group
    refusing --cuda-graphs on, and the results in $OUT, the folder a device
    machine hands back."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/usr/bin/env bash\necho 'NVIDIA H100 80GB HBM3'\n")
    smi.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    done = run_script(tmp_path, DEVICE="cuda", OUT=str(tmp_path / "lent"), PATH=path, GPUS_SAID="2")
    out = tmp_path / "lent"
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["logs.tar.gz", "results.json", "summary.md"]
    rows = summary_rows(out)
    assert list(rows)[:7] == [
        "cuda-tests",
        "task-cartpole",
        "task-acrobot",
        "task-mountaincar",
        "task-mountaincar-continuous",
        "task-pendulum",
        "resume",
    ]
    assert list(rows)[7:] == [
        "eval",
        "torchrun-2rank",  # the probe said 2 GPUs
        "torchrun-forced",
        "forced-graphed-refused",
        "cartpole-50",
        "bench",
        "bench-compiled",
    ]
    assert all(status == "ok" for status, _, _ in rows.values()), rows
    assert rows["bench"][2] == "2 rows" and rows["bench-compiled"][2] == "2 rows"
    # the stand-in measures 64 envs whatever it is asked: the sizes asked for are missing
    throughput = [row[:3] for row in table_rows(out, "## Throughput")]
    assert ["128", "eager", "not run (step ok)"] in throughput
    assert ["65,536", "compiled+graphed", "not run (step ok)"] in throughput
    tests = log_text(out, "logs/cuda-tests.log")
    assert "-m pytest -rfEs --tb=short" in tests and "-m cuda tests" in tests


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("Tesla V100-SXM2-16GB", "v100"),
        ("NVIDIA GeForce RTX 4090", "nvidia-geforce-rtx-4090"),
    ],
)
def test_the_default_folder_is_named_by_the_gpu_model(name: str, tag: str) -> None:
    function = subprocess.run(
        ["sed", "-n", "/^gpu_tag()/,/^}/p", str(SCRIPT)], capture_output=True, text=True
    ).stdout
    done = subprocess.run(
        ["bash", "-c", f'{function}\ngpu_tag "$1"', "tag", name], capture_output=True, text=True
    )
    assert done.stdout.strip() == tag


SLOW_TESTS = """
import time

def test_hangs():
    time.sleep(30)  # the line the traceback must show

def test_after_it():
    assert True
"""


def run_budgeted(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """pytest on two small tests with tests/budget.py's hooks and ``env``."""
    (tmp_path / "test_slow.py").write_text(SLOW_TESTS)
    tests_dir = str(SCRIPT.parents[1] / "tests")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "budget", "-rfEs", "-p", "no:cacheprovider", "."],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": tests_dir, **env},
    )


def test_a_test_past_its_timeout_fails_with_its_traceback_and_the_rest_run(
    tmp_path: Path,
) -> None:
    done = run_budgeted(tmp_path, ESPER_TEST_TIMEOUT_S="1")
    assert done.returncode == 1
    assert "1 failed, 1 passed" in done.stdout
    assert "TestTimeout: ran past ESPER_TEST_TIMEOUT_S=1 s" in done.stdout
    assert "time.sleep(30)  # the line the traceback must show" in done.stdout


def test_tests_past_the_deadline_are_skipped_so_pytest_ends_by_itself(tmp_path: Path) -> None:
    done = run_budgeted(tmp_path, ESPER_TEST_DEADLINE="1")  # long past
    assert done.returncode == 0
    assert "2 skipped" in done.stdout and "ESPER_TEST_DEADLINE" in done.stdout


def test_the_summary_names_failed_cuda_tests_and_those_the_budget_cut(tmp_path: Path) -> None:
    says = (
        "FAILED tests/training/test_cuda.py::test_a - AssertionError\\n"
        "SKIPPED [3] tests/budget.py:41: the session's time budget"
        " (ESPER_TEST_DEADLINE) is spent\\n"
        "====== 1 failed, 5 passed, 3 skipped in 120.50s ======"
    )
    done = run_script(tmp_path, PYTEST_SAYS=says, STEPS="cuda-tests")
    assert done.returncode == 1
    status, _, result = summary_rows(tmp_path / "out")["cuda-tests"]
    assert status == "failed (1)"
    assert result == (
        "1 failed, 5 passed, 3 skipped; 3 not started: the step's time ran out "
        "(rerun: STEPS=cuda-tests); failed: tests/training/test_cuda.py::test_a"
    )
