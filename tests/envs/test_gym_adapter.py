"""``gym:ENV_ID`` tasks: gymnasium's vector env behind the batched-env API."""

import gymnasium
import numpy as np
import pytest
import torch

from esper.envs import BoxSpace, DiscreteSpace, UnknownTaskError, describe_tasks, env_class, make
from esper.envs.gym_adapter import GymVectorEnv


def test_cartpole_through_the_adapter() -> None:
    env = make("gym:CartPole-v1", num_envs=3, device="cpu", seed=0)
    assert not env.on_device
    assert env.action_space == DiscreteSpace(2)
    assert env.obs_dim == 4
    obs = env.reset()
    assert obs.shape == (3, 4) and obs.dtype == torch.float32 and obs.device.type == "cpu"
    actions = torch.tensor([0, 1, 1])
    obs, reward, terminated, truncated, info = env.step(actions)
    assert obs.shape == (3, 4) and obs.dtype == torch.float32
    assert reward.shape == (3,) and reward.dtype == torch.float32
    assert terminated.dtype == torch.bool and truncated.dtype == torch.bool
    assert torch.equal(info["final_obs"], obs)  # nothing finished yet
    env.close()


def test_seeded_reset_matches_gymnasium() -> None:
    env = make("gym:CartPole-v1", num_envs=2, seed=5)
    obs = env.reset()  # the constructor's seed: copy i gets seed + i
    for i in range(2):
        expected, _ = gymnasium.make("CartPole-v1").reset(seed=5 + i)
        assert np.array_equal(obs[i].numpy(), expected)
    assert torch.equal(env.reset(seed=5), obs)
    env.close()


def test_truncation_exposes_true_final_obs() -> None:
    """Pendulum never terminates: all copies truncate at step 200 and reset."""
    env = make("gym:Pendulum-v1", num_envs=2, seed=1)
    assert env.action_space == BoxSpace(low=(-2.0,), high=(2.0,))
    assert env.spec.max_episode_steps == 200
    env.reset()
    twin = gymnasium.make("Pendulum-v1")
    twin_obs = [twin.reset(seed=1)[0]]
    actions = torch.full((2, 1), 0.5)
    for _ in range(199):
        obs, _, _, truncated, info = env.step(actions)
        twin_obs.append(twin.step(np.array([0.5], dtype=np.float32))[0])
        assert not truncated.any()
    obs, _, terminated, truncated, info = env.step(actions)
    twin_final, _, _, twin_truncated, _ = twin.step(np.array([0.5], dtype=np.float32))
    assert truncated.all() and not terminated.any() and twin_truncated
    assert np.allclose(info["final_obs"][0].numpy(), twin_final)
    assert not torch.equal(info["final_obs"], obs)  # obs is already the next episode's
    assert (obs[:, :2].norm(dim=1) - 1).abs().max() < 1e-5
    assert (obs[:, 2].abs() <= 1).all()  # a fresh start: |theta_dot| <= 1
    env.close()


def test_device_and_action_device_are_handled() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    env = GymVectorEnv("Pendulum-v1", num_envs=2, device=device)
    obs = env.reset(seed=0)
    assert obs.device.type == device
    obs, reward, terminated, truncated, info = env.step(torch.zeros(2, 1, device=device))
    for tensor in (obs, reward, terminated, truncated, info["final_obs"]):
        assert tensor.device.type == device
    env.close()


def test_unknown_gym_id_is_a_clear_error() -> None:
    with pytest.raises(UnknownTaskError, match="gym:NoSuchEnv-v0"):
        env_class("gym:NoSuchEnv-v0")
    with pytest.raises(UnknownTaskError, match="CartPole-v9"):
        make("gym:CartPole-v9", num_envs=1)


def test_unsupported_spaces_are_rejected() -> None:
    # FrozenLake observes a Discrete cell index; Blackjack a Tuple
    with pytest.raises(ValueError, match=r"observation space .* is not supported"):
        describe_tasks(extra=("gym:FrozenLake-v1",))
    with pytest.raises(ValueError, match=r"observation space .* is not supported"):
        make("gym:Blackjack-v1", num_envs=1)


def test_state_dict_names_the_env_only() -> None:
    env = make("gym:CartPole-v1", num_envs=2)
    saved = env.state_dict()
    assert saved == {"gym_id": "CartPole-v1", "num_envs": 2}
    env.load_state_dict(saved)
    with pytest.raises(ValueError, match="does not match"):
        env.load_state_dict({"gym_id": "Pendulum-v1", "num_envs": 2})
    env.close()
