"""Agents as rows of the batch (``esper.envs.agents``): what the trainer sees of
a task with several agents."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from esper.envs import BatchedEnv, EnvSpec, make
from esper.envs.agents import AgentRows, as_rows, layout_for, row_spec, team_step
from esper.envs.base import statistic_values
from esper.envs.probes import CentralProbe, RolesProbe
from esper.runtime.errors import ConfigError

CENTRAL = {"agent_id": True, "critic": "central"}


class StatefulCentral(CentralProbe):
    """probe-central with its own global state: both signs and their product."""

    spec = dataclasses.replace(CentralProbe.spec, name="probe-central-state", global_state_dim=3)

    def global_state(self, state: torch.Tensor) -> torch.Tensor:
        return torch.cat((state, state[:, :1] * state[:, 1:]), dim=1).to(torch.float32)


def test_each_agent_is_a_row_with_its_id_and_the_copys_global_state() -> None:
    env = AgentRows(CentralProbe(3, seed=0), CENTRAL)
    assert (env.num_envs, env.copies, env.n_agents) == (6, 3, 2)
    rows = env.reset(seed=0)
    signs = env.task.state  # [3 copies, 2 agents]
    # row c * 2 + a: [s_a, one-hot(a), s_0, s_1]; the last two for the critic only
    for copy in range(3):
        for agent in range(2):
            expected = [signs[copy, agent], *torch.eye(2)[agent], *signs[copy]]
            assert rows[copy * 2 + agent].tolist() == torch.stack(expected).tolist()
    assert env.spec.obs_dim == 5 and env.spec.critic_obs_dim == 2 and env.spec.actor_obs_dim == 3


def test_a_step_maps_rows_to_agents_and_ends_every_row_of_a_copy() -> None:
    env = as_rows(RolesProbe(4, seed=0), {"agent_id": False})
    env.reset(seed=0)
    actions = torch.tensor([0, 1, 1, 1, 0, 0, 1, 0])  # copy 0 does what pays
    obs, reward, terminated, truncated, info = env.step(actions)
    assert reward.tolist() == [1, 1, 0, 0, 0, 0, 0, 0]  # the team reward, every agent's
    assert terminated.tolist() == [True] * 8 and truncated.tolist() == [False] * 8
    assert obs.shape == info["final_obs"].shape == (8, 1)
    team, ended = team_step(reward, terminated, 2)
    assert team.tolist() == [1, 0, 0, 0] and ended.tolist() == [True] * 4


def test_the_task_global_state_reaches_the_critic_entries_before_and_after_reset() -> None:
    task = StatefulCentral(4, seed=1)
    env = AgentRows(task, CENTRAL)
    first = env.reset(seed=1)
    expected = task.global_state(task.state)
    assert torch.equal(first.view(4, 2, -1)[:, 0, 3:], expected)
    before = task.state.clone()
    obs, _, terminated, _, info = env.step(torch.zeros(8, dtype=torch.int64))
    assert bool(terminated.all())  # one-step episodes: every copy reset
    final = info["final_obs"].view(4, 2, -1)[:, :, 3:]
    assert torch.equal(final[:, 1], task.global_state(before))  # before the reset
    assert torch.equal(obs.view(4, 2, -1)[:, 1, 3:], task.global_state(task.state))


def test_base_step_returns_the_global_state_only_for_tasks_that_declare_one() -> None:
    task = StatefulCentral(2, seed=0)
    task.reset(seed=0)
    info = task.step(torch.zeros(2, 2, dtype=torch.int64))[-1]
    assert info["global_state"].shape == info["final_global_state"].shape == (2, 3)
    plain = CentralProbe(2, seed=0)
    plain.reset(seed=0)
    assert "global_state" not in plain.step(torch.zeros(2, 2, dtype=torch.int64))[-1]


def test_a_single_agent_task_is_its_own_rows() -> None:
    env = make("cartpole", 2)
    assert as_rows(env, {"critic": "local"}) is env
    assert row_spec(env.spec, {}) is env.spec
    assert env.copies == 2 and env.n_agents == 1


def test_a_central_critic_on_one_agent_without_critic_entries_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        layout_for(make("cartpole", 1).spec, {"critic": "central"})
    assert info.value.setting == "critic" and "one agent" in info.value.message
    # a privileged critic is already central: nothing to refuse
    assert layout_for(make("probe-privileged", 1).spec, {"critic": "central"}).global_dim == 0


def test_observations_that_do_not_show_the_agent_count_are_refused() -> None:
    class ThreeShown(CentralProbe):
        spec = dataclasses.replace(CentralProbe.spec, name="probe-three", n_agents=3)

    env = AgentRows(ThreeShown(2), {})
    with pytest.raises(ConfigError) as info:
        env.reset()
    assert "n_agents = 3" in info.value.message and "[2, 2, 1]" in info.value.message


def test_each_agents_return_is_reported_per_batch() -> None:
    class Paid(BatchedEnv):
        spec = EnvSpec("paid", "", 1, 1, CentralProbe.spec.action_space, 3, n_agents=2)

        def initial_state(self, n):
            return torch.zeros(n, 1, device=self.device)

        def observe(self, state):
            return state.unsqueeze(1).expand(-1, 2, -1).float()

        def dynamics(self, state, actions):
            reward = torch.tensor([[1.0, 2.0]], device=state.device).expand(state.shape[0], 2)
            return state, reward, torch.zeros(state.shape[0], dtype=torch.bool)

    env = AgentRows(Paid(2), {})
    env.reset()
    assert all(v.isnan() for v in statistic_values(env.batch_statistics()).values())  # none yet
    for _ in range(3):  # truncated at 3 steps
        env.step(torch.zeros(4, dtype=torch.int64))
    stats = env.batch_statistics()  # (total, episodes): a weighted mean over ranks
    assert [t.item() for t in stats["agent_0_return"]] == [6, 2]
    assert statistic_values(stats)["agent_1_return"].item() == 6


class DrawnCentral(CentralProbe):
    """probe-central with a picture: one pixel per agent, its sign's shade."""

    render_fps = 5

    def render(self, index: int = 0):
        import numpy as np

        image = np.zeros((2, 2, 3), dtype=np.uint8)
        image[0, :, :] = ((self.state[index] + 1) * 100).to(torch.uint8).numpy()[:, None]
        return image


def test_a_video_acts_on_rows_and_draws_the_task(tmp_path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from esper.envs import register
    from esper.envs.video import record_video

    register("drawn-central", DrawnCentral)
    seen = []

    def act(obs, starts, mask=None):
        seen.append((tuple(obs.shape), starts.tolist()))
        return torch.zeros(obs.shape[0], dtype=torch.int64)

    frames = record_video(
        "drawn-central", act, tmp_path / "c.mp4", seed=0, episodes=2, settings=CENTRAL
    )
    assert frames == 2  # one-step episodes: a frame each
    assert seen == [((2, 5), [True, True])] * 2  # both agents' rows, with ids and both signs
