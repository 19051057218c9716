"""``esper eval``: complete episodes of a trained policy, summarised and recorded.

The episodes run on the batched environments, many copies at once, through the
loop evaluation while training also uses (``esper.training.episodes``); the host
checks whether all counted episodes are done once every ``check_every`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from esper.envs.agents import make_rows
from esper.envs.close import close_env
from esper.envs.video import check_recordable, record_video
from esper.runs.directory import RunDir
from esper.runtime.errors import ConfigError
from esper.runtime.outputs import check_output_file
from esper.telemetry.events import (
    EvaluationCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
)
from esper.telemetry.jsonl import JsonlSink
from esper.training.episodes import MAX_COPIES, Episodes, play_episodes
from esper.training.rng import seed_everything
from esper.workflows.inference import TrainedPolicy, load_policy


@dataclass(frozen=True)
class Evaluation:
    policy: TrainedPolicy
    episodes: Episodes
    event: TelemetryEvent

    @property
    def payload(self) -> EvaluationCompletedPayload:
        assert isinstance(self.event.data, EvaluationCompletedPayload)
        return self.event.data


def run_episodes(
    policy: TrainedPolicy,
    episodes: int,
    seed: int,
    copies: int | None = None,
    check_every: int = 32,
) -> Episodes:
    """Run ``episodes`` complete episodes of ``policy`` on ``copies`` batched envs."""
    if episodes < 1:
        raise ConfigError("episodes", f"must be >= 1 (got {episodes})")
    n = min(episodes, copies or MAX_COPIES)
    seed_everything(seed)  # a stochastic policy samples from torch's global generator
    env = make_rows(policy.task, n, policy.device, seed, policy.config, policy.task_options)
    try:
        return play_episodes(env, policy, episodes, seed, check_every)
    finally:
        close_env(env)


def summarize(policy: TrainedPolicy, episodes: Episodes, seed: int) -> EvaluationCompletedPayload:
    return payload_of(
        episodes, seed, policy.checkpoint_batch, policy.env_steps, policy.deterministic
    )


def payload_of(
    episodes: Episodes,
    seed: int,
    checkpoint_batch: int,
    env_steps: int,
    deterministic: bool,
    scripted: str | None = None,
) -> EvaluationCompletedPayload:
    """EVALUATION_COMPLETED's numbers for finished episodes of any policy;
    ``scripted``: the task's scripted policy that played them (None: a learned one)."""
    return EvaluationCompletedPayload(
        checkpoint_batch=checkpoint_batch,
        env_steps=env_steps,
        episodes=int(episodes.returns.numel()),
        deterministic=deterministic,
        seed=seed,
        scripted=scripted,
        **episodes.summary(),
    )


def evaluate(
    run_dir: Path | str,
    checkpoint: int | None = None,
    episodes: int = 100,
    *,
    deterministic: bool = True,
    seed: int = 0,
    device: str = "auto",
    copies: int | None = None,
    record: bool = True,
    video: Path | str | None = None,
    video_episodes: int = 1,
) -> Evaluation:
    """Evaluate a checkpoint (the newest by default; ``"best"``: checkpoints/best.pt)
    and append EVALUATION_COMPLETED; ``video`` also records ``video_episodes``
    episodes to that MP4 file (the ``video`` extra)."""
    if video is not None:
        check_video(video, video_episodes)
    policy = load_policy(run_dir, checkpoint, device, deterministic=deterministic)
    if video is not None:  # the task is known now: refuse one that cannot be drawn
        check_recordable(policy.task, "video")
    finished = run_episodes(policy, episodes, seed, copies)
    if video is not None:
        with torch.random.fork_rng(devices=[]):  # the summary's episodes stay as they were
            record_video(
                policy.task,
                policy,
                Path(video),
                seed=seed,
                device=policy.device,
                episodes=video_episodes,
                options=policy.task_options,
                settings=policy.config,
            )
    payload = summarize(policy, finished, seed)
    mode = "deterministic" if deterministic else "stochastic"
    event = TelemetryEvent(
        event_type=TelemetryEventType.EVALUATION_COMPLETED,
        group_id=policy.run_id,
        data=payload,
        batch=policy.checkpoint_batch,
        message=(
            f"evaluated batch {policy.checkpoint_batch}: return {payload.return_mean:.1f} "
            f"over {payload.episodes} {mode} episodes"
        ),
    )
    if record:
        sink = JsonlSink(RunDir(policy.run_dir).telemetry_path)
        try:
            sink.handle(event)
        finally:
            sink.close()
    return Evaluation(policy=policy, episodes=finished, event=event)


def check_video(video: Path | str, video_episodes: int = 1) -> None:
    """Refuse, before anything loads, a video that cannot be written: not an MP4
    name, a folder that is a file, no episodes. (A missing extra or a task with no
    renderer is refused once the policy names its task, before any episode:
    ``check_recordable``.)"""
    if Path(video).suffix.lower() != ".mp4":
        raise ConfigError("video", f"writes MP4 files; name one ending in .mp4 (got {video})")
    if video_episodes < 1:
        raise ConfigError("video_episodes", f"must be >= 1 (got {video_episodes})")
    check_output_file(video, "video", makes_parents=True)  # record_video makes them


def render(evaluation: Evaluation) -> Group:
    """What ``esper eval`` prints: which policy was run, then the summary table."""
    policy, data = evaluation.policy, evaluation.payload
    lengths = evaluation.episodes.lengths.double()
    mode = "deterministic" if data.deterministic else "stochastic"
    header = Text.assemble(
        (f"{policy.task}", "bold"),
        f": checkpoint {policy.checkpoint_name} ({policy.env_steps:,} env steps) "
        f"of {policy.run_dir}\n",
        f"run {policy.run_id}: {data.episodes} {mode} episodes, seed {data.seed}",
    )
    table = Table()
    table.add_column("")
    table.add_column("mean ± std", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_row(
        "return",
        f"{data.return_mean:.2f} ± {data.return_std:.2f}",
        f"{data.return_min:.2f}",
        f"{data.return_max:.2f}",
    )
    table.add_row(
        "length",
        f"{data.length_mean:.1f} ± {float(lengths.std(unbiased=False)):.1f}",
        f"{int(lengths.min())}",
        f"{int(lengths.max())}",
    )
    for name, values in evaluation.episodes.statistics.items():  # the task's own, at the end
        table.add_row(
            name,
            f"{float(values.mean()):.3f} ± {float(values.std(unbiased=False)):.3f}",
            f"{float(values.min()):.3f}",
            f"{float(values.max()):.3f}",
        )
    return Group(header, table)


def print_report(evaluation: Evaluation, console: Console | None = None) -> None:
    (console or Console()).print(render(evaluation))
