"""``esper eval --scripted NAME --task TASK``: a task's own scripted policy, run
for complete episodes and reported as a trained policy's evaluation is
(EVALUATION_COMPLETED), so baselines and learned policies sit in one table.

A task offers scripted policies in ``BatchedEnv.scripted`` (name -> factory
taking the env); each acts from the observation and the action mask.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import torch

from esper.envs import make
from esper.envs.close import close_env
from esper.runs.directory import RunDir
from esper.runtime.device import resolve_device
from esper.runtime.errors import ConfigError
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.jsonl import JsonlSink
from esper.training.episodes import MAX_COPIES, Episodes, play_episodes
from esper.training.rng import seed_everything


def scripted_names(task: str) -> list[str]:
    from esper.envs import env_class

    return sorted(getattr(env_class(task), "scripted", {}) or {})


def run_scripted(task: str, name: str, episodes: int, seed: int, device: str = "auto") -> Episodes:
    """``episodes`` complete episodes of ``task``'s scripted policy ``name``."""
    known = scripted_names(task)
    if name not in known:
        offer = f"it has {', '.join(known)}" if known else "it has none"
        raise ConfigError("scripted", f"task {task} has no scripted policy {name!r} ({offer})")
    if episodes < 1:
        raise ConfigError("episodes", f"must be >= 1 (got {episodes})")
    seed_everything(seed)
    env = make(task, min(episodes, MAX_COPIES), resolve_device(device), seed=seed)
    try:
        policy = env.scripted[name](env)

        def act(obs: torch.Tensor, starts: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
            policy.reset(starts)
            return policy(obs, mask)

        return play_episodes(env, act, episodes, seed)
    finally:
        close_env(env)


def evaluation_event(
    task: str, name: str, finished: Episodes, seed: int, run_id: str | None = None
) -> TelemetryEvent:
    """EVALUATION_COMPLETED for a scripted policy: batch 0, no training steps."""
    from esper.workflows.evaluate import payload_of

    payload = payload_of(
        finished,
        seed,
        checkpoint_batch=0,
        env_steps=0,
        deterministic=name != "random",
        scripted=name,
    )
    return TelemetryEvent(
        event_type=TelemetryEventType.EVALUATION_COMPLETED,
        group_id=run_id or uuid.uuid4().hex[:12],
        data=payload,
        batch=0,
        message=(
            f"evaluated scripted policy {name} on {task}: return {payload.return_mean:.3f} "
            f"over {payload.episodes} episodes"
        ),
    )


def evaluate_scripted(
    task: str,
    name: str,
    episodes: int = 100,
    *,
    seed: int = 0,
    device: str = "auto",
    run_dir: Path | str | None = None,
) -> TelemetryEvent:
    """Run and summarise a scripted policy; ``run_dir``: append the event to its telemetry."""
    event = evaluation_event(task, name, run_scripted(task, name, episodes, seed, device), seed)
    if run_dir is not None:
        sink = JsonlSink(RunDir(Path(run_dir)).telemetry_path)
        try:
            sink.handle(event)
        finally:
            sink.close()
    return event
