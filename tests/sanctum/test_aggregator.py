"""SanctumAggregator: the facts of TELE-014, run views, anomalies and thread safety."""

from __future__ import annotations

import dataclasses
import math
import threading
from datetime import timedelta

import pytest

from esper.sanctum import NotableKind, RunStatus, SanctumAggregator, SanctumSnapshot
from esper.sanctum.schema import PPOStats, ReturnStats, Throughput
from esper.sanctum.widgets import render_run_header
from esper.telemetry.events import TelemetryEventType
from esper.telemetry.hub import TelemetryHub
from esper.telemetry.jsonl import JsonlSink


def fed(*event_lists, **kwargs) -> SanctumAggregator:
    aggregator = SanctumAggregator(**kwargs)
    for events in event_lists:
        aggregator.feed(events if isinstance(events, list) else [events])
    return aggregator


def kinds(snapshot: SanctumSnapshot) -> list[NotableKind]:
    return [e.kind for e in snapshot.events]


def test_before_any_event_everything_is_missing_not_defaulted():
    s = SanctumAggregator().snapshot()
    assert s.status is RunStatus.WAITING
    assert (s.current_batch, s.max_batches) == (0, 0)
    assert s.group_id is None and s.env_steps is None and s.elapsed_seconds is None
    assert s.ppo == PPOStats() and s.returns == ReturnStats() and s.throughput == Throughput()
    assert s.events == ()


def test_training_started_sets_identity_and_max_batches(events):
    s = fed(events.started(max_batches=100)).snapshot()
    assert s.status is RunStatus.RUNNING
    assert (s.group_id, s.task, s.device, s.seed) == (events.group_id, "cartpole", "cpu", 7)
    assert (s.n_envs, s.horizon) == (8, 16)
    assert (s.current_batch, s.max_batches, s.env_steps) == (0, 100, 0)
    assert kinds(s) == [NotableKind.STARTED]


def test_the_start_note_counts_its_batches_in_words(events):
    one = fed(events.started(max_batches=1)).snapshot()
    assert [note.message for note in one.events] == ["started: 1 batch"]


def test_batch_completed_follows_current_batch_and_latest_stats(events):
    s = fed(events.run(max_batches=100, batches=25)).snapshot()
    assert (s.current_batch, s.max_batches) == (25, 100)
    assert s.env_steps == 25 * 128
    assert s.ppo.approx_kl == 0.008 and s.ppo.learning_rate == 2.5e-4
    assert s.returns.mean == 35.0 and s.returns.max == 45.0 and s.returns.batch == 25
    assert s.returns.history[-3:] == (33.0, 34.0, 35.0)
    assert s.throughput.sps == 640.0
    assert s.throughput.rollout_share == pytest.approx(0.15)
    assert s.throughput.update_share == pytest.approx(0.80)
    assert s.throughput.other_share == pytest.approx(0.05)
    assert s.throughput.process_memory_mb is None and s.throughput.cuda_memory_mb is None
    assert NotableKind.ANOMALY not in kinds(s)


def test_memory_fields_pass_through(events):
    batch = events.batch(1, process_memory_mb=512.0, cuda_memory_mb=1536.0)
    s = fed(events.started(), batch).snapshot()
    assert (s.throughput.process_memory_mb, s.throughput.cuda_memory_mb) == (512.0, 1536.0)


def test_returns_carry_over_a_batch_without_finished_episodes_with_their_batch(events):
    s = fed(events.run(10, 2), events.batch(3, episodes_finished=0)).snapshot()
    assert s.current_batch == 3
    assert (s.returns.mean, s.returns.batch) == (12.0, 2)


def test_resume_appended_to_the_same_file_starts_a_new_run_view(events):
    first = [*events.run(max_batches=50, batches=25), events.interrupted(25)]
    aggregator = fed(first, events.started(max_batches=75, start_batch=25))
    s = aggregator.snapshot()
    assert (s.current_batch, s.max_batches, s.start_batch) == (25, 75, 25)
    assert s.status is RunStatus.RUNNING and s.reason is None
    assert s.ppo == PPOStats()  # no update statistics of the old invocation
    # The returns of the surviving batches stay on show, as if the run never stopped.
    assert s.returns.batch == 25 and s.returns.history[-3:] == (33.0, 34.0, 35.0)
    assert s.events[0].kind is NotableKind.RESUMED and "25/75" in s.events[0].message
    assert NotableKind.INTERRUPTED in kinds(s)  # the log spans both invocations

    aggregator.handle(events.batch(26))
    s = aggregator.snapshot()
    assert (s.current_batch, s.max_batches) == (26, 75)
    assert NotableKind.ANOMALY not in kinds(s)


