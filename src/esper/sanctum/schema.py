"""``SanctumSnapshot``: everything a dashboard shows, frozen at one moment.

Every field comes from an event. A value that has not arrived yet is ``None``
(or ``max_batches == 0`` before the run announces its length), so widgets can show it as
missing instead of inventing a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RunStatus(StrEnum):
    WAITING = "waiting"  # no TRAINING_STARTED seen yet
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        """A terminal status: no more batches will come for this run view."""
        return self in (RunStatus.COMPLETED, RunStatus.INTERRUPTED, RunStatus.FAILED)


class NotableKind(StrEnum):
    STARTED = "started"
    RESUMED = "resumed"
    CHECKPOINT = "checkpoint"
    WARNING = "warning"  # a metric crossed a health threshold
    ANOMALY = "anomaly"  # the telemetry itself contradicts the contract
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    EVALUATION = "evaluation"  # ``esper eval`` appended a checkpoint's score
    VIDEO = "video"  # a video of the policy was written (--video-every)


@dataclass(frozen=True)
class NotableEvent:
    """One line of the event log."""

    kind: NotableKind
    message: str
    batch: int | None = None
    timestamp: str | None = None  # ISO-8601 of the telemetry event behind it


@dataclass(frozen=True)
class PPOStats:
    """The latest BATCH_COMPLETED's update statistics."""

    policy_loss: float | None = None
    value_loss: float | None = None
    entropy: float | None = None
    approx_kl: float | None = None
    clip_fraction: float | None = None
    explained_variance: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None


@dataclass(frozen=True)
class ReturnStats:
    """Episode returns of the latest batch in which an episode finished.

    ``batch`` says which batch that was, so a value carried over a batch with
    no finished episode is visibly older than ``current_batch``.
    """

    mean: float | None = None
    min: float | None = None
    max: float | None = None
    length_mean: float | None = None
    episodes_finished: int | None = None
    batch: int | None = None
    history: tuple[float, ...] = ()  # recent means, oldest first (for a sparkline)


@dataclass(frozen=True)
class EvaluationStats:
    """The latest evaluation while training (``--eval-every``) and the best so far,
    whose policy is checkpoints/best.pt."""

    return_mean: float | None = None
    return_std: float | None = None
    episodes: int | None = None
    batch: int | None = None  # the batch evaluated; None: no evaluation yet
    best_return_mean: float | None = None


@dataclass(frozen=True)
class Throughput:
    """Speed and where the latest batch's time and memory went."""

    sps: float | None = None
    rollout_share: float | None = None  # of batch_seconds, in [0, 1]
    update_share: float | None = None
    other_share: float | None = None  # telemetry, host transfer, bookkeeping
    process_memory_mb: float | None = None
    cuda_memory_mb: float | None = None


@dataclass(frozen=True)
class TaskStats:
    """The task's own telemetry: its start facts and declared statistics."""

    facts: dict[str, object] = field(default_factory=dict)  # TRAINING_STARTED.task_facts
    statistics: dict[str, float | None] = field(default_factory=dict)  # the latest batch's
    # Each statistic's recent finite values, oldest first (for a sparkline).
    history: dict[str, tuple[float, ...]] = field(default_factory=dict)
    batch: int | None = None  # the batch ``statistics`` came from


@dataclass(frozen=True)
class SanctumSnapshot:
    # --- run identity (TRAINING_STARTED) ---
    group_id: str | None = None
    task: str | None = None
    device: str | None = None  # every rank's device, comma-separated, under torchrun
    seed: int | None = None
    n_envs: int | None = None
    world_size: int = 1  # ranks training together
    n_agents: int = 1  # agents acting in each copy of the task
    critic: str = "local"  # what the critic reads: local or central (MAPPO)
    horizon: int | None = None

    # --- progress ---
    start_batch: int = 0  # batches completed before this invocation (a resume)
    current_batch: int = 0
    max_batches: int = 0  # 0 until TRAINING_STARTED arrives (only it sets this)
    env_steps: int | None = None
    elapsed_seconds: float | None = None  # since this run view's TRAINING_STARTED
    eta_seconds: float | None = None  # None unless running with a batch to time

    # --- status ---
    status: RunStatus = RunStatus.WAITING
    reason: str | None = None  # why it failed or was interrupted

    ppo: PPOStats = field(default_factory=PPOStats)
    returns: ReturnStats = field(default_factory=ReturnStats)
    throughput: Throughput = field(default_factory=Throughput)
    evaluation: EvaluationStats = field(default_factory=EvaluationStats)
    task_stats: TaskStats = field(default_factory=TaskStats)
    events: tuple[NotableEvent, ...] = ()  # newest first
