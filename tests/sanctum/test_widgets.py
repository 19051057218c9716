"""Each widget rendered to text, as a user would read it."""

from __future__ import annotations

import dataclasses
import math

import pytest
from rich.text import Text

from esper.sanctum import NotableEvent, NotableKind, RunStatus, SanctumSnapshot, render_dashboard
from esper.sanctum import format as fmt
from esper.sanctum.health import HEALTH_STYLE, THRESHOLDS, Health
from esper.sanctum.schema import EvaluationStats, PPOStats, ReturnStats, TaskStats, Throughput
from esper.sanctum.widgets import (
    render_batch_progress,
    render_event_log,
    render_metrics_panel,
    render_run_header,
    render_status_banner,
    render_task_panel,
    render_throughput_panel,
)

RUNNING = SanctumSnapshot(
    group_id="cartpole-1a2b3c4d",
    task="cartpole",
    device="cuda:0",
    seed=7,
    n_envs=64,
    horizon=128,
    current_batch=25,
    max_batches=100,
    env_steps=204_800,
    elapsed_seconds=83.4,
    eta_seconds=250.0,
    status=RunStatus.RUNNING,
    ppo=PPOStats(
        policy_loss=-0.0123,
        value_loss=19.04,
        entropy=0.6812,
        approx_kl=0.0084,
        clip_fraction=0.119,
        explained_variance=0.52,
        learning_rate=2.5e-4,
        grad_norm=1.17,
    ),
    returns=ReturnStats(
        mean=35.5,
        min=9.0,
        max=120.0,
        length_mean=35.5,
        episodes_finished=12,
        batch=25,
        history=(10.0, 20.0, 35.5),
    ),
    throughput=Throughput(
        sps=8123.4,
        rollout_share=0.15,
        update_share=0.8,
        other_share=0.05,
        process_memory_mb=612.0,
        cuda_memory_mb=None,
    ),
)


def style_of(text: Text, substring: str) -> str:
    """The style a user sees on ``substring`` inside a rendered Text."""
    start = text.plain.index(substring)
    styles = [str(span.style) for span in text.spans if span.start <= start < span.end]
    return styles[-1] if styles else ""


@pytest.mark.parametrize(
    ("current", "max_batches", "expected"),
    [
        (25, 100, "B:██░░░░░░ 25/100"),
        (0, 50, "B:░░░░░░░░ 0/50"),
        (25, 75, "B:██░░░░░░ 25/75"),
        (100, 100, "B:████████ 100/100"),
        (120, 100, "B:████████ 120/100"),  # clamped at 100%
        (3, 0, "B:3"),  # max_batches unknown: no bar, no made-up denominator
        (3, -1, "B:3"),
    ],
)
def test_batch_progress(current, max_batches, expected):
    assert render_batch_progress(current, max_batches, width=8) == expected


def test_batch_progress_has_width_cells():
    bar = render_batch_progress(1, 3, width=12)
    assert bar == "B:████░░░░░░░░ 1/3"


def test_run_header_shows_identity_progress_and_timing(render):
    text = render(render_run_header(RUNNING))
    assert "cartpole-1a2b3c4d" in text and "cartpole on cuda:0" in text
    assert "64 envs × 128 steps" in text
    assert "B:██░░░░░░ 25/100" in text
    assert "elapsed 0:01:23" in text and "ETA 0:04:10" in text
    assert "SPS 8,123" in text and "steps 204,800" in text


def test_run_header_of_a_resumed_run(render):
    resumed = SanctumSnapshot(
        group_id="r",
        task="cartpole",
        device="cpu",
        start_batch=25,
        current_batch=25,
        max_batches=75,
        status=RunStatus.RUNNING,
    )
    text = render(render_run_header(resumed))
    assert "B:██░░░░░░ 25/75" in text and "resumed from batch 25" in text


def test_run_header_before_training_started_invents_nothing(render):
    text = render(render_run_header(SanctumSnapshot()))
    assert "waiting for TRAINING_STARTED" in text
    assert "B:0 " in text and "/" not in text.split("B:0")[1].split("\n")[0]
    assert "ETA -" in text and "SPS -" in text and "elapsed -" in text


def test_status_banner_shows_status_and_batch(render):
    text = render(render_status_banner(RUNNING))
    assert "RUNNING" in text and "Batch:25/100" in text
    assert "KL 0.0084" in text and "EV 0.52" in text


def test_status_banner_without_max_batches(render):
    snapshot = SanctumSnapshot(current_batch=3, status=RunStatus.RUNNING)
    text = render(render_status_banner(snapshot))
    assert "Batch:3 " in text or text.rstrip().endswith("Batch:3")
    assert "Batch:3/" not in text
    assert "waiting for the first batch" in text


