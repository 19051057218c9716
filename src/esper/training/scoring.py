"""How a run's learning is judged: one place for the score tests and scripts use.

``ReturnScore`` is a hub subscriber that turns BATCH_COMPLETED events into a
score per batch: either the batch's own mean return, or gymnasium's habit of
the mean over the newest >= ``window`` finished episodes (whole batches),
judged only once every env has run a full time limit (so that episodes cut by
the limit have had their chance to count). With a ``stop`` it asks the trainer
to stop as soon as the score reaches ``target``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from esper.telemetry.events import BatchCompletedPayload, TelemetryEvent, TelemetryEventType
from esper.training.interrupt import StopRequest


def recent_mean(batches: list[tuple[float, int]], window: int) -> float | None:
    """Mean return over the newest batches holding >= ``window`` episodes."""
    total, count = 0.0, 0
    for mean, finished in reversed(batches):
        total += mean * finished
        count += finished
        if count >= window:
            return total / count
    return None


@dataclass
class ReturnScore:
    target: float
    stop: StopRequest | None = None
    window: int = 0  # 0: each batch's own mean; N: the newest >= N episodes
    judge_from_batch: int = 0  # no score before this batch (see judge_from)
    strictly_above: bool = False  # MountainCar's -200 must be beaten, not met
    scores: list[float] = field(default_factory=list)  # one per judged batch
    reached_at: tuple[int, int] | None = None  # (batch, env steps)
    _batches: list[tuple[float, int]] = field(default_factory=list)
    name = "score"

    def handle(self, event: TelemetryEvent) -> None:
        if event.event_type is not TelemetryEventType.BATCH_COMPLETED:
            return
        data = event.data
        assert isinstance(data, BatchCompletedPayload)
        score = self._score(data, event.batch or 0)
        if score is None:
            return
        self.scores.append(score)
        reached = score > self.target if self.strictly_above else score >= self.target
        if reached and self.reached_at is None:
            self.reached_at = (event.batch or 0, data.env_steps)
            if self.stop is not None:
                self.stop.request("target reached")

    def close(self) -> None:
        pass

    @property
    def best(self) -> float | None:
        return max(self.scores, default=None)

    def _score(self, data: BatchCompletedPayload, batch: int) -> float | None:
        if data.episode_return_mean is not None:
            self._batches.append((data.episode_return_mean, data.episodes_finished))
        if not self.window:
            return data.episode_return_mean
        if batch < self.judge_from_batch:
            return None
        return recent_mean(self._batches, self.window)


def judge_from(time_limit: int | None, horizon: int) -> int:
    """The first batch by which every env has run a full time limit."""
    return -(-(time_limit or 0) // horizon)
