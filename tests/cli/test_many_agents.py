"""esper ppo on a task with several agents: the settings from the command line,
what TRAINING_STARTED says, and bad input in one line (exit 2)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.envs.probes import CentralProbe

TINY = ["--device", "cpu", "--no-sanctum", "--envs", "4", "--horizon", "4", "--episodes", "1"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["ppo", *TINY, *args])


def one_line(result) -> str:
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    return line


def test_set_critic_central_trains_mapppo_and_says_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke("--task", "probe-central", "--run-dir", str(run_dir), "--set", "critic=central")
    assert result.exit_code == 0, result.output
    assert "4 envs x 4 steps per batch, 2 agents each (central critic)" in result.output
    events = [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["event_type"] == "TRAINING_STARTED")["data"]
    assert (started["n_agents"], started["critic"]) == (2, "central")
    assert started["config"]["agent_id"] is True


def test_a_misspelt_key_still_gets_its_nearest(tmp_path: Path) -> None:
    result = invoke("--run-dir", str(tmp_path / "r"), "--set", "critc=central")
    assert result.exit_code == 2
    assert one_line(result) == "esper: error: --set: unknown key 'critc'; did you mean critic?"


def test_an_unknown_critic_is_one_line(tmp_path: Path) -> None:
    result = invoke("--run-dir", str(tmp_path / "r"), "--set", "critic=global")
    assert result.exit_code == 2
    assert one_line(result) == (
        "esper: error: --set critic: must be local or central (got 'global')"
    )


def test_a_central_critic_for_one_agent_without_critic_entries_is_one_line(
    tmp_path: Path,
) -> None:
    result = invoke(
        "--task", "cartpole", "--run-dir", str(tmp_path / "r"), "--set", "critic=central"
    )
    assert result.exit_code == 2
    assert one_line(result).startswith("esper: error: --set critic: central reads every agent's")
    assert not (tmp_path / "r").exists()


class ThreeDeclared(CentralProbe):
    """Declares three agents and observes two."""

    spec = dataclasses.replace(CentralProbe.spec, name="three-declared", n_agents=3)


def test_an_agent_count_the_observations_do_not_show_is_one_line(tmp_path: Path) -> None:
    esper.envs.register("three-declared", ThreeDeclared)
    result = invoke("--task", "three-declared", "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    line = one_line(result)  # the contract check at the start sees it first
    assert line.startswith("esper: error: --task: three-declared breaks the environment"), line
    assert "reset() obs has shape (4, 2, 1), want (4, 3, 1)" in line