def test_a_resume_from_an_earlier_checkpoint_supersedes_the_later_batches(events):
    # Batches 1-30 with a checkpoint at 25, then a crash; the resume from 25 replays 26-30.
    first = [*events.run(max_batches=40, batches=25), events.checkpoint(25)]
    first += [events.batch(b, approx_kl=0.03 if b == 28 else 0.008) for b in range(26, 31)]
    first.append(events.checkpoint(30))
    aggregator = fed(first, events.started(max_batches=40, start_batch=25))
    s = aggregator.snapshot()
    assert s.returns.batch == 25 and s.returns.history[-1] == 35.0  # batch 25's mean
    assert len(s.returns.history) == 25
    logged = [(e.kind, e.batch) for e in s.events]
    assert all(batch is None or batch <= 25 for _, batch in logged)  # no 28 warning, no 30 save
    assert s.events[0].message == (
        "resumed at 25/40; batches 26-30 of the earlier invocation superseded"
    )
    aggregator.feed([events.batch(b, episode_return_mean=100.0 + b) for b in (26, 27)])
    s = aggregator.snapshot()
    assert NotableKind.ANOMALY not in kinds(s)
    assert s.returns.history[-4:] == (34.0, 35.0, 126.0, 127.0)  # each batch once


def evaluated_run(events, returns: list[float]) -> list:
    """Batches 1..N, each evaluated while training and checkpointed."""
    run, best = [events.started(max_batches=len(returns))], None
    for batch, value in enumerate(returns, start=1):
        best = value if best is None else max(best, value)
        run += [events.batch(batch), events.evaluated(batch, value, best), events.checkpoint(batch)]
    return run


@pytest.mark.parametrize(
    "returns, best_after_rewind",
    [
        ([50.0, 100.0, 60.0, 90.0, 120.0], None),  # best.pt was batch 5's: the rewind drops it
        ([50.0, 100.0, 60.0, 90.0, 80.0], 100.0),  # best.pt is batch 2's: it stays
        ([50.0, 100.0, 60.0, 100.0, 100.0], 100.0),  # a tie never replaced batch 2's
    ],
)
def test_a_rewind_shows_no_evaluation_of_a_discarded_batch(events, returns, best_after_rewind):
    """Like ``eval --checkpoint best``, the panel never shows a batch the rewind discarded."""
    aggregator = fed(evaluated_run(events, returns), events.started(max_batches=4, start_batch=3))
    shown = aggregator.snapshot().evaluation
    assert (shown.batch, shown.return_mean) == (3, 60.0)
    assert shown.best_return_mean == best_after_rewind
    # The next evaluation's best is the trainer's (best.pt's, or its own after a drop).
    aggregator.feed([events.batch(4), events.evaluated(4, 70.0, max(70.0, best_after_rewind or 0))])
    shown = aggregator.snapshot().evaluation
    assert (shown.batch, shown.best_return_mean) == (4, max(70.0, best_after_rewind or 0))


def test_a_resume_from_the_last_batch_keeps_its_evaluation(events):
    aggregator = fed(evaluated_run(events, [50.0, 100.0, 60.0]))
    aggregator.handle(events.started(max_batches=5, start_batch=3))
    shown = aggregator.snapshot().evaluation
    assert (shown.batch, shown.return_mean, shown.best_return_mean) == (3, 60.0, 100.0)


def test_attach_to_a_resumed_runs_file_shows_the_effective_history(tmp_path, events):
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for event in [*events.run(max_batches=6, batches=5), events.checkpoint(3)]:
        sink.handle(event)
    sink.handle(events.started(max_batches=6, start_batch=3))
    for b in (4, 5, 6):
        sink.handle(events.batch(b, episode_return_mean=50.0 + b))
    sink.handle(events.completed(6))
    sink.close()
    s = SanctumAggregator.from_file(tmp_path / "telemetry.jsonl").snapshot()
    assert s.returns.history == (11.0, 12.0, 13.0, 54.0, 55.0, 56.0)
    assert (s.current_batch, s.status) == (6, RunStatus.COMPLETED)
    assert NotableKind.ANOMALY not in kinds(s)


def test_batch_past_max_batches_is_an_anomaly_and_does_not_change_max(events):
    s = fed(events.run(max_batches=3, batches=4)).snapshot()
    assert (s.current_batch, s.max_batches) == (4, 3)
    assert s.events[0].kind is NotableKind.ANOMALY
    assert "past max_batches 3" in s.events[0].message


