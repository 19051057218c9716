"""``pettingzoo:MODULE``: PettingZoo parallel environments as multi-agent batched tasks."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("pettingzoo")
pytest.importorskip("mpe2")

from typer.testing import CliRunner

from esper.cli import app
from esper.envs import UnknownTaskError, describe_tasks, env_class, make
from esper.envs.pettingzoo_adapter import UnsupportedAgentsError
from esper.envs.simple_spread import MAX_CYCLES, N_AGENTS, OBS_DIM, SimpleSpread

SPREAD = "pettingzoo:mpe2.simple_spread_v3"
FAKE = "pettingzoo:fake_parallel_envs"


def world_states(env) -> torch.Tensor:
    """The adapter's mpe2 worlds as the built-in port's state rows."""
    rows = []
    for copy in env.envs:
        world = copy.unwrapped.world
        rows.append(
            np.concatenate(
                [a.state.p_pos for a in world.agents]
                + [a.state.p_vel for a in world.agents]
                + [lm.state.p_pos for lm in world.landmarks]
            )
        )
    return torch.tensor(np.stack(rows))


def test_simple_spread_through_pettingzoo_has_the_multi_agent_shapes() -> None:
    spec = env_class(SPREAD).spec
    assert (spec.n_agents, spec.obs_dim, spec.max_episode_steps) == (N_AGENTS, OBS_DIM, MAX_CYCLES)
    assert spec.action_space.n == 5 and not spec.has_action_mask
    env = make(SPREAD, 4, "cpu", seed=3)
    obs = env.reset()
    assert obs.shape == (4, N_AGENTS, OBS_DIM) and obs.dtype == torch.float32
    again = make(SPREAD, 4, "cpu", seed=3).reset()
    assert torch.equal(obs, again)  # copy i seeded seed + i
    assert not torch.equal(obs[0], obs[1])
    row = next(r for r in describe_tasks((SPREAD,)) if r.name == SPREAD)
    assert row.origin == "pettingzoo" and not row.on_device and row.obs == "18 ×3 agents"
    env.close()


def test_the_adapter_steps_as_the_built_in_port_does_and_resets_each_copy() -> None:
    """The same worlds and actions: the adapter's mpe2 copies and ``simple-spread``
    agree on every observation, reward and flag, across an auto-reset."""
    env = make(SPREAD, 6, "cpu", seed=0)
    port = SimpleSpread(6, dtype=torch.float64)
    obs = env.reset()
    port.reset()
    port.state.copy_(world_states(env))
    torch.testing.assert_close(port.observe(port.state), obs)
    actions = torch.randint(
        0, 5, (MAX_CYCLES + 5, 6, N_AGENTS), generator=torch.Generator().manual_seed(0)
    )
    for t, action in enumerate(actions):
        obs, reward, terminated, truncated, info = env.step(action)
        _, port_reward, _, port_truncated, port_info = port.step(action)
        assert reward.shape == (6, N_AGENTS) and truncated.shape == terminated.shape == (6,)
        torch.testing.assert_close(reward, port_reward, atol=1e-6, rtol=0)
        torch.testing.assert_close(info["final_obs"], port_info["final_obs"], atol=1e-6, rtol=0)
        assert torch.equal(truncated, port_truncated) and not terminated.any()
        assert truncated.all() == (t == MAX_CYCLES - 1)
        if truncated.all():  # every copy reset itself: obs is a fresh episode's
            assert (obs[:, :, :2] == 0).all() and not torch.equal(obs, info["final_obs"])
            port.state.copy_(world_states(env))
        else:
            assert torch.equal(obs, info["final_obs"])
    env.close()


def test_agents_with_other_spaces_are_refused_by_name() -> None:
    with pytest.raises(UnsupportedAgentsError) as caught:
        env_class(f"{FAKE}:unlike_agents")
    line = caught.value.one_line()
    assert "\n" not in line and "agents b have other observation or action spaces than a" in line


def test_an_agent_leaving_mid_episode_is_refused() -> None:
    env = make(f"{FAKE}:leaving_agent", 2, "cpu")
    env.reset()
    env.step(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(UnsupportedAgentsError, match="b left copy 0 while other agents played on"):
        env.step(torch.zeros(2, 2, dtype=torch.long))


@pytest.mark.parametrize("where", ["masked_in_info", "masked_in_obs"])
def test_action_masks_from_either_conventional_place(where: str) -> None:
    env = make(f"{FAKE}:{where}", 3, "cpu")
    assert env.spec.has_action_mask and env.spec.obs_dim == 2  # the mask is not observed
    env.reset()
    expected = torch.tensor([True, False, True]).expand(3, 2, 3)
    assert torch.equal(env.action_mask, expected)
    obs, reward, _, truncated, info = env.step(torch.full((3, 2), 2))
    assert torch.equal(info["action_mask"], expected) and obs.shape == (3, 2, 2)
    assert (reward == 2).all()
    for _ in range(3):
        obs, _, _, truncated, info = env.step(torch.zeros(3, 2, dtype=torch.long))
    assert truncated.all() and (obs == torch.tensor([0.0, 0.5]).view(1, 2, 1)).all()
    assert (info["final_obs"][:, 0] == 4).all()  # the fourth step's, before the reset


def test_a_missing_module_is_one_line() -> None:
    with pytest.raises(UnknownTaskError, match="cannot import no_such_zoo"):
        env_class("pettingzoo:no_such_zoo.thing_v1")
    result = CliRunner().invoke(app, ["check-env", "pettingzoo:no_such_zoo.thing_v1"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no_such_zoo" in lines[0] and "Traceback" not in result.output


def test_unlike_agents_exit_2_from_the_cli() -> None:
    result = CliRunner().invoke(app, ["check-env", f"{FAKE}:unlike_agents"])
    assert result.exit_code == 2, result.output
    assert "agents b have other" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("task", [SPREAD, f"{FAKE}:masked_in_obs"])
def test_check_env_holds_the_adapter_to_the_multi_agent_contract(task: str) -> None:
    from esper.envs.check import FAIL, check_env

    report = check_env(task, speed_sizes=())
    assert report.ok, [(r.rule, r.detail) for r in report.results if r.status == FAIL]
    spec = env_class(task).spec
    assert report.facts["obs"].startswith(f"[num_envs, {spec.n_agents}, {spec.obs_dim}]")


def test_without_pettingzoo_installed_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from esper.envs.pettingzoo_adapter import MissingParallelEnv, load_factory

    monkeypatch.setitem(sys.modules, "pettingzoo", None)  # its import now fails
    # (the registry names a MissingParallelEnv as an unknown task, in one line)
    with pytest.raises(MissingParallelEnv, match=r"pip install 'esper-rl\[pettingzoo\]'"):
        load_factory("mpe2.simple_spread_v3")
