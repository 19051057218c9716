"""`esper plot` draws learning curves from telemetry.jsonl: a resumed run as one line,
runs that differ only by seed as one line in a confidence band."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib import colormaps
from matplotlib.image import imread
from typer.testing import CliRunner

from esper.cli import app
from esper.runs.curves import read_curves
from esper.runs.seed_groups import group_runs
from esper.telemetry.events import (
    BatchCompletedPayload,
    EvaluationCompletedPayload,
    TelemetryEvent,
    TelemetryEventType,
    TrainingStartedPayload,
)
from esper.telemetry.jsonl import JsonlSink
from esper.workflows.plot import _labels, clipped_bar, return_range

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_plot")

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]
STEPS_PER_BATCH = 8 * 16

runner = CliRunner()


def lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 batches, then a resume for 2 more: two TRAINING_STARTED in one file."""
    run_dir = tmp_path_factory.mktemp("resumed")
    for args in (["--episodes", "3"], ["--episodes", "2", "--start-episode", "3"]):
        result = runner.invoke(app, ["ppo", "--run-dir", str(run_dir), *SMALL, *args])
        assert result.exit_code == 0, result.output
    return run_dir


def test_plot_of_a_resumed_run_writes_a_png_of_the_expected_size(
    resumed_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "figures" / "curves.png"
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(output), "--dpi", "80"])
    assert result.exit_code == 0, result.output
    assert str(output) in result.output
    height, width, _ = imread(output).shape
    assert (width, height) == (12 * 80, round(7.5 * 80))  # the default 12 x 7.5 inches


def test_a_resumed_run_is_one_continuous_series(resumed_run: Path) -> None:
    curves = read_curves(resumed_run)
    assert list(curves.batches) == [1, 2, 3, 4, 5]
    assert curves.env_steps == [STEPS_PER_BATCH * b for b in range(1, 6)]
    assert curves.resumes == [3 * STEPS_PER_BATCH]
    assert curves.task == "cartpole"


def _started(
    start_batch: int, env_steps: int, task: str = "cartpole", seed: int = 1, **config
) -> TrainingStartedPayload:
    return TrainingStartedPayload(
        n_envs=1,
        max_epochs=10,
        max_batches=start_batch + 4,
        start_batch=start_batch,
        task=task,
        device="cpu",
        seed=seed,
        policy_params=10,
        config={"task": task, "seed": seed, "learning_rate": 0.002, **config},
        env_steps=env_steps,
    )


def _batch(env_steps: int, value_loss: float, ret: float | None = None) -> BatchCompletedPayload:
    return BatchCompletedPayload(
        env_steps=env_steps,
        sps=100.0,
        batch_seconds=0.1,
        episodes_finished=0 if ret is None else 1,
        episode_return_mean=ret,
        episode_return_min=ret,
        episode_return_max=ret,
        episode_length_mean=None if ret is None else 10.0,
        policy_loss=0.0,
        value_loss=value_loss,
        entropy=0.6,
        approx_kl=0.0,
        clip_fraction=0.0,
        explained_variance=0.0,
        learning_rate=1e-3,
        grad_norm=0.5,
    )


def test_a_resume_from_an_earlier_batch_supersedes_what_followed_it(tmp_path: Path) -> None:
    # Batches 1..4, then a resume from batch 2's checkpoint that ran batch 3 again.
    records = [(TelemetryEventType.TRAINING_STARTED, None, _started(0, 0))]
    records += [(TelemetryEventType.BATCH_COMPLETED, b, _batch(10 * b, 1.0)) for b in (1, 2, 3, 4)]
    records += [
        (TelemetryEventType.TRAINING_STARTED, 2, _started(2, 20)),
        (TelemetryEventType.BATCH_COMPLETED, 3, _batch(30, 2.0)),
    ]
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for kind, batch, payload in records:
        sink.handle(TelemetryEvent(event_type=kind, group_id="run", data=payload, batch=batch))
    sink.close()
    curves = read_curves(tmp_path)
    assert curves.series("value_loss") == ([10, 20, 30], [1.0, 1.0, 2.0])


def test_runs_are_labelled_by_their_directory_name() -> None:
    paths = [Path("a/cartpole"), Path("b/cartpole"), Path("runs/acrobot")]
    assert _labels(paths) == ["a/cartpole", "b/cartpole", "acrobot"]


