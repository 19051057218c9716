"""esper eval --scripted: a task's baselines from the command line, and their bad input."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app
from esper.envs.growth import GrowMLP, GrowthSettings
from esper.telemetry.jsonl import read_events

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    return lines[0]


def test_a_scripted_policy_is_evaluated_and_recorded(tmp_path: Path) -> None:
    result = run("eval", str(tmp_path), "--scripted", "never", "--task", "grow-mlp",
                 "--episodes", "2", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "grow-mlp, scripted never: return" in result.output and "over 2 episodes" in result.output
    )
    recorded = (tmp_path / "telemetry.jsonl").read_text()
    assert '"EVALUATION_COMPLETED"' in recorded and "scripted policy never" in recorded
    (event,) = read_events(tmp_path / "telemetry.jsonl")
    assert event.data.scripted == "never"  # the record says which baseline it is


def test_a_growth_evaluation_reports_the_final_score_accuracy_and_parameters(
    tmp_path: Path,
) -> None:
    result = run("eval", str(tmp_path), "--scripted", "all-at-start", "--task", "grow-mlp",
                 "--episodes", "3", "--device", "cpu", "--seed", "5")  # fmt: skip
    assert result.exit_code == 0, result.output
    (event,) = read_events(tmp_path / "telemetry.jsonl")
    data = event.data
    stats = data.episode_statistics
    assert set(stats) == {"final_score", "final_accuracy", "final_params"}
    assert f"final_score (mean at episode end): {stats['final_score']:.4f}" in result.output
    settings = GrowthSettings()
    # all-at-start fills the budget: the bare host, a block-32 and what else fits.
    assert settings.host_params < stats["final_params"] <= settings.param_budget
    rent = settings.rent * stats["final_params"] / settings.param_budget
    assert stats["final_score"] == pytest.approx(stats["final_accuracy"] - rent, abs=1e-6)
    # The return telescopes: the final score minus the untrained host's first score.
    env = GrowMLP(3, seed=5)
    env.reset(seed=5)
    first = float(env.score.double().mean())
    assert data.return_mean == pytest.approx(stats["final_score"] - first, abs=1e-5)


def test_a_scripted_policy_the_task_lacks_is_one_line() -> None:
    line = one_error_line(run("eval", "--scripted", "greedy", "--task", "grow-mlp"))
    assert line == (
        "esper: error: --scripted: task grow-mlp has no scripted policy 'greedy' "
        "(it has all-at-start, never, plateau, random)"
    )
    line = one_error_line(run("eval", "--scripted", "never", "--task", "cartpole"))
    assert line.endswith("task cartpole has no scripted policy 'never' (it has none)")
    assert one_error_line(run("eval", "--scripted", "never")).endswith("--scripted needs --task")
    assert "RUN_DIR" in one_error_line(run("eval"))


def test_a_growth_variant_with_an_unknown_blueprint_is_one_line(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "variant_growth.py").write_text(
        "from esper.envs.growth import GrowMLP, GrowthSettings\n"
        "def wide(num_envs, device='cpu', seed=0):\n"
        "    settings = GrowthSettings(blueprints=('adapter', 'block-64'))\n"
        "    return GrowMLP(num_envs, device, seed, settings=settings)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run("ppo", "--task", "variant_growth:wide", "--episodes", "1", "--no-sanctum",
                 "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert one_error_line(result) == (
        "esper: error: blueprints: unknown blueprint 'block-64' (known: adapter, block-8, block-32)"
    )
