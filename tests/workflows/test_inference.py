"""One-file save and load of a trained policy: ``policy.save(PATH)``, ``esper.load(PATH)``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import esper
from esper.config.schema import PPOConfig
from esper.runtime.errors import UserError
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo


def test_a_saved_policy_loads_anywhere_and_acts_the_same(tmp_path: Path) -> None:
    """With its normaliser, outside the run dir (which is gone)."""
    run_dir = tmp_path / "run"
    config = PPOConfig(
        task="pendulum", n_envs=8, horizon=32, n_minibatches=2, n_batches=2, device="cpu",
        run_dir=str(run_dir), normalize_obs=True,
    )  # fmt: skip
    assert run_vectorized_ppo(config, TelemetryHub()).status == "completed"
    policy = esper.load_policy(run_dir)
    assert policy.obs_normalizer is not None and policy.obs_normalizer.mean.abs().sum() > 0
    file = policy.save(tmp_path / "policy.pt")
    shutil.rmtree(run_dir)

    loaded = esper.load(file)
    obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(loaded(obs), policy(obs))
    assert (loaded.task, loaded.checkpoint_batch, loaded.env_steps) == ("pendulum", 2, 512)
    stochastic = esper.load(file, deterministic=False)
    assert not torch.equal(stochastic(obs), policy(obs))

    with pytest.raises(UserError, match="exists; pass overwrite=True"):
        policy.save(file)  # nothing the user wrote is replaced silently
    assert policy.save(file, overwrite=True) == file
    (tmp_path / "other.pt").write_bytes(b"not a policy")
    with pytest.raises(UserError, match="is not an esper policy file"):
        esper.load(tmp_path / "other.pt")
