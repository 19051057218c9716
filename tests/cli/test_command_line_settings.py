"""esper ppo --set KEY=VALUE and --total-timesteps: any setting from the command line,
checked as a config file's keys are, in the documented precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.runtime.errors import ConfigError

TINY = ["--device", "cpu", "--no-sanctum", "--set", "n_minibatches=1"]


def started(run_dir: Path) -> dict:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return next(
        json.loads(line) for line in lines if json.loads(line)["event_type"] == "TRAINING_STARTED"
    )


def invoke(*args: str):
    return CliRunner().invoke(app, ["ppo", *TINY, *args])


def test_set_overrides_the_config_file_and_a_flag_overrides_set(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text("learning_rate = 0.01\nn_envs = 8\nhorizon = 8\ngamma = 0.9\n")
    run_dir = tmp_path / "run"
    result = invoke(
        "--config", str(config_file), "--run-dir", str(run_dir), "--episodes", "1",
        "--set", "learning_rate=0.005", "--set", "n_envs=6", "--envs", "4",
        "--set", "hidden_sizes=[16, 16]", "--set", "anneal_lr=false",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = started(run_dir)["data"]["config"]
    assert config["learning_rate"] == 0.005  # --set over the file
    assert config["n_envs"] == 4  # the flag over --set
    assert config["gamma"] == 0.9  # the file over the task's defaults
    assert config["hidden_sizes"] == [16, 16] and config["anneal_lr"] is False


def test_set_names_every_unknown_key_with_its_nearest(tmp_path: Path) -> None:
    result = invoke("--run-dir", str(tmp_path / "r"), "--set", "lr=1e-3", "--set", "gama=0.9")
    assert result.exit_code == 2
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line == (
        "esper: error: --set: unknown key 'lr'; did you mean learning_rate?; "
        "unknown key 'gama'; did you mean gamma?"
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("seed=abc", "--set: seed: expected an integer, got 'abc'"),
        ("learning_rate", "--set: expects KEY=VALUE (got 'learning_rate')"),
        ("n_envs=0", "--set n_envs: must be >= 1 (got 0)"),  # what was typed, not --envs
        ("gamma=1.5", "--set gamma: must be in (0, 1] (got 1.5)"),
    ],
)
def test_a_bad_set_is_one_line(tmp_path: Path, pair: str, message: str) -> None:
    result = invoke("--run-dir", str(tmp_path / "r"), "--set", pair)
    assert result.exit_code == 2
    assert result.output.strip() == f"esper: error: {message}"


def test_total_timesteps_becomes_whole_batches_and_is_shown(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke(
        "--run-dir", str(run_dir), "--envs", "4", "--horizon", "8", "--total-timesteps", "70"
    )
    assert result.exit_code == 0, result.output
    # 70 env steps of 4 envs x 8 steps: ceil(70 / 32) = 3 batches, 96 env steps.
    assert started(run_dir)["data"]["max_batches"] == 3
    assert "batches 1..3 (96 env steps)" in result.output


def test_total_timesteps_with_episodes_is_an_error_naming_both(tmp_path: Path) -> None:
    result = invoke(
        "--run-dir", str(tmp_path / "r"), "--total-timesteps", "1000", "--episodes", "3"
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "esper: error: --total-timesteps: give --total-timesteps or --episodes, not both"
    )
    with pytest.raises(ConfigError, match="give total_timesteps or episodes, not both"):
        esper.train(episodes=3, total_timesteps=1000, run_dir=str(tmp_path / "p"), progress=False)
