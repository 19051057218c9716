"""What one telemetry payload shows on the dashboard: pure conversions, no state.

Apart from ``aggregator.py``, which decides which events to obey and keeps the
run's history; these only read a payload (and the rows kept) into snapshot parts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from esper.sanctum.schema import (
    EvaluationStats,
    PPOStats,
    ReturnStats,
    RunStatus,
    SanctumSnapshot,
    TaskStats,
    Throughput,
)
from esper.telemetry import events
from esper.telemetry.events import TelemetryEvent

_PPO_FIELDS = tuple(f.name for f in dataclasses.fields(PPOStats))


def started_view(event: TelemetryEvent, data: events.TrainingStartedPayload) -> SanctumSnapshot:
    """The fresh view a TRAINING_STARTED opens."""
    return SanctumSnapshot(
        group_id=event.group_id,
        task=data.task,
        device=", ".join(data.env_device_counts) or data.device,
        seed=data.seed,
        n_envs=data.n_envs,
        world_size=data.world_size,
        n_agents=data.n_agents,
        critic=data.critic,
        horizon=data.max_epochs,
        start_batch=data.start_batch,
        current_batch=data.start_batch,
        max_batches=data.max_batches,
        env_steps=data.env_steps,
        status=RunStatus.RUNNING,
        task_stats=TaskStats(facts=dict(data.task_facts)),
    )


def ppo_stats(data: events.BatchCompletedPayload) -> PPOStats:
    return PPOStats(**{name: getattr(data, name) for name in _PPO_FIELDS})


def batch_returns(data: events.BatchCompletedPayload, batch: int) -> ReturnStats:
    return ReturnStats(
        mean=data.episode_return_mean,
        min=data.episode_return_min,
        max=data.episode_return_max,
        length_mean=data.episode_length_mean,
        episodes_finished=data.episodes_finished,
        batch=batch,
    )


def throughput(data: events.BatchCompletedPayload) -> Throughput:
    rollout = update = other = None
    if data.batch_seconds > 0:
        rollout = min(max(data.rollout_seconds / data.batch_seconds, 0.0), 1.0)
        update = min(max(data.update_seconds / data.batch_seconds, 0.0), 1.0 - rollout)
        other = 1.0 - rollout - update
    return Throughput(
        sps=data.sps,
        rollout_share=rollout,
        update_share=update,
        other_share=other,
        process_memory_mb=data.process_memory_mb,
        cuda_memory_mb=data.cuda_memory_mb,
    )


def task_view(
    facts: dict[str, object], rows: Iterable[tuple[int, dict[str, float | None]]]
) -> TaskStats:
    """The latest task statistics of ``rows`` (batch, statistics), each with its
    recent finite values."""
    rows = list(rows)
    if not rows:
        return TaskStats(facts=facts)
    batch, latest = rows[-1]
    history = {
        name: tuple(row[name] for _, row in rows if row.get(name) is not None) for name in latest
    }
    return TaskStats(facts=facts, statistics=latest, history=history, batch=batch)  # type: ignore[arg-type]


def evaluation_stats(data: events.EvaluationCompletedPayload) -> EvaluationStats:
    return EvaluationStats(
        return_mean=data.return_mean,
        return_std=data.return_std,
        episodes=data.episodes,
        batch=data.checkpoint_batch,
        best_return_mean=data.best_return_mean,
    )


def evaluation_message(data: events.EvaluationCompletedPayload) -> str:
    """The log line of an evaluation run outside training (``esper eval``)."""
    mode = "deterministic" if data.deterministic else "sampled"
    return (
        f"checkpoint {data.checkpoint_batch}: return {data.return_mean:.1f} "
        f"± {data.return_std:.1f} over {data.episodes} {mode} episodes"
    )