def test_status_banner_colours_each_metric_by_health():
    bad = PPOStats(approx_kl=0.08, entropy=0.05, explained_variance=0.3, value_loss=math.nan)
    flow = render_status_banner(SanctumSnapshot(status=RunStatus.RUNNING, ppo=bad))
    banner = Text("  ").join(flow.items)
    assert style_of(banner, "0.08") == HEALTH_STYLE[Health.CRITICAL]
    assert style_of(banner, "0.05") == HEALTH_STYLE[Health.WARNING]
    assert style_of(banner, "0.3") == HEALTH_STYLE[Health.OK]
    assert style_of(banner, "nan") == HEALTH_STYLE[Health.CRITICAL]


@pytest.mark.parametrize(
    ("status", "reason", "word"),
    [
        (RunStatus.FAILED, "non-finite value_loss in batch 4", "FAILED"),
        (RunStatus.INTERRUPTED, "SIGINT received; resume from batch 3", "INTERRUPTED"),
    ],
)
def test_the_dashboard_ends_with_why_the_run_ended(render, status, reason, word):
    text = render(render_dashboard(SanctumSnapshot(status=status, reason=reason)))
    assert word in text
    # Below the event log, not wedged between the banner and the panels: what
    # the command prints next (the resume command) follows it.
    lines = text.rstrip().splitlines()
    assert lines[-1].strip() == f"{status.value}: {reason}"
    assert lines[-2].startswith("╰")


def test_metrics_panel(render):
    text = render(render_metrics_panel(RUNNING))
    assert "mean 35.5  min 9.0  max 120.0" in text
    assert "▁▄█" in text  # the sparkline of (10, 20, 35.5)
    assert "(batch 25: 12 episodes)" in text
    for shown in ("Policy loss  -0.0123", "Approx KL   0.0084", "Expl var", "0.520", "2.50e-04"):
        assert shown in text


def test_metrics_panel_before_the_first_batch(render):
    text = render(render_metrics_panel(SanctumSnapshot(status=RunStatus.RUNNING)))
    assert "waiting (no episode finished yet)" in text
    assert "Policy loss  -" in text and "Grad norm" in text
    assert "0.0" not in text  # no value appears that no event gave


def test_metrics_panel_shows_nan_as_nan(render):
    snapshot = SanctumSnapshot(ppo=PPOStats(value_loss=math.nan))
    assert "Value loss  nan" in render(render_metrics_panel(snapshot))


def test_throughput_panel(render):
    text = render(render_throughput_panel(RUNNING))
    assert "SPS          8,123" in text
    assert "rollout      15%" in text and "update       80%" in text and "other        5%" in text
    assert "process mem  612 MB" in text
    assert "CUDA" not in text  # absent, not shown as zero


def test_throughput_panel_with_cuda_and_before_any_batch(render):
    snapshot = SanctumSnapshot(throughput=Throughput(sps=1.0, cuda_memory_mb=1536.0))
    assert "CUDA mem     1.50 GB" in render(render_throughput_panel(snapshot))
    text = render(render_throughput_panel(SanctumSnapshot()))
    assert "SPS          -" in text and "rollout      -" in text and "process mem  -" in text


def test_event_log_newest_first(render):
    events = (
        NotableEvent(NotableKind.FAILED, "non-finite grad_norm", 4, "2026-01-01T12:00:09+00:00"),
        NotableEvent(NotableKind.CHECKPOINT, "saved batch_000003.pt", 3, None),
        NotableEvent(NotableKind.STARTED, "started: 10 batches", 0, "2026-01-01T12:00:00+00:00"),
    )
    text = render(render_event_log(SanctumSnapshot(events=events)))
    lines = [line for line in text.splitlines() if "B" in line and "│" in line]
    assert ["failed" in lines[0], "checkpoint" in lines[1], "started" in lines[2]] == [True] * 3
    assert "non-finite grad_norm" in lines[0] and "B4" in lines[0]


def test_event_log_when_empty(render):
    assert "no notable events yet" in render(render_event_log(SanctumSnapshot()))


@pytest.mark.parametrize("width", [60, 80, 200])
@pytest.mark.parametrize(
    "snapshot",
    [SanctumSnapshot(), RUNNING, SanctumSnapshot(status=RunStatus.FAILED, reason="x" * 300)],
)
def test_whole_dashboard_renders_at_any_width(render, snapshot, width):
    text = render(render_dashboard(snapshot, footer="q to quit"), width=width)
    assert "Sanctum" in text and "q to quit" in text
    assert max(len(line) for line in text.splitlines()) <= width


def test_the_dashboard_is_readable_at_80_columns() -> None:
    """No number cut (``SPS 76,6…``) and no field split over two lines: panels
    stack below 100 columns, and the header breaks lines between fields."""
    import dataclasses
    import io

    from rich.console import Console

    busy = dataclasses.replace(
        RUNNING,
        current_batch=2_500,
        max_batches=10_000,
        env_steps=123_456_789,
        throughput=dataclasses.replace(
            RUNNING.throughput, sps=76_612.3, process_memory_mb=12_345.0, cuda_memory_mb=40_960.0
        ),
    )
    out = io.StringIO()
    Console(file=out, width=80, color_system=None, legacy_windows=False).print(
        render_dashboard(busy)
    )
    text = out.getvalue()
    assert "…" not in text, text
    assert all(len(line) <= 80 for line in text.splitlines())
    for whole in ("SPS 76,612", "steps 123,456,789", "2500/10000", "12.06 GB", "40.00 GB"):
        assert any(whole in line for line in text.splitlines()), (whole, text)
    assert "(batch 25: 12 episodes)" in text


