"""What only a CUDA machine can show: the command trains there, every tensor is
on the GPU, a resume is exact, and a batch never waits for the host.

Marked ``cuda`` and skipped without a GPU; ``scripts/device_check.sh`` runs
``pytest -m cuda`` on a CUDA machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from batch_stats import learning_fields

from esper.config.schema import PPOConfig
from esper.envs import make, task_names
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.checkpoint import load_checkpoint
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.optimizer import FlatAdam
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RewardScaler, RunningMeanStd
from esper.training.ppo import flatten_batch, ppo_update, update_settings
from esper.training.rollout import RolloutBuffer, collect_rollout

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_esper_ppo_trains_on_cuda(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "esper", "ppo", "--episodes", "2", "--device", "cuda"]
    command += ["--no-sanctum", "--run-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "telemetry.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["event_type"] == "TRAINING_STARTED")
    batches = [e for e in events if e["event_type"] == "BATCH_COMPLETED"]
    assert started["data"]["device"].startswith("cuda")
    assert [e["batch"] for e in batches] == [1, 2]
    assert all(e["data"]["cuda_memory_mb"] > 0 for e in batches)
    assert (tmp_path / "checkpoints" / "batch_000002.pt").exists()


def train(run_dir: Path, task: str, episodes: int, start: int = 0) -> list[dict]:
    config = PPOConfig(
        task=task,
        n_envs=64,
        horizon=16,
        n_minibatches=4,
        anneal_batches=4,  # the same schedule for 4 batches straight and 2 + 2
        normalize_obs=True,
        normalize_reward=True,
        device="cuda",
        run_dir=str(run_dir),
        n_batches=episodes,
        start_batch=start,
        checkpoint_every=1,
    )
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed", result.reason
    return [learning_fields(s) for s in result.history]


@pytest.mark.parametrize("task", task_names())
def test_two_plus_two_batches_equal_four_bit_for_bit_on_cuda(task: str, tmp_path: Path) -> None:
    """Every task trains and resumes on the GPU (a CPU tensor anywhere would
    raise), and the resumed batches are the ones that would have come."""
    straight = train(tmp_path / "straight", task, 4)
    train(tmp_path / "split", task, 2)
    resumed = train(tmp_path / "split", task, 2, start=2)
    assert resumed == straight[2:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for part in ("policy", "obs_normalizer", "reward_scaler", "env"):
        for name, tensor in a[part].items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(tensor, b[part][name]), (part, name)
    for mine, theirs in zip(a["optimizer"]["exp_avg"], b["optimizer"]["exp_avg"], strict=True):
        assert torch.equal(mine, theirs)


@pytest.mark.parametrize("task", ["cartpole", "pendulum"])
def test_a_whole_batch_never_waits_for_the_host(task: str) -> None:
    """Rollout, advantages and update under CUDA's sync debug mode, which raises
    on any operation that makes the host wait for the device."""
    device = torch.device("cuda")
    config = PPOConfig(task=task, n_envs=64, horizon=16, n_minibatches=4, device="cuda")
    env = make(task, config.n_envs, device, seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, config.hidden_sizes).to(device)
    optimizer = FlatAdam(policy.parameters(), lr=1e-3, eps=1e-5)
    normalizer = RunningMeanStd((env.obs_dim,)).to(device)
    scaler = RewardScaler(config.n_envs, config.gamma).to(device)
    episodes = EpisodeTracker(config.n_envs, device, config.horizon)
    buffer = RolloutBuffer.allocate(
        config.horizon, config.n_envs, env.obs_dim, env.action_space.shape, device
    )
    obs = env.reset(seed=0)

    def one_batch(obs: torch.Tensor) -> torch.Tensor:
        obs = collect_rollout(env, policy, buffer, obs, normalizer, episodes, scaler)
        advantages, returns = batch_advantages(
            buffer,
            normalizer.normalize(obs),
            policy.value,
            config.gamma,
            config.gae_lambda,
        )
        batch = flatten_batch(buffer, advantages, returns)
        ppo_update(policy, optimizer, batch, update_settings(config))
        return obs

    obs = one_batch(obs)  # warm-up: lazy initialisation may synchronise once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        one_batch(obs)
    finally:
        torch.cuda.set_sync_debug_mode(0)


def train_with(run_dir: Path, task: str, episodes: int, start: int = 0, **changes) -> list[dict]:
    settings = dict(
        task=task, n_envs=64, horizon=16, n_minibatches=4, anneal_batches=4,
        normalize_obs=True, normalize_reward=True, device="cuda", run_dir=str(run_dir),
        n_batches=episodes, start_batch=start, checkpoint_every=1,
    )  # fmt: skip
    config = PPOConfig(**{**settings, **changes})
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed", result.reason
    return [learning_fields(s) for s in result.history]


def _same_policy(a: Path, b: Path, batch: int) -> None:
    name = f"checkpoints/batch_{batch:06d}.pt"
    mine, theirs = load_checkpoint(a / name)["policy"], load_checkpoint(b / name)["policy"]
    for key, tensor in mine.items():
        assert torch.equal(tensor, theirs[key]), key


@pytest.mark.parametrize(
    ("task", "policy"),
    [
        ("cartpole", {}),
        ("pendulum", {}),
        ("acrobot", {}),
        ("cartpole-no-velocity", {"recurrent": "lstm", "rnn_hidden": 16}),
        ("minatar-breakout", {"encoder": "cnn", "hidden_sizes": (32,), "normalize_obs": False}),
    ],
)
def test_graphed_batches_equal_eager_ones_bit_for_bit(
    task: str, policy: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same kernels in the same order from the same random streams: a graphed
    run is the eager run over the same (device-resident) Adam, to the bit; for a
    recurrent policy (memory carried in place, sequences replayed) and a CNN too."""
    graphed = train_with(tmp_path / "graphed", task, 4, cuda_graphs="on", **policy)
    import esper.training.state as state_module

    monkeypatch.setattr(state_module, "wants_device_optimizer", lambda config: True)
    eager = train_with(tmp_path / "eager", task, 4, cuda_graphs="off", **policy)
    assert graphed == eager
    _same_policy(tmp_path / "graphed", tmp_path / "eager", 4)


