"""``TorchVectorEnv``: a GPU-batched simulator's tensors reach the trainer untouched.

The stand-in simulator is esper's own CartPole behind gymnasium's vector API,
returning torch tensors on its device and resetting finished copies within the
step, as Isaac Lab, ManiSkill 3 and Genesis do.
"""

from __future__ import annotations

import pytest

pytest.importorskip("gymnasium")

import gymnasium
import numpy as np
import torch

import esper
from esper.envs import register
from esper.envs.cartpole import CartPole
from esper.envs.check import check_factory
from esper.envs.torch_vector import TorchVectorEnv


class TorchCartPoleVectorEnv(gymnasium.vector.VectorEnv):
    """gymnasium's vector API over esper's CartPole, torch tensors in and out."""

    def __init__(self, num_envs: int, device: str = "cpu", final_obs_key: str = "final_obs"):
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.sim = CartPole(num_envs, device=device)
        self.single_observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.single_action_space = gymnasium.spaces.Discrete(2)
        self.final_obs_key = final_obs_key
        self.last: tuple = ()

    def reset(self, *, seed=None, options=None):
        return self.sim.reset(seed=seed), {}

    def step(self, actions):
        assert isinstance(actions, torch.Tensor) and actions.device == self.device
        self.last = self.sim.step(actions)
        obs, reward, terminated, truncated, info = self.last
        done = terminated | truncated
        return (
            obs,
            reward,
            terminated,
            truncated,
            {
                self.final_obs_key: info["final_obs"],
                "_" + self.final_obs_key: done,
            },
        )


def test_tensors_pass_through_without_a_copy() -> None:
    sim = TorchCartPoleVectorEnv(4)
    env = TorchVectorEnv(sim, name="torch-cartpole", max_episode_steps=500)
    assert (env.obs_dim, env.action_space.n, env.device) == (4, 2, torch.device("cpu"))
    env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(torch.tensor([0, 1, 0, 1]))
    sim_obs, sim_reward, sim_terminated, sim_truncated, _ = sim.last
    for ours, theirs in [(obs, sim_obs), (reward, sim_reward), (terminated, sim_terminated)]:
        assert ours.data_ptr() == theirs.data_ptr()  # the simulator's own tensor
    assert truncated.data_ptr() == sim_truncated.data_ptr()


def test_steps_match_the_simulator_and_keep_final_obs() -> None:
    for key in ("final_obs", "final_observation"):
        env = TorchVectorEnv(TorchCartPoleVectorEnv(8, final_obs_key=key), name="torch-cartpole")
        twin = CartPole(8)
        assert torch.equal(env.reset(seed=3), twin.reset(seed=3))
        finished = 0
        for _ in range(60):
            actions = torch.ones(8, dtype=torch.int64)  # always push right: falls fast
            ours, theirs = env.step(actions), twin.step(actions)
            for a, b in zip(ours[:4], theirs[:4], strict=True):
                assert torch.equal(a, b)
            assert torch.equal(ours[4]["final_obs"], theirs[4]["final_obs"])
            finished += int(ours[2].sum())
        assert finished > 0  # auto-resets happened and kept their final observation


def test_the_adapter_keeps_the_contract_and_trains(tmp_path) -> None:
    def factory(num_envs: int, device="cpu", seed: int = 0) -> TorchVectorEnv:
        sim = TorchCartPoleVectorEnv(num_envs, device=str(device))
        return TorchVectorEnv(sim, name="torch-cartpole", seed=seed, max_episode_steps=500)

    report = check_factory(factory, "torch-cartpole", speed_sizes=())
    assert report.ok, [(r.rule, r.detail) for r in report.results if r.status == "FAIL"]
    register("torch-cartpole", factory)
    outcome = esper.train(
        "torch-cartpole", episodes=2, run_dir=str(tmp_path), n_envs=8, horizon=16, device="cpu"
    )
    assert outcome.status == "completed"


class GroupedCartPoleVectorEnv(TorchCartPoleVectorEnv):
    """Isaac Lab's observation groups: the policy sees positions, the critic the
    velocities too (``{"policy": [x, theta], "critic": [x_dot, theta_dot]}``)."""

    def __init__(self, num_envs: int, device: str = "cpu"):
        super().__init__(num_envs, device)
        box = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.single_observation_space = gymnasium.spaces.Dict({"policy": box, "critic": box})

    @staticmethod
    def groups(obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"policy": obs[:, ::2], "critic": obs[:, 1::2]}

    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed)
        return self.groups(obs), info

    def step(self, actions):
        obs, reward, terminated, truncated, info = super().step(actions)
        info["final_obs"] = self.groups(info["final_obs"])
        return self.groups(obs), reward, terminated, truncated, info


def test_a_critic_observation_group_reaches_only_the_critic(tmp_path) -> None:
    def factory(num_envs: int, device="cpu", seed: int = 0) -> TorchVectorEnv:
        sim = GroupedCartPoleVectorEnv(num_envs, device=str(device))
        return TorchVectorEnv(sim, name="grouped-cartpole", seed=seed, max_episode_steps=500)

    env = factory(4)
    assert (env.obs_dim, env.spec.critic_obs_dim) == (4, 2)
    state = CartPole(4).reset(seed=5)  # the same draws as the simulator's reset
    obs = env.reset(seed=5)  # policy group first, the critic's last: [x, theta, x_dot, theta_dot]
    assert torch.equal(obs, state[:, [0, 2, 1, 3]])
    register("grouped-cartpole", factory)
    outcome = esper.train(
        "grouped-cartpole", episodes=2, run_dir=str(tmp_path), n_envs=8, horizon=16, device="cpu"
    )
    assert outcome.status == "completed"
    policy = esper.load_policy(tmp_path)
    assert policy.model.actor[0].in_features == 2 and policy.model.critic[0].in_features == 4
    assert policy(obs[:, :2]).shape == (4,)  # a deployed policy takes the policy group alone
