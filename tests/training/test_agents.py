"""Training with several agents per copy (envs/agents.py): what ``critic =
"central"`` and ``agent_id`` buy, exact resume, and each agent's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_runs import train_history, train_probe

from esper.training.checkpoint import load_checkpoint

DRIFT = "agent_tasks:Drift"  # three agents, per-agent rewards, a global state


@pytest.mark.parametrize("critic", ["local", "central"])
def test_only_a_central_critic_explains_a_return_that_needs_every_agents_observation(
    tmp_path: Path, critic: str
) -> None:
    """probe-central pays s_0 * s_1: one agent's sign explains none of it."""
    last = train_probe("probe-central", tmp_path, 12, critic=critic).last_batch
    explained = last["explained_variance"]
    if critic == "central":
        assert explained > 0.95, (
            f"probe-central: a central critic explains {explained:.2f} of the return's "
            "variance, want ~1: the global state does not reach the critic"
        )
    else:
        assert explained < 0.3, (
            f"probe-central: a local critic explains {explained:.2f}, want ~0: it reads "
            "more than its own agent's observation"
        )


@pytest.mark.parametrize("agent_id", [True, False])
def test_the_agent_id_lets_one_shared_policy_play_two_roles(tmp_path: Path, agent_id: bool) -> None:
    """probe-roles pays the team only when agent 0 takes 0 and agent 1 takes 1."""
    last = train_probe("probe-roles", tmp_path, 20, agent_id=agent_id).last_batch
    team = last["episode_return_mean"]
    if agent_id:
        assert team > 0.9, f"probe-roles: team return {team:.2f} with agent ids, want ~1"
    else:
        assert team < 0.5, f"probe-roles: team return {team:.2f} without ids, want <= 1/4"
    # one episode per copy and step (32 copies x 8 steps), not one per agent row
    assert last["episodes_finished"] == 32 * 8
    stats = last["task_statistics"]
    assert stats["agent_0_return"] == stats["agent_1_return"] == team  # a team reward


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_two_plus_two_equals_four_with_several_agents(tmp_path: Path, recurrent: str) -> None:
    settings = {"task": DRIFT, "critic": "central", "recurrent": recurrent}
    straight = train_history(tmp_path / "straight", 4, **settings)
    train_history(tmp_path / "split", 2, **settings)
    assert train_history(tmp_path / "split", 2, start=2, **settings) == straight[2:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name
    if recurrent == "gru":  # one memory per agent row: 8 copies x 3 agents
        assert a["memory"].shape == (24, 64) and torch.equal(a["memory"], b["memory"])
    per_agent = straight[-1]["task_statistics"]
    assert len({round(per_agent[f"agent_{i}_return"], 6) for i in range(3)}) == 3  # they differ
