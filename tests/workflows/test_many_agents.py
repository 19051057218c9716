"""A policy trained with several agents, used one agent at a time: load_policy,
esper eval, evaluation while training and the exported files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from exported_files import run_exported
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.telemetry.events import EvaluationCompletedPayload
from esper.telemetry.jsonl import read_events
from esper.workflows.export import export_policy

runner = CliRunner()
ONE = torch.ones(1, 1)  # what every agent of probe-roles observes


@pytest.fixture(scope="module")
def roles_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """probe-roles learned (agent 0 takes 0, agent 1 takes 1), evaluated while training."""
    run_dir = tmp_path_factory.mktemp("roles")
    outcome = esper.train(
        "probe-roles", episodes=20, run_dir=str(run_dir), device="cpu", seed=1,
        eval_every=10, eval_episodes=8, critic="central", progress=False,
    )  # fmt: skip
    assert outcome.status == "completed", outcome.reason
    return run_dir


def test_load_policy_acts_for_the_agent_it_is_told(roles_run: Path) -> None:
    policy = esper.load_policy(roles_run)
    assert policy.obs_dim == 1 + 2 + 2  # own observation, agent id, both observations
    assert policy(ONE, agent=0).item() == 0 and policy(ONE, agent=1).item() == 1
    with_id = torch.tensor([[1.0, 1.0, 0.0]])  # agent 0: a trainer row less its critic entries
    assert policy(with_id).item() == 0
    with pytest.raises(ValueError, match=r"agent must be in 0\.\.1"):
        policy(ONE, agent=2)


def test_evaluations_count_one_team_return_per_copy(roles_run: Path) -> None:
    evaluations = [
        e.data
        for e in read_events(roles_run / "telemetry.jsonl")
        if isinstance(e.data, EvaluationCompletedPayload)
    ]
    assert [e.episodes for e in evaluations] == [8, 8]
    assert evaluations[-1].return_mean == 1.0  # the team is paid 1 per episode at best
    result = runner.invoke(app, ["eval", str(roles_run), "--device", "cpu", "--episodes", "6"])
    assert result.exit_code == 0, result.output
    assert "6 deterministic episodes" in result.output and "1.00 ± 0.00" in result.output


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_the_exported_file_is_one_agents_policy(
    roles_run: Path, format: str, tmp_path: Path
) -> None:
    policy = esper.load_policy(roles_run)
    path = export_policy(roles_run, format, output=tmp_path / f"policy.{format}")
    generator = torch.Generator().manual_seed(0)
    own = torch.randn(64, 1, generator=generator) * 3
    for agent in (0, 1):
        one_hot = torch.nn.functional.one_hot(torch.full((64,), agent), 2).float()
        exported = run_exported(path, format, torch.cat((own, one_hot), dim=1))  # obs, then the id
        assert torch.equal(exported, policy(own, agent=agent))
    assert run_exported(
        path, format, torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    ).tolist() == [1, 0]
