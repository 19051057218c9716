"""Small runs the training tests share: a probe trained on one seed, a few tiny
batches of ``run_vectorized_ppo`` and one pass of update settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from batch_stats import learning_fields

import esper
from esper.api import TrainOutcome
from esper.config.schema import PPOConfig
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.ppo import UpdateSettings, update_settings

# A run small enough for a resume test: 8 envs x 32 steps, both normalisers on.
# Linear annealing spans max_batches unless told otherwise, and max_batches
# differs between one 4-batch invocation and a 2-batch one (README, Resume):
# anneal_batches=4 plans the decay over the whole split run.
SMALL_RUN = dict(
    n_envs=8,
    horizon=32,
    n_minibatches=4,
    device="cpu",
    anneal_batches=4,
    normalize_obs=True,
    normalize_reward=True,
    checkpoint_every=1,
)


def train_history(run_dir: Path, episodes: int, start: int = 0, **changes) -> list[dict]:
    """``episodes`` batches of ``SMALL_RUN`` with ``changes`` (resuming from batch
    ``start``); each batch's statistics less the machine's timings."""
    settings = {**SMALL_RUN, "run_dir": str(run_dir), "n_batches": episodes, "start_batch": start}
    result = run_vectorized_ppo(PPOConfig(**{**settings, **changes}), TelemetryHub())
    assert result.status == "completed", result.reason
    return [learning_fields(s) for s in result.history]


def train_probe(task: str, run_dir: Path, batches: int, **overrides) -> TrainOutcome:
    """``task`` (a probe) trained for ``batches`` on seed 1 with its own settings."""
    outcome = esper.train(
        task,
        episodes=batches,
        run_dir=str(run_dir),
        device="cpu",
        seed=1,
        checkpoint_every=batches,
        **overrides,
    )
    assert outcome.status == "completed", outcome.reason
    return outcome


def one_epoch_settings(minibatch_size: int) -> UpdateSettings:
    """The default update settings for one epoch of ``minibatch_size``-row minibatches."""
    return replace(update_settings(PPOConfig()), update_epochs=1, minibatch_size=minibatch_size)
