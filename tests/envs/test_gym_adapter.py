"""``gym:ENV_ID`` tasks: gymnasium's vector env behind the batched-env API."""

import importlib.util

import pytest

pytest.importorskip("gymnasium")

import gymnasium
import numpy as np
import torch

from esper.envs import BoxSpace, DiscreteSpace, UnknownTaskError, env_class, make
from esper.envs.gym_adapter import GymVectorEnv, UnsupportedSpaceError


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


def test_discrete_dict_and_tuple_observations_are_flattened() -> None:
    # FrozenLake observes a Discrete(16) cell index: one-hot
    env = make("gym:FrozenLake-v1", num_envs=2, seed=0)
    obs = env.reset()
    assert env.obs_dim == 16 and obs.shape == (2, 16)
    assert torch.equal(obs.sum(dim=1), torch.ones(2)) and obs[0, 0] == 1  # starts in cell 0
    env.close()
    # Blackjack a Tuple(Discrete(32), Discrete(11), Discrete(2)): three one-hots joined
    env = make("gym:Blackjack-v1", num_envs=3, seed=0)
    assert env.obs_dim == 45 and env.reset().sum(dim=1).tolist() == [3.0, 3.0, 3.0]
    env.close()


class TextWorld(gymnasium.Env):
    """Observes a variable-length sequence: no fixed-width vector to train on."""

    observation_space = gymnasium.spaces.Sequence(gymnasium.spaces.Discrete(3))
    action_space = gymnasium.spaces.Discrete(2)


class BinaryActions(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-1, 1, (3,))
    action_space = gymnasium.spaces.MultiBinary(4)


gymnasium.register("EsperTestText-v0", entry_point=TextWorld)
gymnasium.register("EsperTestBinaryActions-v0", entry_point=BinaryActions)


def test_unsupported_spaces_are_one_line_errors_before_any_run(tmp_path, capsys) -> None:
    from esper.cli import app

    with pytest.raises(UnsupportedSpaceError, match=r"observation space Sequence.* not supported"):
        env_class("gym:EsperTestText-v0")
    with pytest.raises(UnsupportedSpaceError, match=r"action space MultiBinary.* not supported"):
        env_class("gym:EsperTestBinaryActions-v0")
    run_dir = tmp_path / "run"
    code = app(
        ["ppo", "--task", "gym:EsperTestText-v0", "--run-dir", str(run_dir), "--no-sanctum"],
        standalone_mode=False,
    )
    assert code == 2
    assert capsys.readouterr().err.startswith("esper: error: --task: EsperTestText-v0: observation")
    assert not run_dir.exists()


def test_async_stepping_trains(tmp_path) -> None:
    """gym-async: steps each copy in its own process, same results as gym:."""
    sync, asynchronous = (
        make("gym:CartPole-v1", 2, seed=4),
        make("gym-async:CartPole-v1", 2, seed=4),
    )
    assert type(asynchronous.envs).__name__ == "AsyncVectorEnv"
    assert torch.equal(sync.reset(), asynchronous.reset())
    for _ in range(30):
        actions = torch.tensor([0, 1])
        for a, b in zip(sync.step(actions)[:4], asynchronous.step(actions)[:4], strict=True):
            assert torch.equal(a, b)
    sync.close()
    asynchronous.close()
    import esper

    outcome = esper.train(
        "gym-async:CartPole-v1", episodes=2, run_dir=str(tmp_path), n_envs=2, horizon=32
    )
    assert outcome.status == "completed"
    assert outcome.config.learning_rate == 0.003  # the cartpole twin's config


def test_state_dict_names_the_env_only() -> None:
    env = make("gym:CartPole-v1", num_envs=2)
    saved = env.state_dict()
    assert saved == {"gym_id": "CartPole-v1", "num_envs": 2}
    env.load_state_dict(saved)
    with pytest.raises(ValueError, match="does not match"):
        env.load_state_dict({"gym_id": "Pendulum-v1", "num_envs": 2})
    env.close()