def test_a_graphed_run_resumes_exactly_and_across_the_switch(tmp_path: Path) -> None:
    straight = train_with(tmp_path / "straight", "pendulum", 4, cuda_graphs="on")
    train_with(tmp_path / "split", "pendulum", 2, cuda_graphs="on")
    assert train_with(tmp_path / "split", "pendulum", 2, start=2, cuda_graphs="on") == straight[2:]
    _same_policy(tmp_path / "straight", tmp_path / "split", 4)
    train_with(tmp_path / "switch", "pendulum", 2)  # eager, the flat Adam
    resumed = train_with(tmp_path / "switch", "pendulum", 2, start=2, cuda_graphs="on")
    assert [b["env_steps"] for b in resumed] == [3 * 64 * 16, 4 * 64 * 16]


def test_every_replay_draws_new_noise() -> None:
    """The classic graph bug is a replay that repeats last batch's random numbers.
    probe-action shows the policy the same observation at every step, so its
    sampled actions differ between replays only through fresh noise."""
    from esper.training.fast.capture import GraphedRollout

    device = torch.device("cuda")
    env = make("probe-action", 256, device, seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, (16,)).to(device)
    buffer = RolloutBuffer.allocate(8, 256, env.obs_dim, (), device)
    episodes = EpisodeTracker(256, device, 8)
    rollout = GraphedRollout()
    obs = env.reset(seed=0)
    actions = []
    for _ in range(4):  # warm-up, capture + first replay, two more replays
        obs = rollout(env, policy, buffer, obs, None, episodes)
        actions.append(buffer.actions.clone())
    assert rollout.graph is not None
    assert not torch.equal(actions[2], actions[3]) and not torch.equal(actions[1], actions[2])
    assert 0.3 < actions[3].float().mean().item() < 0.7  # still a fair coin per step
