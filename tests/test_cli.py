"""Every flag parses; every bad input is one line naming the flag, exit != 0."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from esper import api
from esper.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_help_explains_the_words() -> None:
    result = run("ppo", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for flag in (
        "--episodes",
        "--start-episode",
        "--task",
        "--envs",
        "--max-epochs",
        "--ppo-epochs",
        "--device",
        "--seed",
        "--config",
        "--run-dir",
        "--checkpoint-every",
        "--overwrite",
        "--sanctum",
        "--no-sanctum",
    ):
        assert flag in text
    assert "rollout horizon" in text
    assert "batch_K.pt" in text
    assert "max_batches" in " ".join(run("--help").output.split())


def test_every_flag_parses_into_the_config(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_train(config_file, overrides, sanctum, tensorboard=False):
        seen["config"] = api.make_config(config_file, overrides)
        seen["sanctum"] = sanctum
        seen["tensorboard"] = tensorboard
        return SimpleNamespace(status="completed", telemetry_failures=[])

    monkeypatch.setattr(api, "train_from_cli", fake_train)
    path = tmp_path / "c.toml"
    path.write_text("gamma = 0.98\n")
    result = run(
        "ppo",
        "--episodes", "7",
        "--task", "cartpole",
        "--envs", "16",
        "--max-epochs", "8",
        "--ppo-epochs", "3",
        "--device", "cpu",
        "--seed", "9",
        "--config", str(path),
        "--run-dir", str(tmp_path / "run"),
        "--checkpoint-every", "2",
        "--overwrite",
        "--no-sanctum",
        "--tensorboard",
        "--compile",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.n_batches, config.n_envs, config.horizon) == (7, 16, 8)
    assert (config.update_epochs, config.device, config.seed) == (3, "cpu", 9)
    assert (config.gamma, config.checkpoint_every, config.overwrite) == (0.98, 2, True)
    assert config.run_dir == str(tmp_path / "run")
    assert config.compile is True
    assert seen["sanctum"] is False
    assert seen["tensorboard"] is True


BAD_INPUTS = [
    (["--episodes", "0"], "--episodes"),
    (["--episodes", "many"], "--episodes"),
    (["--start-episode", "-1"], "--start-episode"),
    (["--task", "no-such-task"], "--task"),
    (["--envs", "0"], "--envs"),
    (["--max-epochs", "0"], "--max-epochs"),
    (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--nonsense"], "--nonsense"),
]


@pytest.mark.parametrize(("args", "flag"), BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_flag(args: list[str], flag: str) -> None:
    result = run("ppo", *args)
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    assert flag in lines[0]
    assert "Traceback" not in result.output


def test_unknown_config_key_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("entropy = 0.1\n")
    result = run("ppo", "--config", str(path), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--config" in line and "'entropy'" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_one_line() -> None:
    result = run("ppo", "--device", "cuda")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--device" in line and "CUDA is not available" in line


def test_missing_checkpoint_lists_what_exists(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    result = run("ppo", "--run-dir", str(tmp_path), "--start-episode", "5")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--start-episode" in line and "no checkpoint for batch 5" in line


def test_fresh_run_into_a_used_run_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "batch_000003.pt").write_bytes(b"x")
    result = run("ppo", "--run-dir", str(tmp_path), "--device", "cpu")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--run-dir" in line and "already holds a run" in line and "--overwrite" in line
    assert "--start-episode 3" in line


def test_damaged_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "batch_000003.pt").write_bytes(b"not a checkpoint")
    result = run("ppo", "--run-dir", str(tmp_path), "--start-episode", "3", "--device", "cpu")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "batch_000003.pt" in line and "damaged" in line
