"""The training loop: set up, then for each batch rollout, advantages, update, report.

``run_vectorized_ppo`` sequences a run; ``train_batch`` is one PPO batch, top
to bottom. Every step is a call into the module that owns it: the rollout
(``rollout``), GAE (``gae``), the clipped update (``ppo``), the batch's one
host transfer (``transfer``), events and checkpoints (``report``).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from esper.config.schema import PPOConfig
from esper.runs.directory import RunDir, check_run_dir, claim_run_dir
from esper.runtime.device import resolve_device
from esper.runtime.process import freeze_long_lived
from esper.telemetry.hub import TelemetryHub
from esper.training.distributed.collectives import Collectives, rank_device
from esper.training.evaluation import Evaluator, check_watchable, forget_later_best
from esper.training.fast.compile_cache import CompileCache
from esper.training.interrupt import StopRequest
from esper.training.ppo import explained_variance, flatten_batch, update_settings
from esper.training.report import Reporter, TrainingResult
from esper.training.rollout import RolloutBuffer
from esper.training.schedule import learning_rate_at, set_learning_rate
from esper.training.state import TrainerState, build_state
from esper.training.timing import BatchClock, memory_usage_mb
from esper.training.transfer import BatchReport, to_host

# Statistics whose non-finite value means the update diverged.
MUST_BE_FINITE = ("policy_loss", "value_loss", "grad_norm")


class NonFiniteError(RuntimeError):
    """A loss, gradient or statistic went NaN/inf; nothing from this batch is saved."""


def run_vectorized_ppo(
    config: PPOConfig,
    hub: TelemetryHub,
    stop: StopRequest | None = None,
    group: Collectives | None = None,
    notes: Sequence[str] = (),
) -> TrainingResult:
    """Train ``config.n_batches`` batches, emitting telemetry to ``hub``; ``notes``
    (what a resume carried over, ...) end TRAINING_STARTED's message.

    Under torchrun ``group`` is this rank's place in the job: rank 0 checks the
    run dir and writes checkpoints; every rank trains its share of the envs.
    One process stops on its own request whenever it is made (a signal, a
    telemetry subscriber); several ranks stop together, at the batch whose
    collective carries the first request.
    """
    stop = stop or StopRequest()
    group = group or Collectives()
    freeze_long_lived()  # the esper command's process: what is loaded leaves the GC's sweeps
    # --compile: before the state is built, whose set-up fixes inductor's cache folder
    compile_cache = CompileCache.for_run(config, group.world_size, group.is_main)
    state, run_dir = _set_up(config, group)
    report = Reporter(hub, state, run_dir)
    evaluator = Evaluator.for_run(state, run_dir)  # None: no evaluations or videos
    buffer = _buffer_for(config, state)
    stop_agreed = False
    try:  # from the first event to the last: a user's callback that raises fails the run
        report.started(_env_device_counts(state), notes)
        while state.batch < config.max_batches:
            if stop_agreed if group.active else stop.requested:
                return report.interrupted(stop)
            stats, stop_agreed = train_batch(config, state, buffer, stop)
            compile_cache.after_batch()
            report.batch_completed(stats)
            if report.checkpoint_due():
                report.save()
            reached = evaluator.after_batch(report) if evaluator else None
            if reached:  # an evaluation reached the target return
                return report.completed(reached)
        return report.completed()
    except NonFiniteError as exc:
        return report.failed(str(exc), "NonFiniteError")
    except KeyboardInterrupt:
        report.failed("stopped at once by a second Ctrl-C", "KeyboardInterrupt")
        raise
    except Exception as exc:
        blamed = group.blame(exc, str(run_dir.path))  # rank 0: the rank that failed first
        if blamed is not None:
            report.failed(str(blamed), blamed.error_type)
            raise blamed from exc
        report.failed(f"{type(exc).__name__}: {exc}", type(exc).__name__)
        raise
    finally:  # however the loop ended, the result reports where training stands
        report.result.final_batch, report.result.env_steps = state.batch, state.env_steps
        report.result.collective_seconds = group.seconds
        if evaluator is not None:
            evaluator.close()


def _set_up(config: PPOConfig, group: Collectives) -> tuple[TrainerState, RunDir]:
    """The run's state once every check has passed, and its claimed run dir."""
    device = rank_device(resolve_device(config.device), group)
    group.shard(config.n_envs)  # an uneven split is bad input: refused before the run dir
    check_watchable(config)  # a video nothing can draw, too
    run_dir = group.main_decides(lambda: check_run_dir(config))
    state = build_state(config, device, run_dir, group)
    # Every check has passed (the state's too): only now may --overwrite clear.
    group.main_decides(lambda: claim_run_dir(config, run_dir))
    group.main_decides(lambda: forget_later_best(run_dir, config.start_batch))
    state.run_id = group.main_decides(
        lambda: state.run_id or f"{config.task}-{uuid.uuid4().hex[:8]}"
    )
    return state, run_dir