def test_a_gym_twin_of_a_builtin_trains_with_the_builtins_config() -> None:
    from esper.config.layers import build_config

    twin = build_config(overrides={"task": "gym:Acrobot-v1"}).to_dict()
    builtin = build_config(overrides={"task": "acrobot"}).to_dict()
    assert {**twin, "task": "acrobot"} == builtin


@pytest.mark.parametrize(
    ("task", "layout"), [("gym:HalfCheetah-v5", (8, 256)), ("gym-async:Hopper-v5", (1, 2048))]
)
def test_mujoco_tasks_have_their_own_config(task: str, layout: tuple[int, int]) -> None:
    """CleanRL's 2,048-step batch in 32 minibatches and 10 epochs, in the layout
    measured best per task (docs/learning.md)."""
    from esper.config.layers import build_config
    from esper.config.schema import PPOConfig

    config = build_config(overrides={"task": task})
    assert (config.n_envs, config.horizon) == layout
    assert (config.n_minibatches, config.update_epochs) == (32, 10)
    assert config.normalize_obs and config.learning_rate != PPOConfig.learning_rate


class PickTwo(gymnasium.Env):
    """MultiDiscrete([3, 2]) actions; pays 1 per component that matches the observation."""

    observation_space = gymnasium.spaces.MultiDiscrete([3, 2])  # flattened one-hot: 5 wide
    action_space = gymnasium.spaces.MultiDiscrete([3, 2], start=[1, 0])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.target = self.np_random.integers([0, 0], [3, 2])
        self.steps = 0
        return self.target, {}

    def step(self, action):
        self.steps += 1
        reward = float(((np.asarray(action) - [1, 0]) == self.target).sum())
        self.target = self.np_random.integers([0, 0], [3, 2])
        return self.target, reward, False, self.steps >= 8, {}


gymnasium.register("EsperTestPickTwo-v0", entry_point=PickTwo, max_episode_steps=8)


def test_multidiscrete_actions_train(tmp_path) -> None:
    import esper
    from esper.envs.spaces import MultiDiscreteSpace

    env = make("gym:EsperTestPickTwo-v0", 2, seed=0)
    assert env.action_space == MultiDiscreteSpace((3, 2)) and env.obs_dim == 5
    obs = env.reset()
    target = obs.reshape(2, 5)[:, :3].argmax(1), obs[:, 3:].argmax(1)
    _, reward, *_ = env.step(torch.stack(target, dim=1))  # ours count from 0
    assert reward.tolist() == [2.0, 2.0]
    env.close()
    outcome = esper.train(
        "gym:EsperTestPickTwo-v0",
        episodes=12,
        run_dir=str(tmp_path),
        n_envs=8,
        horizon=16,
        learning_rate=0.01,
        ent_coef=0.0,
    )
    assert outcome.status == "completed", outcome.reason
    assert outcome.last_batch["episode_return_mean"] > 11  # random play: 8 x (1/3 + 1/2)
    policy = esper.load_policy(tmp_path)
    assert policy(torch.zeros(5)).shape == (2,)


def test_check_env_keeps_a_multidiscrete_task_to_the_contract() -> None:
    from esper.envs.check import FAIL, check_env

    report = check_env("gym:EsperTestPickTwo-v0", speed_sizes=())
    assert [r for r in report.results if r.status == FAIL] == []


@pytest.mark.skipif(
    importlib.util.find_spec("mujoco") is not None, reason="MuJoCo is installed here"
)
def test_a_missing_simulator_is_one_line_naming_the_extra(tmp_path, capsys) -> None:
    from esper.cli import app

    code = app(
        [
            "ppo",
            "--task",
            "gym:HalfCheetah-v5",
            "--episodes",
            "1",
            "--run-dir",
            str(tmp_path / "r"),
        ],
        standalone_mode=False,
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "esper: error: --task: HalfCheetah-v5 needs a package that is not installed; "
        "pip install 'esper-rl[mujoco]'"
    ]
    assert not (tmp_path / "r").exists()
