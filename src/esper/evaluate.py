"""``esper eval``: complete episodes of a trained policy, summarised and recorded.

The episodes run on the batched environments, many copies at once. Copy ``i``
contributes its first few finished episodes (slot ``j * copies + i`` holds its
``j``-th), and exactly the first ``episodes`` slots count: fixing which
episodes count before any is run keeps short episodes, which finish sooner,
from being over-represented. Bookkeeping stays on the device; the host checks
whether all counted episodes are done once every ``check_every`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from esper.envs import make
from esper.envs.close import close_env
from esper.errors import ConfigError
from esper.inference import TrainedPolicy, load_policy
from esper.run_dir import RunDir
from esper.telemetry.events import (
    EvaluationCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
)
from esper.telemetry.jsonl import JsonlSink
from esper.training.rng import seed_everything

MAX_COPIES = 256  # environments stepped together at most
NO_TIME_LIMIT_STEPS = 100_000  # per episode, for tasks whose episodes have no time limit


@dataclass(frozen=True)
class Episodes:
    """The counted episodes, in slot order."""

    returns: torch.Tensor  # [episodes] float64, on the host
    lengths: torch.Tensor  # [episodes] int64, on the host


@dataclass(frozen=True)
class Evaluation:
    policy: TrainedPolicy
    episodes: Episodes
    event: TelemetryEvent

    @property
    def payload(self) -> EvaluationCompletedPayload:
        assert isinstance(self.event.data, EvaluationCompletedPayload)
        return self.event.data


class EpisodeSlots:
    """Each copy's first finished episodes, recorded in place on the device.

    Slot ``j * copies + i`` holds copy ``i``'s ``j``-th episode, and the first
    ``episodes`` slots are the ones counted.
    """

    def __init__(self, episodes: int, copies: int, device: torch.device) -> None:
        self.per_copy = math.ceil(episodes / copies)
        slots = torch.arange(self.per_copy * copies, device=device).view(self.per_copy, copies)
        self.counted = slots < episodes  # [per_copy, copies]
        self.needed = self.counted.sum(0)  # [copies] episodes each copy must finish
        # A row per episode a copy may count, plus one that absorbs the rest.
        rows = self.per_copy + 1
        self.returns = torch.zeros(rows, copies, dtype=torch.float64, device=device)
        self.lengths = torch.zeros(rows, copies, dtype=torch.int64, device=device)
        self.finished = torch.zeros(copies, dtype=torch.int64, device=device)  # [copies]
        self.running_return = torch.zeros(copies, dtype=torch.float64, device=device)
        self.running_length = torch.zeros(copies, dtype=torch.int64, device=device)
        self.copy_index = torch.arange(copies, device=device)

    def record(self, reward: torch.Tensor, done: torch.Tensor) -> None:
        """One step of ``[copies]`` rewards and episode ends."""
        self.running_return += reward
        self.running_length += 1
        at = (self.finished.clamp(max=self.per_copy), self.copy_index)
        self.returns[at] = torch.where(done, self.running_return, self.returns[at])
        self.lengths[at] = torch.where(done, self.running_length, self.lengths[at])
        self.finished += done
        self.running_return.masked_fill_(done, 0.0)
        self.running_length.masked_fill_(done, 0)

    def complete(self) -> torch.Tensor:
        """A device bool: has every counted episode finished?"""
        return (self.finished >= self.needed).all()

    def collect(self) -> Episodes:
        """The counted episodes, in slot order, on the host."""
        returns = self.returns[: self.per_copy][self.counted]
        lengths = self.lengths[: self.per_copy][self.counted]
        return Episodes(returns=returns.cpu(), lengths=lengths.cpu())


@torch.no_grad()
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
    env = make(policy.task, n, policy.device, seed=seed)
    slots = EpisodeSlots(episodes, n, policy.device)
    limit = slots.per_copy * (env.spec.max_episode_steps or NO_TIME_LIMIT_STEPS) + check_every
    obs = env.reset(seed=seed)
    try:
        for _ in range(0, limit, check_every):
            for _ in range(check_every):
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                slots.record(reward, terminated | truncated)
            if bool(slots.complete()):  # host-sync: every check_every steps, to know when to stop
                return slots.collect()
    finally:
        close_env(env)
    raise RuntimeError(f"{episodes} episodes of {policy.task} did not finish within {limit} steps")


def summarize(policy: TrainedPolicy, episodes: Episodes, seed: int) -> EvaluationCompletedPayload:
    returns = episodes.returns
    return EvaluationCompletedPayload(
        checkpoint_batch=policy.checkpoint_batch,
        episodes=int(returns.numel()),
        deterministic=policy.deterministic,
        return_mean=float(returns.mean()),
        return_std=float(returns.std(unbiased=False)),
        return_min=float(returns.min()),
        return_max=float(returns.max()),
        length_mean=float(episodes.lengths.double().mean()),
        seed=seed,
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
) -> Evaluation:
    """Evaluate a checkpoint (the newest by default) and append EVALUATION_COMPLETED."""
    policy = load_policy(run_dir, checkpoint, device, deterministic=deterministic)
    finished = run_episodes(policy, episodes, seed, copies)
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


def render(evaluation: Evaluation) -> Group:
    """What ``esper eval`` prints: which policy was run, then the summary table."""
    policy, data = evaluation.policy, evaluation.payload
    lengths = evaluation.episodes.lengths.double()
    mode = "deterministic" if data.deterministic else "stochastic"
    header = Text.assemble(
        (f"{policy.task}", "bold"),
        f": checkpoint batch {policy.checkpoint_batch} ({policy.env_steps:,} env steps) "
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
    return Group(header, table)


def print_report(evaluation: Evaluation, console: Console | None = None) -> None:
    (console or Console()).print(render(evaluation))
