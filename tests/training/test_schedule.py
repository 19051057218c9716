"""The learning-rate schedules: linear and constant from the host once a batch,
adaptive on the device after every minibatch step (rsl_rl's rule)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from batch_stats import learning_fields

from esper.config.schema import PPOConfig
from esper.envs import make
from esper.runtime.errors import ConfigError
from esper.runtime.host_sync import host_reads_forbidden
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.checkpoint import load_checkpoint
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.optimizer import DeviceAdam, wants_device_optimizer
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic
from esper.training.ppo import flatten_batch, ppo_update, update_settings
from esper.training.rollout import RolloutBuffer, collect_rollout
from esper.training.schedule import adapt_learning_rate_, learning_rate_at


def _adapted(lr: float, kl: float, desired: float = 0.01) -> float:
    rate = torch.tensor(lr, dtype=torch.float64)
    adapt_learning_rate_(rate, torch.tensor(kl), desired)
    return rate.item()


def test_a_high_kl_lowers_the_rate_and_a_low_one_raises_it() -> None:
    assert _adapted(1e-3, kl=0.05) == pytest.approx(1e-3 / 1.5)  # > 2 x desired
    assert _adapted(1e-3, kl=0.001) == pytest.approx(1e-3 * 1.5)  # < desired / 2
    assert _adapted(1e-3, kl=0.01) == 1e-3  # near the target: unchanged
    assert _adapted(1e-3, kl=float("nan")) == 1e-3  # a NaN KL moves nothing


def test_the_adaptive_rate_stays_within_its_bounds() -> None:
    assert _adapted(1.2e-5, kl=1.0) == 1e-5
    assert _adapted(9e-3, kl=0.0) == 1e-2
    assert _adapted(1e-5, kl=1.0) == 1e-5 and _adapted(1e-2, kl=0.0) == 1e-2


def test_the_default_schedule_is_anneal_lr_s_and_unchanged() -> None:
    config = PPOConfig(learning_rate=1e-3, n_batches=10)
    assert config.schedule == "linear"
    assert learning_rate_at(config, 5) == 1e-3 * (1 - 5 / 10)
    assert PPOConfig(anneal_lr=False).schedule == "constant"
    assert learning_rate_at(PPOConfig(lr_schedule="constant"), 5) == 2.5e-4
    assert learning_rate_at(PPOConfig(lr_schedule="adaptive"), 5) is None
    assert not wants_device_optimizer(PPOConfig())
    assert wants_device_optimizer(PPOConfig(lr_schedule="adaptive"))


@pytest.mark.parametrize(
    "changes",
    [{"lr_schedule": "cosine"}, {"lr_schedule": "linear", "anneal_lr": False}],
)
def test_a_bad_schedule_is_refused_naming_the_setting(changes: dict) -> None:
    with pytest.raises(ConfigError) as info:
        PPOConfig(**changes)
    assert info.value.setting == "lr_schedule"


def _one_update(desired_kl: float, learning_rate: float) -> tuple[float, float]:
    """One batch's update with the adaptive schedule, no host read inside:
    returns the rate before and after."""
    torch.manual_seed(0)
    config = PPOConfig(
        n_envs=16, horizon=32, n_minibatches=4, lr_schedule="adaptive", desired_kl=desired_kl
    )
    env = make("cartpole", config.n_envs, "cpu", seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, config.hidden_sizes)
    adam = DeviceAdam(policy.parameters(), lr=learning_rate, eps=1e-5)
    episodes = EpisodeTracker(config.n_envs, torch.device("cpu"))
    buffer = RolloutBuffer.allocate(config.horizon, config.n_envs, env.obs_dim, (), "cpu")
    with host_reads_forbidden():
        obs = collect_rollout(env, policy, buffer, env.reset(seed=0), None, episodes)
        advantages, returns = batch_advantages(buffer, obs, policy.value, 0.99, 0.95)
        batch = flatten_batch(buffer, advantages, returns)
        stats = ppo_update(policy, adam, batch, update_settings(config))
    assert stats["approx_kl"].item() > 0
    return learning_rate, adam.lr.item()


def test_the_update_moves_the_device_rate_without_host_reads() -> None:
    before, after = _one_update(desired_kl=1e-9, learning_rate=1e-3)  # every KL is too high
    assert after == pytest.approx(max(before / 1.5**16, 1e-5))  # 4 epochs x 4 minibatches
    before, after = _one_update(desired_kl=10.0, learning_rate=1e-4)  # every KL is too low
    assert after == pytest.approx(min(before * 1.5**16, 1e-2))


def _train(run_dir: Path, batches: int, start: int = 0) -> list[dict]:
    config = PPOConfig(
        n_envs=8,
        horizon=32,
        n_minibatches=4,
        device="cpu",
        lr_schedule="adaptive",
        desired_kl=0.002,
        learning_rate=1e-3,
        run_dir=str(run_dir),
        n_batches=batches,
        start_batch=start,
        checkpoint_every=1,
    )
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed"
    return [learning_fields(s) for s in result.history]


def test_adaptive_two_plus_two_equals_four_bit_for_bit(tmp_path: Path) -> None:
    straight = _train(tmp_path / "straight", 4)
    _train(tmp_path / "split", 2)
    resumed = _train(tmp_path / "split", 2, start=2)
    assert resumed == straight[2:]
    rates = [s["learning_rate"] for s in straight]
    assert len(set(rates)) == 4 and 1e-3 not in rates  # it moved, every batch
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name
    # BATCH_COMPLETED reports the rate the batch ended with: the one saved after it.
    assert a["optimizer"]["lr"] == rates[-1]
