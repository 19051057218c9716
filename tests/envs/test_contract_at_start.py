"""A task that breaks the contract fails ``esper ppo`` before its first batch, in
one line naming the field, as ``esper check-env`` would; not inside torch."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app

TINY = ["--envs", "8", "--max-epochs", "8", "--device", "cpu", "--no-sanctum"]


@pytest.mark.parametrize(
    ("task", "named"),
    [
        ("broken_envs:ColumnReward", "reward has shape (4, 1), want (4,)"),
        ("broken_envs:FloatTerminated", "dynamics() terminated is torch.float32, want torch.bool"),
        ("broken_envs:WrongObsShape", "reset() obs has shape (4, 3), want (4, 4)"),
    ],
)
def test_a_broken_task_is_refused_before_training(task: str, named: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["ppo", "--task", task, "--episodes", "1", "--run-dir", str(run_dir), *TINY]
    )
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"esper: error: --task: {task} breaks the environment contract")
    assert named in lines[0]
    assert lines[0].endswith(f"`esper check-env {task}` checks every rule")
    assert not run_dir.exists()  # refused before the run wrote anything
