"""A resumed run continues exactly where the checkpoint left it (on CPU)."""

from __future__ import annotations

from pathlib import Path

import torch

from esper.config import PPOConfig
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.checkpoint import load_checkpoint

TIMING = {"sps", "batch_seconds", "rollout_seconds", "update_seconds"}


def train(run_dir: Path, episodes: int, start: int = 0, **changes) -> list[dict]:
    # A fixed learning rate: linear annealing is over max_batches, which differs
    # between one 4-batch invocation and a 2-batch one (see README, Resume).
    config = PPOConfig(
        n_envs=8,
        max_epochs=32,
        n_minibatches=4,
        device="cpu",
        anneal_lr=False,
        normalize_obs=True,
        normalize_reward=True,
        run_dir=str(run_dir),
        n_episodes=episodes,
        start_episode=start,
        checkpoint_every=1,
        **changes,
    )
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed"
    return [{k: v for k, v in s.items() if k not in TIMING} for s in result.history]


def test_two_plus_two_equals_four_bit_for_bit(tmp_path: Path) -> None:
    straight = train(tmp_path / "straight", 4)
    train(tmp_path / "split", 2)
    resumed = train(tmp_path / "split", 2, start=2)
    assert resumed == straight[2:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name
    for part in ("obs_normalizer", "reward_scaler"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), (part, name)
    assert torch.equal(a["env"]["state"], b["env"]["state"])
