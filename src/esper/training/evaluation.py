"""Evaluation while training: the policy watched between batches, never during one.

Every ``eval_every`` batches the policy plays ``eval_episodes`` deterministic
episodes on its own copies of the task (the loop ``esper eval`` uses,
``training/episodes.py``), on the training device, and the result crosses to the
host in one transfer. What it must not touch, it does not: the observation
normaliser is read, never updated; the environments draw from their own
generator, seeded from the run's seed and the batch (so a resume re-evaluates
identically); the training RNG streams are set aside while it runs. A training
run with evaluations is therefore the same run, bit for bit, as one without.

A new best mean return writes ``checkpoints/best.pt`` (a full checkpoint, which
``load_policy(run_dir, checkpoint="best")`` and ``esper eval --checkpoint best``
read); a resume starts from the return best.pt records, so a worse policy never
replaces it. ``stop_at`` ends the run when an evaluation reaches it. Every
``video_every`` batches one deterministic episode is written to
``RUN_DIR/videos/batch_K.mp4``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from esper.config.schema import PPOConfig
from esper.envs import BatchedEnv
from esper.envs.agents import make_rows
from esper.envs.close import close_env
from esper.envs.video import check_recordable, record_video
from esper.runs.directory import RunDir
from esper.telemetry.events import EvaluationCompletedPayload
from esper.training.checkpoint import BEST_FILENAME, best_batch, best_return
from esper.training.episodes import MAX_COPIES, play_episodes
from esper.training.state import TrainerState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from esper.training.report import Reporter


def evaluation_seed(seed: int, batch: int) -> int:
    """The evaluation environments' seed after ``batch``: the same on a resume, a
    different one each batch, and never one of the training streams' seeds."""
    return (seed * 1_000_003 + batch + 1) % 2**31


def best_path(run_dir: RunDir) -> Path:
    return run_dir.checkpoints_dir / BEST_FILENAME


def video_path(run_dir: RunDir, batch: int) -> Path:
    return run_dir.videos_dir / f"batch_{batch:06d}.mp4"


def forget_later_best(run_dir: RunDir, start_batch: int) -> None:
    """A resume from batch K drops a best.pt saved after K: it belongs to batches
    the rewind discarded (``eval --checkpoint best`` would report one of them)."""
    path = best_path(run_dir)
    if start_batch and path.is_file() and best_batch(path) > start_batch:
        path.unlink()


def check_watchable(config: PPOConfig) -> None:
    """Refuse a ``video_every`` that cannot be met (no renderer, no video extra)
    before anything touches the run dir."""
    if config.video_every:
        check_recordable(config.task, "video_every")


@contextmanager
def own_rng(device: torch.device) -> Iterator[None]:
    """Leave torch's global streams (CPU and this CUDA device) as they were found."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


@dataclass
class Evaluator:
    """Evaluations (and videos) of one run's policy, between its batches."""

    state: TrainerState
    run_dir: RunDir
    best: float | None  # the best mean return so far: best.pt's
    _env: BatchedEnv | None = field(default=None, init=False)  # rank 0's, built at first use
    # A recurrent policy's memory over the evaluation's copies (never the training one's)
    _memory: torch.Tensor | None = field(default=None, init=False)

    @classmethod
    def for_run(cls, state: TrainerState, run_dir: RunDir) -> Evaluator | None:
        """None when the run neither evaluates nor records; a task that cannot be
        recorded, or a missing video extra, is refused here, before the first batch."""
        config = state.config
        if not config.eval_every and not config.video_every:
            return None
        best = state.group.main_decides(lambda: best_return(best_path(run_dir)))
        return cls(state, run_dir, best)

    def after_batch(self, report: Reporter) -> str | None:
        """Evaluate and record when due; the reason the run should stop, if any."""
        config, batch = self.state.config, self.state.batch
        if config.video_every and batch % config.video_every == 0 and self.state.group.is_main:
            path = video_path(self.run_dir, batch)
            report.video_saved(path, self.record(path))
        if not config.eval_every or batch % config.eval_every:
            return None
        payload = self.state.group.main_decides(self.evaluate)  # every rank learns the result
        improved = self.best is None or payload.return_mean > self.best
        if improved:
            self.best = payload.return_mean
        report.evaluated(payload, best_path(self.run_dir) if improved else None)
        if config.stop_at is not None and payload.return_mean >= config.stop_at:
            return (
                f"evaluation return {payload.return_mean:.1f} reached the target "
                f"return {config.stop_at:g}"
            )
        return None

    def evaluate(self) -> EvaluationCompletedPayload:
        """``eval_episodes`` deterministic episodes of the current policy (rank 0)."""
        state, config = self.state, self.state.config
        seed = evaluation_seed(config.seed, state.batch)
        if self._env is None:
            copies = min(config.eval_episodes, MAX_COPIES)
            self._env = make_rows(
                config.task, copies, state.device, seed, config.to_dict(), config.task_options
            )
        with own_rng(state.device):
            episodes = play_episodes(
                self._env, self.act, config.eval_episodes, seed, check_every=None
            )
        stats = episodes.summary()  # the evaluation's one host transfer
        best = stats["return_mean"] if self.best is None else max(self.best, stats["return_mean"])
        return EvaluationCompletedPayload(
            checkpoint_batch=state.batch,
            episodes=config.eval_episodes,
            deterministic=True,
            seed=seed,
            env_steps=state.env_steps,
            during_training=True,
            best_return_mean=best,
            **stats,
        )

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, starts: torch.Tensor, action_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The most likely (allowed) action, through the normaliser as it stands (not
        updated); a recurrent policy acts from its own evaluation memory, zeroed at
        ``starts``."""
        policy = self.state.policy
        memory = policy.memory_for(self._memory, obs.shape[0], starts)
        action, self._memory = policy.act_deterministic(
            self.state.policy_obs(obs), memory, action_mask=action_mask
        )
        return policy.env_action(action)

    def record(self, path: Path) -> int:
        """One deterministic episode to ``path``, seeded like this batch's evaluation;
        the frames written."""
        state = self.state
        with own_rng(state.device):
            return record_video(
                state.config.task,
                self.act,
                path,
                seed=evaluation_seed(state.config.seed, state.batch),
                device=state.device,
                options=state.config.task_options,
                settings=state.config.to_dict(),
            )

    def close(self) -> None:
        if self._env is not None:
            close_env(self._env)