# A run with every panel of the dashboard populated: resumed, several ranks,
# evaluating while training, CUDA memory, events, and an ending.
EVERYTHING = dataclasses.replace(
    RUNNING,
    world_size=2,
    start_batch=1_200,
    current_batch=2_500,
    max_batches=10_000,
    env_steps=123_456_789,
    throughput=dataclasses.replace(
        RUNNING.throughput, sps=76_612.3, process_memory_mb=12_345.0, cuda_memory_mb=40_960.0
    ),
    evaluation=EvaluationStats(
        return_mean=-12_345.5,
        return_std=987.25,
        episodes=10,
        batch=2_400,
        best_return_mean=-9_876.5,
    ),
    events=(
        NotableEvent(NotableKind.EVALUATION, "eval -12345.5 ± 987.2", 2_400, None),
        NotableEvent(NotableKind.CHECKPOINT, "saved batch_002400.pt", 2_400, None),
    ),
    status=RunStatus.INTERRUPTED,
    reason="SIGINT received; resume from batch 2500",
)


@pytest.mark.parametrize("value_loss", [1.0, 19.04, 123.4, 1.234e5, -1.5e-7])
@pytest.mark.parametrize("entropy", [0.5, 12.25, 1.5e-9])
def test_every_number_is_whole_at_80_columns(render, value_loss, entropy):
    """Every field keeps its label and value on one line at 80 columns (``KL``
    was left at a line's end with ``0.0084`` on the next), whatever the widths of
    the fields before it, with every panel populated."""
    ppo = dataclasses.replace(RUNNING.ppo, value_loss=value_loss, entropy=entropy)
    snapshot = dataclasses.replace(EVERYTHING, ppo=ppo)
    lines = render(render_dashboard(snapshot, footer="q to quit"), width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert not any("…" in line for line in lines)
    banner = [f"{t.label} {fmt.number(getattr(ppo, m), '.3g')}" for m, t in THRESHOLDS.items()]
    whole = [
        *banner,
        "Batch:2500/10000",
        "B:██░░░░░░ 2500/10000",
        "SPS 76,612",
        "steps 123,456,789",
        "resumed from batch 1200",
        "2 ranks",
        "-12345.5 ± 987.2 (B2400)",
        "best -9876.5",
        "12.06 GB",
        "40.00 GB",
        "Approx KL   0.0084",
        "(batch 25: 12 episodes)",
        "resume from batch 2500",
    ]
    for field in whole:
        assert any(field in line for line in lines), (field, "\n".join(lines))


GROWING = dataclasses.replace(
    RUNNING,
    task="probe-mask",
    task_stats=TaskStats(
        facts={"host_params": 1_234, "param_budget": 40_000, "slot_ids": ["r0", "r1", "r2"]},
        statistics={"paid_fraction": 0.875, "validation_accuracy_at_episode_end": None},
        history={"paid_fraction": (0.3, 0.5, 0.875), "validation_accuracy_at_episode_end": ()},
        batch=25,
    ),
)


def test_the_task_panel_shows_each_declared_statistic_with_its_trend(render) -> None:
    text = render(render_task_panel(GROWING), width=80)
    assert "Task: probe-mask" in text
    paid = next(line for line in text.splitlines() if "paid_fraction" in line)
    assert "0.875" in paid and "▁" in paid and "█" in paid  # value, and its course
    assert "host_params 1234" in text and "slot_ids r0,r1,r2" in text
    absent = next(line for line in text.splitlines() if "validation_accuracy" in line)
    assert "-" in absent  # nothing to report this batch: shown as missing


def test_the_task_panel_is_absent_without_statistics_and_fits_80_columns(render) -> None:
    assert render_task_panel(RUNNING) is None
    assert "Task:" not in render(render_dashboard(RUNNING), width=80)
    text = render(render_dashboard(GROWING), width=80)
    assert "Task: probe-mask" in text and "0.875" in text
    assert all(len(line) <= 80 for line in text.splitlines())


TEAM = dataclasses.replace(EVERYTHING, n_agents=3, critic="central")


def test_several_agents_show_in_the_header_and_the_return_is_the_teams(render) -> None:
    assert "Team return" not in render(render_metrics_panel(EVERYTHING), width=80)
    lines = render(render_dashboard(TEAM, footer="q to quit"), width=80).splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert not any("…" in line for line in lines)
    returns = TEAM.returns
    whole = [
        "agents: 3 (central critic)",
        f"Team return  mean {fmt.number(returns.mean, '.1f')}",
        f"max {fmt.number(returns.max, '.1f')}",
        f"(batch {returns.batch}: {returns.episodes_finished} episodes)",
    ]
    for field in whole:
        assert any(field in line for line in lines), (field, "\n".join(lines))
