"""What the trainer tells the hub: one typed event per moment of a run.

The loop decides *when* (a run starts, a batch completes, a checkpoint is
saved, the run stops); this module builds each payload and its one-line
message, so the loop reads as a sequence of steps.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from esper.runs.directory import RunDir
from esper.runtime import threads
from esper.telemetry import events
from esper.telemetry.events import TelemetryEvent
from esper.telemetry.hub import TelemetryHub
from esper.training.interrupt import StopRequest
from esper.training.state import TrainerState

# A resume of a task whose environments cannot be checkpointed (gym: tasks).
FRESH_ENVS_NOTE = (
    "; this task's environments cannot be checkpointed, so this resume "
    "starts from freshly reset environments"
)

_EVENT_TYPE_OF = {payload: event_type for event_type, payload in events.PAYLOAD_TYPES.items()}


@dataclass
class TrainingResult:
    status: Literal["completed", "interrupted", "failed"]
    run_dir: Path
    run_id: str
    final_batch: int  # batches completed, counting those before a resume
    env_steps: int
    reason: str = ""
    exit_signal: str | None = None
    collective_seconds: float = 0.0  # host time this rank spent in collectives
    last_batch: dict[str, Any] = field(default_factory=dict)  # BATCH_COMPLETED fields
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Reporter:
    """Emits a run's events to ``hub`` and keeps the ``TrainingResult`` they add up to."""

    hub: TelemetryHub
    state: TrainerState
    run_dir: RunDir
    result: TrainingResult = field(init=False)
    saved_batch: int = field(init=False)  # the newest checkpoint this invocation made
    _started: float = field(init=False, default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.result = TrainingResult(
            "completed",
            self.run_dir.path,
            self.state.run_id,
            self.state.batch,
            self.state.env_steps,
        )
        self.saved_batch = self.state.config.start_batch

    def emit(self, payload: events.Payload, message: str = "") -> None:
        """Emit ``payload`` as the event its type belongs to, at the current batch."""
        self.hub.emit(
            TelemetryEvent(
                event_type=_EVENT_TYPE_OF[type(payload)],
                group_id=self.state.run_id,
                data=payload,
                batch=self.state.batch,
                message=message,
            )
        )

    def started(self, env_device_counts: Counter[str], notes: Sequence[str] = ()) -> None:
        config, state = self.state.config, self.state
        self.emit(
            events.TrainingStartedPayload(
                n_envs=config.n_envs,
                max_epochs=config.horizon,
                max_batches=config.max_batches,
                start_batch=config.start_batch,
                task=config.task,
                device=str(state.device),
                seed=config.seed,
                policy_params=state.policy_params,
                config=config.to_dict(),
                env_steps=state.env_steps,
                world_size=state.group.world_size,
                env_device_counts=dict(env_device_counts),
                # a compiled run holds its count: each graph is guarded on it, so
                # a new count (a cold compile's own C++ compilers read as other
                # work) would compile every graph again
                torch_threads=threads.claim(hold=config.compile),
                task_facts=state.env.start_facts(),
                n_agents=state.env.n_agents,
                critic=config.critic,
            ),
            f"PPO training {'resumed' if config.start_batch else 'started'}: {config.task} "
            f"on {_describe_devices(env_device_counts)}, "
            f"{config.n_envs} envs x {config.horizon} steps, "
            + _describe_agents(state.env.n_agents, config.critic)
            + f"batches {config.start_batch + 1}..{config.max_batches} "
            f"({config.max_batches * config.batch_size:,} env steps)"
            + (FRESH_ENVS_NOTE if config.start_batch and not state.env.restorable else "")
            + "".join(f"; {note}" for note in notes),
        )

    def batch_completed(self, stats: dict[str, Any]) -> None:
        self.result.last_batch = stats
        self.result.history.append(stats)
        threads.rebalance()  # the CPUs' share, re-read at most once a second
        self.emit(events.BatchCompletedPayload(**stats))

    def checkpoint_due(self) -> bool:
        config, batch = self.state.config, self.state.batch
        return batch % config.checkpoint_every == 0 or batch == config.max_batches

    def save(self) -> None:
        """Write this batch's checkpoint (every rank takes part; rank 0 writes)."""
        state = self.state
        path = self.run_dir.checkpoint_path(state.batch)
        size = state.save(path)
        self.saved_batch = state.batch
        if not state.group.is_main:
            return
        self.run_dir.prune(state.config.keep_checkpoints)
        self.emit(
            events.CheckpointSavedPayload(
                path=str(path), batch=state.batch, env_steps=state.env_steps, bytes=size
            ),
            f"checkpoint saved: {path.name}",
        )

    def video_saved(self, path: Path, frames: int) -> None:
        """A ``video_every`` video was written (rank 0 records them)."""
        state = self.state
        self.emit(
            events.VideoSavedPayload(
                path=str(path), batch=state.batch, frames=frames, env_steps=state.env_steps
            ),
            f"video saved: {path.name}",
        )

    def completed(self, reason: str = "") -> TrainingResult:
        """The run ended at max_batches, or earlier for ``reason`` (the batch
        reached is saved first, so it can be resumed or evaluated)."""
        state = self.state
        if reason and state.batch != self.saved_batch:
            self.save()
        self.emit(
            events.TrainingCompletedPayload(
                final_batch=state.batch,
                env_steps=state.env_steps,
                total_seconds=time.perf_counter() - self._started,
                final_return_mean=self.result.last_batch.get("episode_return_mean"),
                reason=reason,
            ),
            f"training completed at batch {state.batch}/{state.config.max_batches}"
            + (f": {reason}" if reason else ""),
        )
        self.result.reason = reason
        return self.result

    def evaluated(self, payload: events.EvaluationCompletedPayload, best: Path | None) -> None:
        """Record an evaluation while training; ``best``: it is the best so far, to be
        saved there (every rank takes part; rank 0 writes)."""
        state = self.state
        if best is not None:
            state.save(best, evaluation={"batch": state.batch, "return_mean": payload.return_mean})
        if not state.group.is_main:
            return
        news = f"; new best, saved {best.name}" if best is not None else ""
        self.emit(
            payload,
            f"evaluation at batch {state.batch}: return {payload.return_mean:.1f} "
            f"± {payload.return_std:.1f} over {payload.episodes} episodes{news}",
        )

    def interrupted(self, stop: StopRequest) -> TrainingResult:
        """Save the batch reached (if not saved yet) and say where to resume."""
        if self.state.batch != self.saved_batch:
            self.save()
        resume = max(self.run_dir.checkpoints(), default=0)
        reason = f"{stop.signal_name or 'a stop on another rank'} received"
        self.emit(
            events.TrainingInterruptedPayload(resume_batch=resume, reason=reason),
            f"training interrupted at batch {self.state.batch}; resume from batch {resume}",
        )
        result = self.result
        result.status, result.reason, result.exit_signal = "interrupted", reason, stop.signal_name
        return result

    def failed(self, reason: str, error_type: str) -> TrainingResult:
        last_good = max(self.run_dir.checkpoints(), default=None)
        self.emit(
            events.TrainingFailedPayload(
                reason=reason, error_type=error_type, last_good_batch=last_good
            ),
            f"training failed: {reason}",
        )
        self.result.status, self.result.reason = "failed", reason
        return self.result


def _describe_agents(n_agents: int, critic: str) -> str:
    """``3 agents per env (central critic), `` for a task with several agents."""
    return f"{n_agents} agents per env ({critic} critic), " if n_agents > 1 else ""


def _describe_devices(counts: Counter[str]) -> str:
    return ", ".join(counts) if len(counts) > 1 else next(iter(counts))