def _buffer_for(config: PPOConfig, state: TrainerState) -> RolloutBuffer:
    """The rollout buffer, allocated once for the run: ``[horizon, n_envs, ...]``."""
    env = state.env
    return RolloutBuffer.allocate(
        config.horizon, env.num_envs, env.obs_dim, env.action_space.shape, state.device,
        obs_dtype=env.spec.obs_dtype, memory_size=state.policy.memory_size,
        mask_width=env.spec.mask_width,
    )  # fmt: skip


def train_batch(
    config: PPOConfig, state: TrainerState, buffer: RolloutBuffer, stop: StopRequest
) -> tuple[dict[str, Any], bool]:
    """One PPO batch: rollout, advantages, update, report. Returns BATCH_COMPLETED's
    fields and whether the job stops (the transfer carries every rank's request)."""
    clock = BatchClock(state.device)
    clock.mark("start")
    learning_rate = set_learning_rate(state.optimizer, learning_rate_at(config, state.batch))
    state.next_obs = state.collect(
        state.env,
        state.policy,
        buffer,
        state.next_obs,
        state.obs_normalizer,
        state.episodes,
        state.reward_scaler,
        state.memory,
    )
    task_stats = state.env.batch_statistics()  # the task's own, still on the device
    state.merge_normalizers()  # several ranks: the job's moments, once a batch
    last_obs = state.policy_obs(state.next_obs)  # [n_envs, obs_dim], as the policy sees it
    advantages, returns = state.advantages(
        buffer, last_obs, state.value_of, config.gamma, config.gae_lambda
    )
    clock.mark("rollout_done")
    update_stats = state.update(
        state.policy,
        state.optimizer,
        flatten_batch(buffer, advantages, returns),
        update_settings(config, state.group.world_size),
        state.group,
    )
    ev = explained_variance(buffer.values.flatten(), returns.flatten())
    clock.mark("update_done")
    device_stats = {**state.episodes.totals(), **update_stats, "explained_variance": ev}
    device_stats["learning_rate"] = learning_rate  # adaptive: the device rate, as the batch ends
    # The stop request is read as late as possible: one made during this batch stops after it.
    host = to_host(
        device_stats,
        memory_usage_mb(state.device),
        stop.requested,
        state.group,
        task_stats,
        state.env.statistics,
    )
    state.batch += 1
    _require_finite(host, state.batch)
    state.env_steps += config.batch_size
    return _completed_fields(config, state, clock, host), host.stop_requested


def _completed_fields(
    config: PPOConfig,
    state: TrainerState,
    clock: BatchClock,
    host: BatchReport,
) -> dict[str, Any]:
    """BATCH_COMPLETED's fields: the transfer's statistics and the host's clocks."""
    batch_seconds = clock.since_start()
    rollout_seconds, update_seconds = clock.split()
    return {
        "env_steps": state.env_steps,  # the job's: config.batch_size counts every rank
        "sps": config.batch_size / batch_seconds,
        "batch_seconds": batch_seconds,
        **host.stats,
        "rollout_seconds": rollout_seconds,
        "update_seconds": update_seconds,
        **host.memory,
    }


def _require_finite(host: BatchReport, batch: int) -> None:
    bad = [name for name in MUST_BE_FINITE if not math.isfinite(host.stats[name])]
    if bad:
        raise NonFiniteError(f"non-finite {', '.join(bad)} in batch {batch}")


def _env_device_counts(state: TrainerState) -> Counter[str]:
    """Environments per device over the job (one all-gather at the start)."""
    counts: Counter[str] = Counter()
    parts = state.group.all_gather_object(
        (state.group.device_label(state.device), state.local_envs)
    )
    for label, count in parts:
        counts[label] += count
    return counts
