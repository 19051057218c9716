"""Probe tasks pin one part of PPO each (``esper.envs.probes``).

Each test trains the real trainer on a probe for a few batches, then reads
the learned value or action probabilities: a broken part of PPO shows up as
the one probe whose number is wrong, with a message that names the part.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_runs import train_probe

import esper
import esper.envs
from esper.workflows.inference import TrainedPolicy

BATCHES = 12
PLUS, MINUS = torch.tensor([[1.0]]), torch.tensor([[-1.0]])


def trained(task: str, run_dir: Path, **overrides) -> TrainedPolicy:
    train_probe(task, run_dir, BATCHES, **overrides)
    return esper.load_policy(run_dir)


def value(policy: TrainedPolicy, obs: torch.Tensor) -> float:
    return policy.model.value(obs).item()


def p_action_1(policy: TrainedPolicy, obs: torch.Tensor) -> float:
    return torch.softmax(policy.model.actor(obs), dim=-1)[0, 1].item()


def test_value_fitting(tmp_path) -> None:
    v = value(trained("probe-constant", tmp_path), PLUS)
    assert abs(v - 1.0) < 0.1, (
        f"probe-constant: V = {v:.3f}, want 1 (reward 1, one step). The critic does not "
        "fit its targets: check the value loss, vf_coef and the returns GAE produces"
    )


def test_value_follows_the_observation(tmp_path) -> None:
    policy = trained("probe-observation", tmp_path)
    v_plus, v_minus = value(policy, PLUS), value(policy, MINUS)
    assert abs(v_plus - 1) < 0.15 and abs(v_minus + 1) < 0.15, (
        f"probe-observation: V(+1) = {v_plus:.3f}, V(-1) = {v_minus:.3f}, want +1 and -1. "
        "The critic does not see the observation it is scored on: check which "
        "observations the rollout stores beside each value"
    )


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_the_critic_reads_what_only_it_is_given(tmp_path, recurrent: str) -> None:
    policy = trained("probe-privileged", tmp_path, recurrent=recurrent)
    model = policy.model
    reads = model.actor[0] if model.core is None else model.core.input_gates
    assert reads.in_features == 1, "the actor must not read critic-only entries"
    sampling = esper.load_policy(tmp_path, deterministic=False)
    assert sampling(torch.ones(3, 1)).shape == (3,)  # acts without the critic-only entry
    memory = model.initial_memory(1)
    v_plus = model.value(torch.tensor([[1.0, 1.0]]), memory).item()
    v_minus = model.value(torch.tensor([[1.0, -1.0]]), memory).item()
    assert abs(v_plus - 1) < 0.15 and abs(v_minus + 1) < 0.15, (
        f"probe-privileged: V(s=+1) = {v_plus:.3f}, V(s=-1) = {v_minus:.3f}, want +1 and "
        "-1. The critic does not see the critic-only entry (EnvSpec.critic_obs_dim)"
    )


def test_discounting_and_bootstrapping(tmp_path) -> None:
    gamma = 0.5  # far from 1, so that a missing discount shows
    policy = trained("probe-delayed", tmp_path, gamma=gamma)
    first, second = value(policy, PLUS), value(policy, MINUS)
    assert abs(second - 1) < 0.15, (
        f"probe-delayed: V(last step) = {second:.3f}, want 1 (it pays 1 and ends)"
    )
    assert abs(first - gamma) < 0.15, (
        f"probe-delayed: V(first step) = {first:.3f}, want gamma = {gamma} (0 now, 1 next). "
        "1 means the reward is not discounted; 0 means the next value is not "
        "bootstrapped: check GAE's delta = r + gamma * V(next) * (1 - terminated) - V"
    )


def test_advantage_sign_and_policy_gradient(tmp_path) -> None:
    p = p_action_1(trained("probe-action", tmp_path), PLUS)
    assert p > 0.9, (
        f"probe-action: P(action 1) = {p:.3f}, want > 0.9 (action 1 pays +1, action 0 -1). "
        + (
            "The policy moved AWAY from the better action: the advantage's sign or "
            "the policy loss's sign is flipped"
            if p < 0.1
            else "The policy barely moved: check that the policy loss reaches the actor"
        )
    )


def test_policy_gradient_per_state(tmp_path) -> None:
    policy = trained("probe-observation-action", tmp_path)
    p_plus, p_minus = p_action_1(policy, PLUS), p_action_1(policy, MINUS)
    assert p_plus > 0.9 and p_minus < 0.1, (
        f"probe-observation-action: P(action 1 | +1) = {p_plus:.3f} (want > 0.9), "
        f"P(action 1 | -1) = {p_minus:.3f} (want < 0.1). The policy does not act on "
        "the observation: check that advantages line up with their own states and actions"
    )


def test_probes_pay_what_they_promise() -> None:
    both = torch.tensor([1, 0])  # copy 0 takes action 1, copy 1 action 0
    env = esper.envs.make("probe-action", num_envs=2, seed=0)
    env.reset()
    _, reward, terminated, truncated, _ = env.step(both)
    assert reward.tolist() == [1.0, -1.0] and terminated.all() and not truncated.any()

    env = esper.envs.make("probe-observation-action", num_envs=64, seed=0)
    obs = env.reset()[:, 0]
    assert set(obs.tolist()) == {-1.0, 1.0}
    _, reward, *_ = env.step(torch.ones(64, dtype=torch.int64))
    assert torch.equal(reward, obs)

    env = esper.envs.make("probe-delayed", num_envs=2, seed=0)
    first = env.reset()
    second, r1, t1, *_ = env.step(torch.zeros(2, dtype=torch.int64))
    _, r2, t2, *_ = env.step(torch.zeros(2, dtype=torch.int64))
    assert (first[:, 0].tolist(), second[:, 0].tolist()) == ([1.0, 1.0], [-1.0, -1.0])
    assert (r1.tolist(), t1.any().item(), r2.tolist(), t2.all().item()) == (
        [0.0, 0.0],
        False,
        [1.0, 1.0],
        True,
    )


def last_returns(run_dir: Path, batches: int = 3) -> float:
    """Mean episode return of the run's last ``batches`` batches."""
    import json

    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    means = [
        e["data"]["episode_return_mean"] for e in events if e["event_type"] == "BATCH_COMPLETED"
    ]
    return sum(means[-batches:]) / batches


def test_only_a_masked_policy_solves_the_mask_probe(tmp_path, monkeypatch) -> None:
    """probe-mask pays +1 for the lowest allowed action. With the mask the policy
    learns to prefer 0, then 1, then 2 and earns +1 every time; the same task
    with its mask hidden pays 1/3 at best, whatever the policy learns."""
    train_probe("probe-mask", tmp_path / "masked", BATCHES)
    masked = last_returns(tmp_path / "masked")
    assert masked > 0.9, (
        f"probe-mask: mean return {masked:.2f}, want > 0.9. The mask does not reach "
        "acting or the update: check env.action_mask in the rollout step and the "
        "masks stored in the rollout buffer"
    )
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    train_probe("custom_tasks:HiddenMaskProbe", tmp_path / "hidden", BATCHES)
    hidden = last_returns(tmp_path / "hidden")
    assert hidden < 0.5, f"without its mask the probe paid {hidden:.2f}: it is too easy"