def test_completion_at_another_batch_count_is_an_anomaly(events):
    s = fed(events.run(max_batches=5, batches=4), events.completed(final_batch=4)).snapshot()
    assert s.max_batches == 5 and s.status is RunStatus.COMPLETED
    anomalies = [e.message for e in s.events if e.kind is NotableKind.ANOMALY]
    assert anomalies == [
        "completed at batch 4, not at max_batches 5; max_batches kept from TRAINING_STARTED"
    ]


def test_out_of_order_and_missing_batch_numbers_are_anomalies(events):
    s = fed(events.run(10, 2), events.batch(5)).snapshot()
    assert s.current_batch == 5
    assert "batch 5 came after batch 2" in s.events[0].message
    s = fed(events.run(10, 2), events.batch(None)).snapshot()
    assert s.current_batch == 3
    assert s.events[0].kind is NotableKind.ANOMALY


def test_events_of_another_run_are_ignored_as_anomalies(events):
    s = fed(events.run(10, 2), events.batch(3, group_id="someone-else")).snapshot()
    assert s.current_batch == 2
    assert "someone-else" in s.events[0].message


def test_completed_status(events):
    s = fed(events.run(3, 3), events.checkpoint(3), events.completed(3)).snapshot()
    assert s.status is RunStatus.COMPLETED and s.reason is None
    assert kinds(s)[:2] == [NotableKind.COMPLETED, NotableKind.CHECKPOINT]
    assert s.eta_seconds is None


def test_failed_status_carries_the_reason(events):
    failure = events.failed(4, "non-finite value_loss in batch 4", last_good=3)
    s = fed(events.run(10, 3), failure).snapshot()
    assert s.status is RunStatus.FAILED
    assert s.reason == "non-finite value_loss in batch 4 (last checkpoint: batch 3)"
    assert s.events[0].kind is NotableKind.FAILED


def test_another_run_starting_keeps_the_earlier_runs_log_whole(events):
    first = [*events.run(10, 3), events.interrupted(3)]
    s = fed(first, events.started(max_batches=5, group_id="another-run")).snapshot()
    assert (NotableKind.INTERRUPTED, 3) in [(e.kind, e.batch) for e in s.events]


def test_the_header_names_the_ranks_and_their_devices(events, render):
    started = events.started(
        max_batches=50,
        n_envs=1024,
        max_epochs=64,
        device="cuda:0",
        world_size=2,
        env_device_counts={"cuda:0": 512, "cuda:1": 512},
    )
    text = render(render_run_header(fed(started).snapshot()), width=120)
    assert "cartpole on cuda:0, cuda:1  2 ranks" in text


def test_the_header_shows_the_agents_and_the_critic(events, render):
    started = events.started(max_batches=50, n_agents=3, critic="central")
    snapshot = fed(started).snapshot()
    assert (snapshot.n_agents, snapshot.critic) == (3, "central")
    assert "agents: 3 (central critic)" in render(render_run_header(snapshot), width=120)
    assert "agents" not in render(render_run_header(fed(events.started()).snapshot()), width=120)


def test_interrupted_status_carries_the_reason_and_resume_point(events):
    s = fed(events.run(10, 3), events.interrupted(3, "SIGTERM received")).snapshot()
    assert s.status is RunStatus.INTERRUPTED
    assert s.reason == "SIGTERM received; resume from batch 3"


def test_every_event_type_has_a_handler():
    assert set(SanctumAggregator()._handlers) == set(TelemetryEventType)


def test_evaluation_appended_after_completion_is_logged_without_changing_status(events):
    s = fed(events.run(3, 3), events.completed(3), events.evaluated(3)).snapshot()
    assert s.status is RunStatus.COMPLETED
    assert s.events[0].kind is NotableKind.EVALUATION
    assert s.events[0].message == (
        "checkpoint 3: return 187.5 ± 12.2 over 10 deterministic episodes"
    )


def test_unhealthy_metric_is_logged_once_when_it_turns_bad(events):
    batches = [events.batch(1), events.batch(2, approx_kl=0.03), events.batch(3, approx_kl=0.03)]
    batches.append(events.batch(4, approx_kl=0.09))
    batches.append(events.batch(5, grad_norm=math.nan))
    s = fed(events.started(10), batches).snapshot()
    warnings = [(e.batch, e.message) for e in s.events if e.kind is NotableKind.WARNING]
    assert warnings == [
        (5, "grad_norm is nan"),
        (4, "KL too high: approx_kl 0.09 above 0.05"),
        (2, "KL too high: approx_kl 0.03 above 0.02"),
    ]