def test_missing_matplotlib_is_one_line_naming_the_extra(
    resumed_run: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "pip install 'esper-rl[plot]'" in result.output


def test_a_missing_run_dir_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "no telemetry" in result.output


def test_an_unknown_image_format_is_one_line(resumed_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", str(resumed_run), "-o", str(tmp_path / "c.xyz")])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "cannot write '.xyz'" in result.output
    assert not (tmp_path / "c.xyz").exists()


def test_a_superseded_resume_draws_no_resume_marker(tmp_path: Path) -> None:
    # 1..4, a resume from 3 that crashed after batch 4, then a resume from 2.
    records = [(TelemetryEventType.TRAINING_STARTED, None, _started(0, 0))]
    records += [(TelemetryEventType.BATCH_COMPLETED, b, _batch(10 * b, 1.0)) for b in (1, 2, 3)]
    records += [(TelemetryEventType.TRAINING_STARTED, 3, _started(3, 30))]
    records += [(TelemetryEventType.BATCH_COMPLETED, 4, _batch(40, 1.0))]
    records += [(TelemetryEventType.TRAINING_STARTED, 2, _started(2, 20))]
    records += [(TelemetryEventType.BATCH_COMPLETED, 3, _batch(30, 2.0))]
    sink = JsonlSink(tmp_path / "telemetry.jsonl")
    for kind, batch, payload in records:
        sink.handle(TelemetryEvent(event_type=kind, group_id="run", data=payload, batch=batch))
    sink.close()
    curves = read_curves(tmp_path)
    assert curves.resumes == [20]
    assert curves.series("value_loss") == ([10, 20, 30], [1.0, 1.0, 2.0])


def _write_run(
    run_dir: Path,
    returns: list[float],
    *,
    task: str = "cartpole",
    seed: int = 1,
    evaluation: EvaluationCompletedPayload | None = None,
    **config,
) -> Path:
    """A finished run's telemetry: one batch of 10 env steps per return."""
    sink = JsonlSink(run_dir / "telemetry.jsonl")
    started = _started(0, 0, task, seed, run_dir=str(run_dir), **config)
    sink.handle(TelemetryEvent(TelemetryEventType.TRAINING_STARTED, "run", data=started))
    for batch, ret in enumerate(returns, start=1):
        payload = _batch(10 * batch, 1.0, ret)
        sink.handle(TelemetryEvent(TelemetryEventType.BATCH_COMPLETED, "run", payload, batch=batch))
    if evaluation is not None:
        sink.handle(TelemetryEvent(TelemetryEventType.EVALUATION_COMPLETED, "run", evaluation))
    sink.close()
    return run_dir


def _seeds(tmp_path: Path, finals: list[float], **config) -> list[Path]:
    """CartPole runs named cp-s1, cp-s2, ...: the same config, their own seed and curve."""
    return [
        _write_run(tmp_path / f"cp-s{seed}", [final / 2, final], seed=seed, **config)
        for seed, final in enumerate(finals, start=1)
    ]


def _band_pixels(png: Path, color_index: int = 0) -> int:
    """Pixels of the band's colour: the line's tab10 colour at 25% over white."""
    rgb = np.asarray(colormaps["tab10"](color_index)[:3])
    band = 1 - 0.25 * (1 - rgb)
    image = imread(png)[..., :3]
    return int((np.abs(image - band).max(axis=-1) < 0.02).sum())


def test_runs_differing_only_by_seed_are_one_line_and_other_settings_another(
    tmp_path: Path,
) -> None:
    seeds = _seeds(tmp_path, [100.0, 200.0, 300.0])
    other = _write_run(tmp_path / "fast", [50.0, 60.0], learning_rate=0.01)
    groups = group_runs([read_curves(d) for d in [*seeds, other]])
    assert [(g.label, len(g.runs)) for g in groups] == [("cp (3 seeds)", 3), ("fast", 1)]
    steps, centre, low, high = groups[0].band("episode_return_mean")
    assert steps == [10, 20]
    assert centre == [100.0, 200.0]
    assert 100.0 <= low[1] < 200.0 < high[1] <= 300.0  # bootstrap 95% interval of the mean


def test_the_band_is_drawn_for_seeds_and_not_for_a_lone_run(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, [100.0, 250.0, 400.0])
    with_band, lone = tmp_path / "seeds.png", tmp_path / "lone.png"
    for dirs, output in ((seeds, with_band), (seeds[:1], lone)):
        result = runner.invoke(app, ["plot", *map(str, dirs), "-o", str(output), "--dpi", "60"])
        assert result.exit_code == 0, result.output
    assert _band_pixels(with_band) > 1000
    assert _band_pixels(lone) < 50


def test_iqm_ignores_one_outlying_seed_and_smoothing_averages_batches(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, [200.0, 200.0, 200.0, 200.0, 10_000.0])
    (group,) = group_runs([read_curves(d) for d in seeds])
    assert group.band("episode_return_mean", stat="iqm")[1] == [100.0, 200.0]
    assert group.band("episode_return_mean", stat="mean")[1][1] == pytest.approx(2160.0)
    smoothed = group.band("episode_return_mean", stat="iqm", smooth=2)[1]
    assert smoothed == [100.0, 150.0]  # batch 2 averaged with batch 1


def test_tasks_with_different_return_scales_need_normalize(tmp_path: Path) -> None:
    cartpole = _write_run(tmp_path / "cartpole", [100.0, 400.0])
    acrobot = _write_run(tmp_path / "acrobot", [-500.0, -90.0], task="acrobot")
    output = tmp_path / "both.png"
    result = runner.invoke(app, ["plot", str(cartpole), str(acrobot), "-o", str(output)])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "different return scales" in result.output and "--normalize" in result.output
    assert not output.exists()
    normalized = [str(cartpole), str(acrobot), "-o", str(output), "--normalize", "--dpi", "40"]
    result = runner.invoke(app, ["plot", *normalized])
    assert result.exit_code == 0, result.output
    assert output.is_file()


def test_labels_and_title_name_the_lines_and_must_match_their_number(tmp_path: Path) -> None:
    seeds = _seeds(tmp_path, [100.0, 300.0])
    output = tmp_path / "c.png"
    args = ["plot", *map(str, seeds), "-o", str(output), "--dpi", "40", "--title", "CartPole"]
    result = runner.invoke(app, [*args, "--label", "PPO", "--label", "extra"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "2 label(s) for 1 line(s)" in result.output
    result = runner.invoke(app, [*args, "--label", "PPO", "--smooth", "3", "--stat", "iqm"])
    assert result.exit_code == 0, result.output
    assert group_runs([read_curves(d) for d in seeds], ["PPO"])[0].label == "PPO"


def test_evaluation_bars_stay_inside_the_task_return_range(tmp_path: Path) -> None:
    evaluation = EvaluationCompletedPayload(
        checkpoint_batch=2,
        episodes=10,
        deterministic=True,
        return_mean=490.0,
        return_std=30.0,
        return_min=400.0,
        return_max=500.0,
        length_mean=490.0,
        seed=1,
    )
    assert return_range("cartpole") == return_range("gym:CartPole-v1") == (0.0, 500.0)
    assert return_range("gym-async:CartPole-v1") == (0.0, 500.0)
    assert clipped_bar(evaluation, return_range("cartpole")) == (460.0, 500.0)
    assert clipped_bar(evaluation, None) == (460.0, 520.0)  # a task of unknown range
    run = _write_run(tmp_path / "evaluated", [300.0, 480.0], evaluation=evaluation)
    result = runner.invoke(app, ["plot", str(run), "-o", str(tmp_path / "e.png"), "--dpi", "40"])
    assert result.exit_code == 0, result.output


def test_a_tune_dir_stands_for_its_trials(tmp_path: Path) -> None:
    from esper.runs.curves import expand_run_dirs

    trials = [tmp_path / "tune" / "trials" / f"trial-{n}" for n in range(2)]
    for trial in trials:
        trial.mkdir(parents=True)
        (trial / "telemetry.jsonl").write_text("")
    (tmp_path / "tune" / "study.db").write_text("")
    assert expand_run_dirs([tmp_path / "tune"]) == trials
    assert expand_run_dirs([trials[0]]) == [trials[0]]  # a run stands for itself


def test_a_run_with_several_agents_is_drawn_as_the_team_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    run_dir = tmp_path / "roles"
    args = ["ppo", "--task", "probe-roles", "--run-dir", str(run_dir), "--episodes", "2"]
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-sanctum"])
    assert result.exit_code == 0, result.output
    curves = read_curves(run_dir)
    assert curves.n_agents == 2 and curves.task_statistic_names() == [
        "agent_0_return",
        "agent_1_return",
    ]
    drawn: list[list[str]] = []
    save = Figure.savefig

    def saved(fig, *a, **k):
        drawn.append([ax.get_title(loc="left") for ax in fig.axes])
        return save(fig, *a, **k)

    monkeypatch.setattr(Figure, "savefig", saved)
    output = tmp_path / "roles.png"
    result = runner.invoke(app, ["plot", str(run_dir), "-o", str(output), "--dpi", "40"])
    assert result.exit_code == 0, result.output
    (titles,) = drawn
    assert titles[0] == "Team return: probe-roles"
    assert {"agent_0_return", "agent_1_return"} <= set(titles)
