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
from cuda_runs import cuda_settings

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
    return train_with(run_dir, task, episodes, start)


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
    config = PPOConfig(**cuda_settings(task, run_dir, episodes, start, **changes))
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
        ("minatar-breakout", {"encoder": "cnn", "hidden_sizes": (32,)}),
        ("cartpole", {"n_envs": 37}),  # not a multiple of 16: no kernel assumes one
        ("cartpole", {"lr_schedule": "adaptive", "target_kl": 0.01}),  # both inside graphs
    ],
    ids=["cartpole", "pendulum", "acrobot", "lstm", "cnn", "37-envs", "adaptive-target-kl"],
)
def test_graphed_batches_equal_eager_ones_bit_for_bit(
    task: str, policy: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same kernels in the same order from the same random streams: a graphed
    run is the eager run over the same (device-resident) Adam, to the bit; for a
    recurrent policy (memory carried in place, sequences replayed), a CNN, an
    odd number of environments, and the adaptive rate with a KL early stop (the
    rate moves on the device, the stop reads each epoch's KL between replays).
    cuDNN picks deterministic convolutions here: its default may pick ones whose
    sums change order from run to run, which no graph causes."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
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


def test_compiled_and_graphed_batches_stay_within_tolerance_of_eager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor fuses the arithmetic, so the numbers move at float rounding: after
    3 batches every statistic within 1e-3 relative and every weight within 1e-3
    relative / 1e-4 absolute of the eager run's (the same device-resident Adam)."""
    import esper.training.state as state_module

    fast = train_with(tmp_path / "fast", "cartpole", 3, compile=True, cuda_graphs="on")
    monkeypatch.setattr(state_module, "wants_device_optimizer", lambda config: True)
    eager = train_with(tmp_path / "eager", "cartpole", 3)
    for mine, theirs in zip(fast, eager, strict=True):
        assert mine.keys() == theirs.keys()
        for key, value in theirs.items():
            if isinstance(value, float):
                assert mine[key] == pytest.approx(value, rel=1e-3, abs=1e-5), key
            else:
                assert mine[key] == value, key
    name = "checkpoints/batch_000003.pt"
    a = load_checkpoint(tmp_path / "fast" / name)["policy"]
    b = load_checkpoint(tmp_path / "eager" / name)["policy"]
    for key, tensor in b.items():
        torch.testing.assert_close(a[key], tensor, rtol=1e-3, atol=1e-4)


def test_the_environment_generator_advances_between_replays() -> None:
    """Auto-resets draw from the environment's generator: a replay that repeated
    the captured offsets would restart every ended episode from the same state."""
    from esper.training.fast.capture import GraphedRollout

    device = torch.device("cuda")
    env = make("cartpole", 256, device, seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, (16,)).to(device)
    buffer = RolloutBuffer.allocate(64, 256, env.obs_dim, (), device)
    episodes = EpisodeTracker(256, device, 64)
    rollout = GraphedRollout()
    obs = env.reset(seed=0)
    states = []
    for _ in range(4):  # warm-up, capture + first replay, two more replays
        obs = rollout(env, policy, buffer, obs, None, episodes)
        states.append(env.generator.get_state())
    assert rollout.graph is not None
    assert len({bytes(state.tolist()) for state in states}) == 4
    assert episodes.totals()["episodes_finished"].item() > 0  # resets happened in the replays


def test_a_capture_that_fails_names_the_rollout_and_the_way_out() -> None:
    """A host read inside the captured rollout step fails the capture for real."""
    from esper.runtime.errors import UserError
    from esper.training.fast.capture import GraphedRollout
    from esper.training.rollout import rollout_step

    def reads_the_host(*args, **kwargs):
        out = rollout_step(*args, **kwargs)
        out.sum().item()  # not allowed while a stream captures
        return out

    device = torch.device("cuda")
    env = make("cartpole", 64, device, seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, (16,)).to(device)
    buffer = RolloutBuffer.allocate(8, 64, env.obs_dim, (), device)
    episodes = EpisodeTracker(64, device, 8)
    rollout = GraphedRollout(reads_the_host)
    obs = rollout(env, policy, buffer, env.reset(seed=0), None, episodes)  # the warm-up
    with pytest.raises(UserError) as failed:
        rollout(env, policy, buffer, obs, None, episodes)
    message = failed.value.one_line()
    assert "capturing the rollout as a CUDA graph failed" in message and "use off" in message
    assert "\n" not in message