def test_a_metric_hovering_about_its_threshold_is_warned_about_once(events):
    # Explained variance once CartPole is solved: a little either side of 0, batch after batch.
    values = [0.5, -0.1, 0.2, -0.1, 0.3, -0.05, 0.1, -0.2, 0.05, -0.1]
    batches = [events.batch(b, explained_variance=v) for b, v in enumerate(values, start=1)]
    s = fed(events.started(20), batches).snapshot()
    warnings = [(e.batch, e.message) for e in s.events if e.kind is NotableKind.WARNING]
    assert warnings == [(2, "explained variance negative: explained_variance -0.1 below 0")]


def test_a_metric_that_settled_back_is_warned_about_again_when_it_turns_bad(events):
    values = [-0.1, 0.3, 0.3, 0.3, 0.3, 0.3, -0.2]
    batches = [events.batch(b, explained_variance=v) for b, v in enumerate(values, start=1)]
    s = fed(events.started(20), batches).snapshot()
    assert [e.batch for e in s.events if e.kind is NotableKind.WARNING] == [7, 1]


def test_elapsed_and_eta_come_from_event_timestamps(events):
    # started at T0, batches every 2 s: batch 2 at T0+4s; "now" is T0+5s.
    now = events.t0 + timedelta(seconds=5)
    aggregator = fed(events.run(max_batches=10, batches=2), clock=lambda: now)
    s = aggregator.snapshot()
    assert s.elapsed_seconds == 5.0
    assert s.eta_seconds == pytest.approx(2.0 * 8)
    aggregator.handle(events.completed(10))  # stamped T0+6s
    s = aggregator.snapshot()
    assert s.elapsed_seconds == 6.0 and s.eta_seconds is None


def test_snapshot_is_immutable(events):
    s = fed(events.run(10, 1)).snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.current_batch = 5  # type: ignore[misc]
    assert isinstance(s.events, tuple) and isinstance(s.returns.history, tuple)


def test_works_as_a_hub_subscriber(events):
    hub = TelemetryHub()
    aggregator = SanctumAggregator()
    hub.subscribe(aggregator)
    for event in [*events.run(3, 3), events.completed(3)]:
        hub.emit(event)
    hub.close()
    assert hub.healthy
    s = aggregator.snapshot()
    assert (s.current_batch, s.max_batches, s.status) == (3, 3, RunStatus.COMPLETED)


def test_reads_a_file_skipping_a_partial_last_line(tmp_path, events):
    path = tmp_path / "telemetry.jsonl"
    sink = JsonlSink(path)
    for event in events.run(75, 2):
        sink.handle(event)
    sink.close()
    with path.open("a") as fh:
        fh.write(events.batch(3).to_json()[:40])  # a writer killed mid-line
    s = SanctumAggregator.from_file(path).snapshot()
    assert (s.current_batch, s.max_batches) == (2, 75)
    assert NotableKind.ANOMALY not in kinds(s)


def test_thread_safety_smoke(events):
    """A writer and readers at once: every snapshot is whole (no torn state)."""
    aggregator = SanctumAggregator()
    aggregator.handle(events.started(max_batches=2000))
    batches = [events.batch(b, policy_loss=float(b)) for b in range(1, 2001)]
    torn: list[SanctumSnapshot] = []
    done = threading.Event()

    def read() -> None:
        last = 0
        while not done.is_set():
            s = aggregator.snapshot()
            if s.current_batch < last or (
                s.current_batch
                and (s.ppo.policy_loss, s.env_steps) != (s.current_batch, s.current_batch * 128)
            ):
                torn.append(s)
            last = s.current_batch

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    aggregator.feed(batches)
    done.set()
    for reader in readers:
        reader.join()
    assert not torn
    assert aggregator.snapshot().current_batch == 2000


def test_task_facts_and_statistics_reach_the_snapshot_with_their_history(events):
    """A resume from batch 2 drops batch 3's statistic from the sparkline."""
    first = [
        events.started(max_batches=10, task_facts={"param_budget": 4000}),
        *[events.batch(b, task_statistics={"paid_fraction": b / 10}) for b in (1, 2, 3)],
        events.batch(4, task_statistics={"paid_fraction": None}),
    ]
    s = fed(first).snapshot()
    assert s.task_stats.facts == {"param_budget": 4000}
    assert s.task_stats.statistics == {"paid_fraction": None} and s.task_stats.batch == 4
    assert s.task_stats.history["paid_fraction"] == (0.1, 0.2, 0.3)  # None is no point
    resumed = fed(first, events.started(max_batches=10, start_batch=2, task_facts={"a": 1}))
    s = resumed.snapshot()
    assert s.task_stats.facts == {"a": 1}
    assert s.task_stats.history["paid_fraction"] == (0.1, 0.2) and s.task_stats.batch == 2
