"""``run_vectorized_ppo``: the training loop, read top to bottom.

Set up (or restore from a checkpoint), announce the run, then for each batch:
rollout, advantages, update, one host transfer of statistics, telemetry,
checkpoint. Every piece lives in its own module; this one only sequences them.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from esper.config import PPOConfig
from esper.device import resolve_device
from esper.run_dir import RunDir, prepare_run_dir
from esper.telemetry import events
from esper.telemetry.events import TelemetryEvent
from esper.telemetry.hub import TelemetryHub
from esper.telemetry.metrics import (
    BATCH_FIELDS,
    PACKED_REDUCTIONS,
    PACKED_WEIGHT_COLUMN,
    Reduction,
    pack_device_stats,
    unpack_device_stats,
)
from esper.training.distributed import Collectives, rank_device
from esper.training.gae import batch_advantages
from esper.training.interrupt import StopRequest
from esper.training.ppo import explained_variance, ppo_update
from esper.training.rollout import RolloutBuffer, collect_rollout
from esper.training.state import TrainerState, build_state, flatten_batch, update_settings
from esper.training.timing import BatchClock, memory_usage_mb


class NonFiniteError(RuntimeError):
    """A loss, gradient or statistic went NaN/inf; nothing from this batch is saved."""


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


def learning_rate_at(config: PPOConfig, batch_index: int) -> float:
    """Linear decay to 0 over the whole run (``max_batches``, or ``anneal_batches``)."""
    if not config.anneal_lr:
        return config.learning_rate
    span = config.anneal_batches or config.max_batches
    return config.learning_rate * max(0.0, 1.0 - batch_index / span)


# A resume of a task whose environments cannot be checkpointed (gym: tasks).
FRESH_ENVS_NOTE = (
    "; this task's environments cannot be checkpointed, so this resume "
    "starts from freshly reset environments"
)


def run_vectorized_ppo(
    config: PPOConfig,
    hub: TelemetryHub,
    stop: StopRequest | None = None,
    group: Collectives | None = None,
) -> TrainingResult:
    """Train ``config.n_batches`` batches, emitting telemetry to ``hub``.

    Under torchrun ``group`` is this rank's place in the job: rank 0 checks the
    run dir and writes checkpoints; every rank trains its share of the envs.
    """
    stop = stop or StopRequest()
    group = group or Collectives()
    device = rank_device(resolve_device(config.device), group)
    group.shard(config.n_envs)  # an uneven split is bad input: refused before the run dir
    run_dir = group.main_decides(lambda: prepare_run_dir(config))
    state = build_state(config, device, run_dir, group)
    run_id = group.main_decides(lambda: state.run_id or f"{config.task}-{uuid.uuid4().hex[:8]}")
    state.run_id = run_id
    env_device_counts: Counter[str] = Counter()
    for label, count in group.all_gather_object((group.device_label(device), state.local_envs)):
        env_device_counts[label] += count
    _emit(
        hub,
        run_id,
        events.TrainingStartedPayload(
            n_envs=config.n_envs,
            max_epochs=config.horizon,
            max_batches=config.max_batches,
            start_batch=config.start_batch,
            task=config.task,
            device=str(device),
            seed=config.seed,
            policy_params=state.policy_params,
            config=config.to_dict(),
            env_steps=state.env_steps,
            world_size=group.world_size,
            env_device_counts=dict(env_device_counts),
        ),
        batch=config.start_batch,
        message=(
            f"PPO training {'resumed' if config.start_batch else 'started'}: {config.task} "
            f"on {_describe_devices(env_device_counts)}, "
            f"{config.n_envs} envs x {config.horizon} steps, "
            f"batches {config.start_batch + 1}..{config.max_batches}"
            + (FRESH_ENVS_NOTE if config.start_batch and not state.env.restorable else "")
        ),
    )
    result = TrainingResult("completed", run_dir.path, run_id, state.batch, state.env_steps)
    buffer = RolloutBuffer.allocate(
        config.horizon,
        state.local_envs,
        state.env.obs_dim,
        state.env.action_space.shape,
        device,
    )
    started = time.perf_counter()
    # One process stops on its own request, whenever made (a signal, a telemetry
    # subscriber); several ranks stop together, at the batch whose collective
    # carries the first request.
    stop_agreed = False
    saved_batch = config.start_batch
    try:
        while state.batch < config.max_batches:
            if stop_agreed if group.active else stop.requested:
                return _interrupt(hub, config, state, run_dir, result, stop, saved_batch)
            stats, stop_agreed = _train_one_batch(config, state, buffer, stop)
            result.last_batch = stats
            result.history.append(stats)
            _emit(
                hub,
                run_id,
                events.BatchCompletedPayload(**stats),
                batch=state.batch,
            )
            if state.batch % config.checkpoint_every == 0 or state.batch == config.max_batches:
                _save(hub, state, run_dir)
                saved_batch = state.batch
    except NonFiniteError as exc:
        return _fail(hub, state, run_dir, result, str(exc), "NonFiniteError")
    except KeyboardInterrupt:
        _fail(
            hub, state, run_dir, result, "stopped at once by a second Ctrl-C", "KeyboardInterrupt"
        )
        raise
    except Exception as exc:
        _fail(hub, state, run_dir, result, f"{type(exc).__name__}: {exc}", type(exc).__name__)
        raise
    finally:  # however the loop ended, the result reports where training stands
        result.final_batch, result.env_steps = state.batch, state.env_steps
        result.collective_seconds = group.seconds
    _emit(
        hub,
        run_id,
        events.TrainingCompletedPayload(
            final_batch=state.batch,
            env_steps=state.env_steps,
            total_seconds=time.perf_counter() - started,
            final_return_mean=result.last_batch.get("episode_return_mean"),
        ),
        batch=state.batch,
        message=f"training completed at batch {state.batch}/{config.max_batches}",
    )
    return result


def _train_one_batch(
    config: PPOConfig, state: TrainerState, buffer: RolloutBuffer, stop: StopRequest
) -> tuple[dict[str, Any], bool]:
    """One batch: rollout, GAE, update, then the batch's single host transfer.

    With several ranks the statistics cross ranks in one collective first,
    carrying each rank's stop request; returns the stats and whether the job stops.
    """
    clock = BatchClock(state.device)
    clock.mark("start")
    learning_rate = learning_rate_at(config, state.batch)
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate

    state.next_obs = collect_rollout(
        state.env,
        state.policy,
        buffer,
        state.next_obs,
        state.obs_normalizer,
        state.episodes,
        state.reward_scaler,
    )
    state.merge_normalizers()  # several ranks: the job's moments, once a batch
    advantages, returns = batch_advantages(
        buffer.values,
        buffer.rewards,
        buffer.terminated,
        buffer.truncated,
        buffer.final_obs,  # [horizon, n_envs, obs_dim]
        state.policy_obs(state.next_obs),  # [n_envs, obs_dim]
        state.policy.value,
        config.gamma,
        config.gae_lambda,
    )
    clock.mark("rollout_done")
    update_stats = ppo_update(
        state.policy,
        state.optimizer,
        flatten_batch(buffer, advantages, returns),
        update_settings(config, state.group.world_size),
        state.loss_fn,
        state.group,
    )
    ev = explained_variance(buffer.values.flatten(), returns.flatten())
    clock.mark("update_done")

    # The one device-to-host transfer of the batch: every device statistic, by name,
    # first combined across ranks (one collective) together with every rank's stop request.
    packed = pack_device_stats(
        {**state.episodes.totals(), **update_stats, "explained_variance": ev}
    )
    memory = memory_usage_mb(state.device)  # host counters: no wait on the device
    # The stop request is read as late as possible: one made during this batch
    # stops the job after it, on every rank.
    stop_requested = stop.requested
    if state.group.active:
        packed = _combine_ranks(state.group, packed, stop_requested, memory)
    host = packed.tolist()  # host-sync: the batch's one transfer
    device_stats = unpack_device_stats(host[: len(PACKED_REDUCTIONS)])
    stop_agreed = stop_requested
    if state.group.active:
        stop_agreed = host[len(PACKED_REDUCTIONS)] > 0
        combined = host[len(PACKED_REDUCTIONS) + 1 :]
        memory = {name: _or_none(v) for name, v in zip(memory, combined, strict=True)}
    bad = [
        name
        for name in ("policy_loss", "value_loss", "grad_norm")
        if not _finite(device_stats[name])
    ]
    state.batch += 1
    if bad:
        raise NonFiniteError(f"non-finite {', '.join(bad)} in batch {state.batch}")
    state.env_steps += config.batch_size
    batch_seconds = clock.since_start()
    rollout_seconds, update_seconds = clock.split()
    return {
        "env_steps": state.env_steps,  # the job's: config.batch_size counts every rank
        "sps": config.batch_size / batch_seconds,
        "batch_seconds": batch_seconds,
        **device_stats,
        "learning_rate": learning_rate,
        "rollout_seconds": rollout_seconds,
        "update_seconds": update_seconds,
        **memory,
    }, stop_agreed


def _combine_ranks(
    group: Collectives, packed: torch.Tensor, stop_requested: bool, memory: dict[str, float | None]
) -> torch.Tensor:
    """The packed statistics, then every rank's stop request (anyone stops all) and
    its memory (the job's largest), combined in the batch's one collective. NaN
    carries memory a rank cannot measure (CUDA memory off CUDA)."""
    extra = [1.0 if stop_requested else 0.0, *(_or_nan(v) for v in memory.values())]
    kinds = (*PACKED_REDUCTIONS, Reduction.MAX, *(BATCH_FIELDS[name].reduction for name in memory))
    return group.reduce_fields(
        torch.cat((packed, packed.new_tensor(extra))), kinds, PACKED_WEIGHT_COLUMN
    )


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value


def _describe_devices(counts: Counter[str]) -> str:
    return ", ".join(counts) if len(counts) > 1 else next(iter(counts))


def _finite(value: float) -> bool:
    return value == value and abs(value) != float("inf")


_EVENT_TYPE_OF = {payload: event_type for event_type, payload in events.PAYLOAD_TYPES.items()}


def _emit(
    hub: TelemetryHub,
    run_id: str,
    payload: events.Payload,
    batch: int | None = None,
    message: str = "",
) -> None:
    """Emit ``payload`` as the event its type belongs to."""
    event_type = _EVENT_TYPE_OF[type(payload)]
    hub.emit(
        TelemetryEvent(
            event_type=event_type, group_id=run_id, data=payload, batch=batch, message=message
        )
    )


def _save(hub: TelemetryHub, state: TrainerState, run_dir: RunDir) -> None:
    path = run_dir.checkpoint_path(state.batch)
    size = state.save(path)  # every rank takes part; rank 0 writes
    if not state.group.is_main:
        return
    run_dir.prune(state.config.keep_checkpoints)
    _emit(
        hub,
        state.run_id,
        events.CheckpointSavedPayload(
            path=str(path), batch=state.batch, env_steps=state.env_steps, bytes=size
        ),
        batch=state.batch,
        message=f"checkpoint saved: {path.name}",
    )


def _interrupt(
    hub: TelemetryHub,
    config: PPOConfig,
    state: TrainerState,
    run_dir: RunDir,
    result: TrainingResult,
    stop: StopRequest,
    saved_batch: int,
) -> TrainingResult:
    if state.batch != saved_batch:  # every rank takes part in the save
        _save(hub, state, run_dir)
    resume = max(run_dir.checkpoints(), default=0)
    reason = f"{stop.signal_name or 'a stop on another rank'} received"
    _emit(
        hub,
        state.run_id,
        events.TrainingInterruptedPayload(resume_batch=resume, reason=reason),
        batch=state.batch,
        message=f"training interrupted at batch {state.batch}; resume from batch {resume}",
    )
    result.status, result.reason, result.exit_signal = "interrupted", reason, stop.signal_name
    return result


def _fail(
    hub: TelemetryHub,
    state: TrainerState,
    run_dir: RunDir,
    result: TrainingResult,
    reason: str,
    error_type: str,
) -> TrainingResult:
    last_good = max(run_dir.checkpoints(), default=None)
    _emit(
        hub,
        state.run_id,
        events.TrainingFailedPayload(
            reason=reason, error_type=error_type, last_good_batch=last_good
        ),
        batch=state.batch,
        message=f"training failed: {reason}",
    )
    result.status, result.reason = "failed", reason
    return result
