"""Evaluation while training: --eval-every, best.pt, --stop-at, and videos of episodes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.config.schema import PPOConfig
from esper.envs.render import HEIGHT, RENDERERS, WIDTH
from esper.runs.directory import RunDir
from esper.telemetry.events import (
    EvaluationCompletedPayload,
    TelemetryEventType,
    TrainingCompletedPayload,
)
from esper.telemetry.jsonl import read_events
from esper.training.checkpoint import load_checkpoint, save_checkpoint
from esper.training.evaluation import Evaluator
from esper.training.state import build_state
from esper.workflows.evaluate import run_episodes

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_evaluation")

runner = CliRunner()
SMALL = {"n_envs": 8, "horizon": 16, "device": "cpu", "progress": False}


def events_of(run_dir: Path, kind: TelemetryEventType) -> list:
    return [e for e in read_events(run_dir / "telemetry.jsonl") if e.event_type is kind]


def test_stop_at_ends_a_cartpole_run_early_and_best_pt_loads(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["ppo", "--run-dir", str(run_dir), "--episodes", "30", "--envs", "16"]
    args += ["--horizon", "64", "--device", "cpu", "--no-sanctum"]
    args += ["--eval-every", "3", "--eval-episodes", "8", "--stop-at", "150"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output

    evaluations = [e.data for e in events_of(run_dir, TelemetryEventType.EVALUATION_COMPLETED)]
    assert evaluations and all(e.during_training and e.deterministic for e in evaluations)
    assert evaluations[-1].return_mean >= 150
    (done,) = events_of(run_dir, TelemetryEventType.TRAINING_COMPLETED)
    assert isinstance(done.data, TrainingCompletedPayload)
    assert done.data.final_batch < 30 and done.data.final_batch % 3 == 0
    assert "target return 150" in done.data.reason and "reached" in done.message
    assert done.data.final_batch in RunDir(run_dir).checkpoints()  # the stop is resumable

    policy = esper.load_policy(run_dir, checkpoint="best")
    best = max(evaluations, key=lambda e: e.return_mean)
    assert policy.checkpoint_batch == best.checkpoint_batch
    assert evaluations[-1].best_return_mean == best.return_mean
    assert policy(torch.zeros(4)).shape == ()
    shown = runner.invoke(app, ["eval", str(run_dir), "--checkpoint", "best", "--episodes", "3"])
    assert (
        shown.exit_code == 0 and f"checkpoint best (batch {best.checkpoint_batch})" in shown.output
    )


def _final_state(run_dir: Path, **settings) -> tuple[list[dict], dict]:
    outcome = esper.train(
        "cartpole", 4, run_dir=str(run_dir), normalize_obs=True, seed=3, **SMALL, **settings
    )
    assert outcome.status == "completed"
    saved = load_checkpoint(RunDir(run_dir).checkpoint_path(4))
    return outcome.history, saved


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_evaluating_does_not_change_training_bit_for_bit(tmp_path: Path, recurrent: str) -> None:
    """Nor a recurrent run's: the evaluator keeps its own memory, never the rollout's."""
    plain_history, plain = _final_state(tmp_path / "plain", recurrent=recurrent)
    eval_history, evaluated = _final_state(
        tmp_path / "eval", eval_every=1, eval_episodes=5, recurrent=recurrent
    )
    assert len(events_of(tmp_path / "eval", TelemetryEventType.EVALUATION_COMPLETED)) == 4
    timing = {"sps", "batch_seconds", "rollout_seconds", "update_seconds", "process_memory_mb"}
    for a, b in zip(plain_history, eval_history, strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }
    for key in ("policy", "obs_normalizer"):  # the normaliser is read, never updated
        for name, tensor in plain[key].items():
            assert torch.equal(tensor, evaluated[key][name]), (key, name)
    assert torch.equal(plain["rng"]["torch"], evaluated["rng"]["torch"])
    assert torch.equal(plain["env"]["state"], evaluated["env"]["state"])
    if recurrent != "none":  # the rollout's memory, carried into the next batch
        assert plain["memory"] is not None and plain["memory"].abs().sum() > 0
        assert torch.equal(plain["memory"], evaluated["memory"])


def test_an_evaluation_leaves_the_normaliser_and_the_streams_as_they_were(tmp_path: Path) -> None:
    config = PPOConfig(n_envs=4, horizon=8, device="cpu", normalize_obs=True, eval_every=1)
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    normalizer = state.obs_normalizer
    assert normalizer is not None
    normalizer.update(torch.randn(64, 4) * 3 + 1)  # not the identity, so it matters
    before = {k: v.clone() for k, v in normalizer.state_dict().items()}
    torch_stream = torch.get_rng_state()
    evaluator = Evaluator.for_run(state, RunDir(tmp_path))
    assert evaluator is not None
    first = evaluator.evaluate()
    assert all(torch.equal(v, normalizer.state_dict()[k]) for k, v in before.items())
    assert torch.equal(torch_stream, torch.get_rng_state())
    assert evaluator.evaluate() == first  # seeded by the run's seed and the batch
    state.batch += 1
    assert evaluator.evaluate().seed != first.seed


def _mark_best(path: Path, return_mean: float) -> None:
    saved = load_checkpoint(path)
    save_checkpoint(path, {**saved, "evaluation": {"batch": 0, "return_mean": return_mean}})


@pytest.mark.parametrize(("marked", "replaced"), [(1e9, False), (-1e9, True)])
def test_a_resume_keeps_a_better_best_and_replaces_a_worse_one(
    tmp_path: Path, marked: float, replaced: bool
) -> None:
    run_dir = tmp_path / "run"
    settings = {"run_dir": str(run_dir), "eval_every": 2, "eval_episodes": 4, **SMALL}
    assert esper.train("cartpole", 2, checkpoint_every=2, **settings).status == "completed"
    best = run_dir / "checkpoints" / "best.pt"
    _mark_best(best, marked)
    assert esper.train("cartpole", 2, resume=True, **settings).status == "completed"
    evaluation = events_of(run_dir, TelemetryEventType.EVALUATION_COMPLETED)[-1].data
    assert isinstance(evaluation, EvaluationCompletedPayload)
    assert evaluation.checkpoint_batch == 4
    saved = load_checkpoint(best)
    if replaced:
        assert saved["batch"] == 4 and evaluation.best_return_mean == evaluation.return_mean
    else:
        assert saved["evaluation"]["return_mean"] == marked
        assert evaluation.best_return_mean == marked


def test_stop_at_without_eval_every_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ppo", "--run-dir", str(tmp_path / "r"), "--stop-at", "100"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "esper: error: --stop-at: needs evaluations to compare with: set --eval-every too"
    ]


@pytest.mark.parametrize("task", sorted(RENDERERS))
def test_each_built_in_renderer_draws_its_state(task: str) -> None:
    draw = RENDERERS[task].draw
    still, moved = draw(np.zeros(4)), draw(np.array([0.4, 0.5, 0.3, 0.0]))
    assert still.shape == (HEIGHT, WIDTH, 3) and still.dtype == np.uint8
    assert (still != 255).any() and not np.array_equal(still, moved)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("video") / "run"
    assert esper.train("cartpole", 2, run_dir=str(run_dir), **SMALL).status == "completed"
    return run_dir


def test_eval_video_has_one_frame_per_step_of_its_episodes(trained: Path, tmp_path: Path) -> None:
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    video = tmp_path / "clips" / "out.mp4"
    args = ["eval", str(trained), "--episodes", "3", "--seed", "5", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--video", str(video), "--video-episodes", "2"])
    assert result.exit_code == 0, result.output
    # The video's episodes are the first two of one copy seeded like the evaluation.
    lengths = run_episodes(esper.load_policy(trained), 2, seed=5, copies=1).lengths
    reader = imageio.get_reader(video)
    try:
        assert reader.count_frames() == int(lengths.sum())
        assert reader.get_data(0).shape == (HEIGHT, WIDTH, 3)
    finally:
        reader.close()


def test_video_every_writes_a_video_per_due_batch(tmp_path: Path, capsys) -> None:
    pytest.importorskip("imageio_ffmpeg")
    run_dir = tmp_path / "run"
    settings = SMALL | {"progress": True}  # plain lines: stdout is not a terminal here
    outcome = esper.train("pendulum", 2, run_dir=str(run_dir), video_every=2, **settings)
    assert outcome.status == "completed"
    assert sorted(p.name for p in (run_dir / "videos").iterdir()) == ["batch_000002.mp4"]
    # Said where it went: a console line and a VIDEO_SAVED event.
    written = str(run_dir / "videos" / "batch_000002.mp4")
    assert f"video: {written} (200 frames)" in capsys.readouterr().out
    (saved,) = events_of(run_dir, TelemetryEventType.VIDEO_SAVED)
    assert (saved.data.path, saved.data.batch, saved.data.frames) == (written, 2, 200)


def test_a_missing_video_extra_is_one_line_naming_it(
    trained: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "imageio", None)  # import imageio raises ImportError
    result = runner.invoke(app, ["eval", str(trained), "--video", str(tmp_path / "v.mp4")])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("esper: error: --video:") and "esper-rl[video]" in line
    assert not (tmp_path / "v.mp4").exists()


def test_a_task_without_a_renderer_is_refused_before_the_run(tmp_path: Path) -> None:
    args = ["ppo", "--task", "probe-constant", "--run-dir", str(tmp_path / "r")]
    result = runner.invoke(app, [*args, "--video-every", "1", "--device", "cpu"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("esper: error: --video-every: task probe-constant has no renderer")
    assert not (tmp_path / "r").exists()


def test_sanctum_shows_the_latest_evaluation_and_the_best(tmp_path: Path) -> None:
    from rich.console import Console

    from esper.sanctum import SanctumAggregator
    from esper.sanctum.widgets import render_metrics_panel

    run_dir = tmp_path / "run"
    settings = {"eval_every": 1, "eval_episodes": 3, **SMALL}
    assert esper.train("cartpole", 2, run_dir=str(run_dir), **settings).status == "completed"
    snapshot = SanctumAggregator.from_file(run_dir / "telemetry.jsonl").snapshot()
    evaluations = [e.data for e in events_of(run_dir, TelemetryEventType.EVALUATION_COMPLETED)]
    assert snapshot.evaluation.batch == 2
    assert snapshot.evaluation.return_mean == evaluations[-1].return_mean
    best = max(e.return_mean for e in evaluations)
    assert snapshot.evaluation.best_return_mean == best
    console = Console(width=80, record=True)
    console.print(render_metrics_panel(snapshot))
    assert f"(B2)  best {best:.1f}" in console.export_text()


def test_plot_draws_evaluations_while_training_at_their_env_steps(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from esper.runs.curves import read_curves
    from esper.workflows.plot import plot_runs

    run_dir = tmp_path / "run"
    settings = {"eval_every": 1, "eval_episodes": 3, **SMALL}
    assert esper.train("cartpole", 2, run_dir=str(run_dir), **settings).status == "completed"
    points = read_curves(run_dir).evaluation_points()
    assert [x for x, _ in points] == [128, 256]  # 8 envs x 16 steps per batch
    assert plot_runs([run_dir], tmp_path / "curves.png").stat().st_size > 0


def test_an_evaluation_reads_the_host_once(tmp_path: Path, monkeypatch) -> None:
    from esper.runtime.host_sync import host_reads_forbidden
    from esper.training.episodes import play_episodes

    config = PPOConfig(n_envs=4, horizon=8, device="cpu", eval_every=1, eval_episodes=6)
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    evaluator = Evaluator.for_run(state, RunDir(tmp_path))
    assert evaluator is not None
    env = esper.envs.make("cartpole", 3, "cpu", seed=0)
    with host_reads_forbidden():  # every step of every episode stays on the device
        episodes = play_episodes(env, evaluator.act, 6, seed=0, check_every=None)
    reads: list[str] = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: reads.append("cpu") or original(t))
    stats = episodes.summary()
    assert reads == ["cpu"] and stats["length_min"] <= stats["length_mean"] <= stats["length_max"]


def test_an_evaluation_in_training_is_esper_eval_of_its_checkpoint(tmp_path: Path) -> None:
    """best.pt and --stop-at rest on it: on a normalize_obs run, the evaluation after
    batch N equals ``esper eval --checkpoint N`` with the same seed and episodes."""
    from esper.workflows.evaluate import evaluate

    run_dir = tmp_path / "run"
    settings = SMALL | {"normalize_obs": True, "checkpoint_every": 2}
    esper.train("cartpole", 4, run_dir=str(run_dir), eval_every=2, eval_episodes=6, **settings)
    during = [e.data for e in events_of(run_dir, TelemetryEventType.EVALUATION_COMPLETED)]
    assert [e.checkpoint_batch for e in during] == [2, 4]
    for seen in during:
        again = evaluate(
            run_dir, seen.checkpoint_batch, 6, seed=seen.seed, device="cpu", record=False
        ).payload
        fields = ("return_mean", "return_std", "return_min", "return_max", "length_mean")
        assert [getattr(again, f) for f in fields] == [getattr(seen, f) for f in fields]
    assert load_checkpoint(run_dir / "checkpoints" / "batch_000002.pt")["obs_normalizer"]
