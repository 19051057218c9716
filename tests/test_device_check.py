"""scripts/device_check.sh, checked on a machine without a GPU.

Its flow (steps, time limits, the budget, per-step tails, the summary and the
exit status) runs against a stand-in python that only echoes what it was asked
to run; one slow test runs the real commands on the CPU at toy sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "device_check.sh"

# Runs the summary (python code on stdin) itself and answers the machine probes
# (-c) with 0 GPUs; every other command is echoed, a training run writes two
# batches of CartPole telemetry and the benchmark its JSON.
STAND_IN = """#!/usr/bin/env bash
case "$1" in -) exec {python} "$@";; -c) echo 0; exit 0;; esac
echo "stand-in: $*"
[[ "$*" == *torch.distributed.run* ]] && sleep "${{HANG:-0}}"
args=("$@")
for ((i = 0; i < ${{#args[@]}}; i++)); do
  case "${{args[i]}}" in
    --run-dir) mkdir -p "${{args[i + 1]}}"
      printf '%s\\n' {batch1} {batch2} >"${{args[i + 1]}}/telemetry.jsonl" ;;
    --json) echo '[{{"n_envs": 64, "sps": 1234.5}}]' >"${{args[i + 1]}}" ;;
  esac
done
"""


def batch_line(batch: int, mean: float) -> str:
    event = {"event_type": "BATCH_COMPLETED", "batch": batch}
    event["data"] = {"episode_return_mean": mean, "sps": 5000.0}
    return "'" + json.dumps(event) + "'"


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    stand_in = tmp_path / "python"
    stand_in.write_text(
        STAND_IN.format(
            python=sys.executable, batch1=batch_line(1, 400.0), batch2=batch_line(2, 480.0)
        )
    )
    stand_in.chmod(0o755)
    env = {"DEVICE": "cpu", "PYTHON": str(stand_in), "WHEELS": str(tmp_path), **env}
    return subprocess.run(
        ["bash", str(SCRIPT), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def summary_rows(out: Path) -> dict[str, list[str]]:
    lines = (out / "summary.md").read_text().splitlines()[2:]
    return {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }


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
        "cartpole-2",
        "bench",
    ]
    assert all(status == "ok" for status, _, _ in rows.values())
    assert rows["cartpole-2"][2].startswith("475 at batch 2; last mean 480.0")
    assert rows["bench"][2] == "64 envs 1,234 sps"
    table = (tmp_path / "out" / "summary.md").read_text().strip()
    assert done.stdout.strip().endswith(table)
    assert (tmp_path / "out" / "cartpole2.jsonl").exists()


def test_each_step_shows_only_its_own_output(tmp_path: Path) -> None:
    stdout = run_script(tmp_path).stdout
    eval_section = stdout.split("=== eval:")[1].split("===")[0]
    assert "stand-in: -m esper eval" in eval_section
    assert "esper ppo" not in eval_section.split("\n", 1)[1]  # nothing of the steps before
    assert (
        "stand-in: -m esper ppo --task pendulum --episodes 2"
        in (tmp_path / "out" / "logs" / "resume.log").read_text()
    )


def test_a_hanging_step_is_stopped_and_the_budget_holds(tmp_path: Path) -> None:
    done = run_script(tmp_path, HANG="120", BUDGET_S="20")
    assert done.returncode == 1
    rows = summary_rows(tmp_path / "out")
    assert rows["torchrun-1rank"][0] == "timeout"
    assert rows["cartpole-2"][0] == rows["bench"][0] == "skipped"
    assert "timed out after" in (tmp_path / "out" / "logs" / "torchrun-1rank.log").read_text()


@pytest.mark.slow
def test_the_real_commands_run_on_the_cpu_at_toy_sizes(tmp_path: Path) -> None:
    """Every command of the check, for real: about 70 s of CPU time (7 processes
    that each import torch), so minutes on a loaded machine; marked slow."""
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
        },
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = summary_rows(tmp_path / "out")
    assert all(status == "ok" for status, _, _ in rows.values()), rows
    bench = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert [row["n_envs"] for row in bench] == [64, 128]
