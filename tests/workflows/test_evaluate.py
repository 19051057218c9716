"""`esper eval` and `esper.load_policy`: a trained checkpoint, run for complete episodes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.envs import DiscreteSpace
from esper.telemetry.console import ConsoleSink
from esper.telemetry.events import EvaluationCompletedPayload, TelemetryEventType
from esper.telemetry.jsonl import read_events
from esper.training.checkpoint import load_checkpoint
from esper.workflows.evaluate import run_episodes

# Its tests share a module fixture and the session's solved CartPole (with
# tests/training/test_learning.py): one worker runs them all, building each once.
pytestmark = pytest.mark.xdist_group("solved_cartpole")

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]

runner = CliRunner()


def lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def last_event(run_dir: Path):
    return list(read_events(run_dir / "telemetry.jsonl"))[-1]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny batches, a checkpoint after each: an untrained policy, short episodes."""
    run_dir = tmp_path_factory.mktemp("short")
    result = runner.invoke(
        app,
        ["ppo", "--run-dir", str(run_dir), "--episodes", "2", "--checkpoint-every", "1", *SMALL],
    )
    assert result.exit_code == 0, result.output
    return run_dir


def test_eval_of_solved_cartpole_reports_a_solved_mean_return(solved_cartpole) -> None:
    run_dir = solved_cartpole.run_dir
    result = runner.invoke(app, ["eval", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "return" in result.output and "100 deterministic episodes" in result.output

    event = last_event(run_dir)
    assert event.event_type is TelemetryEventType.EVALUATION_COMPLETED
    data = event.data
    assert isinstance(data, EvaluationCompletedPayload)
    assert (data.episodes, data.deterministic, data.seed) == (100, True, 0)
    assert data.return_mean >= 475, (data, solved_cartpole.returns)
    assert data.checkpoint_batch == event.batch == solved_cartpole.final_batch
    checkpoint = run_dir / "checkpoints" / f"batch_{solved_cartpole.final_batch:06d}.pt"
    assert event.group_id == load_checkpoint(checkpoint)["run_id"]
    assert f"{data.return_mean:.2f}" in result.output


def test_load_policy_is_a_callable_with_the_spaces(solved_cartpole) -> None:
    policy = esper.load_policy(solved_cartpole.run_dir)
    assert policy.obs_dim == 4
    assert policy.action_space == DiscreteSpace(2)
    assert policy.checkpoint_batch == solved_cartpole.final_batch
    obs = torch.zeros(5, 4)
    actions = policy(obs)
    assert actions.shape == (5,) and actions.dtype == torch.int64
    assert torch.equal(actions, policy(obs))  # deterministic by default
    single = policy(np.zeros(4, dtype=np.float64))
    assert single.shape == () and int(single) in (0, 1)


def test_run_episodes_counts_exactly_the_episodes_asked_for(short_run: Path) -> None:
    policy = esper.load_policy(short_run, checkpoint=1)
    # 10 episodes on 4 copies: copies 0 and 1 give three, copies 2 and 3 two.
    first = run_episodes(policy, 10, seed=3, copies=4, check_every=8)
    assert first.returns.shape == first.lengths.shape == (10,)
    assert (first.lengths >= 1).all()
    assert torch.equal(first.returns, first.lengths.double())  # CartPole: +1 per step
    again = run_episodes(policy, 10, seed=3, copies=4, check_every=8)
    assert torch.equal(first.returns, again.returns)


def test_the_host_reads_only_once_every_check_every_steps(short_run: Path, monkeypatch) -> None:
    policy = esper.load_policy(short_run, checkpoint=1)
    reads: list[str] = []
    for name in ("__bool__", "item", "tolist", "cpu"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    episodes = run_episodes(policy, 4, seed=0, copies=4, check_every=16)
    monkeypatch.undo()
    checks = reads.count("__bool__")
    assert reads == ["__bool__"] * checks + ["cpu", "cpu"]  # the checks, then the results
    assert (checks - 1) * 16 < int(episodes.lengths.max()) <= checks * 16


def test_stochastic_eval_of_a_chosen_checkpoint(short_run: Path) -> None:
    args = ["--checkpoint", "1", "--episodes", "6", "--stochastic", "--seed", "4"]
    result = runner.invoke(app, ["eval", str(short_run), *args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    event = last_event(short_run)
    assert isinstance(event.data, EvaluationCompletedPayload)
    assert (event.batch, event.data.episodes) == (1, 6)
    assert (event.data.deterministic, event.data.seed) == (False, 4)
    # A learned policy's record says no scripted policy played; cartpole has no
    # episode statistics of its own.
    assert (event.data.scripted, event.data.episode_statistics) == (None, {})
    line = ConsoleSink().format(event)
    assert line is not None and line.startswith("evaluation of batch 1: return")


def test_missing_run_dir_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path / "nowhere"), "--device", "cpu"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "RUN_DIR" in result.output and "does not exist" in result.output


def test_run_dir_without_checkpoints_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "no checkpoints" in result.output and "esper ppo --run-dir" in result.output


def test_a_missing_checkpoint_lists_the_existing_ones(short_run: Path) -> None:
    result = runner.invoke(app, ["eval", str(short_run), "--checkpoint", "7", "--device", "cpu"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "--checkpoint" in result.output
    assert "checkpoints exist for batch 1, 2" in result.output


def test_a_damaged_checkpoint_is_one_line_naming_an_intact_one(
    short_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(short_run, run_dir)
    (run_dir / "checkpoints" / "batch_000002.pt").write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["eval", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "damaged" in result.output and "(--checkpoint=1)" in result.output
    assert "--start-episode" not in result.output and "Traceback" not in result.output


def test_episodes_below_one_is_one_line(short_run: Path) -> None:
    result = runner.invoke(app, ["eval", str(short_run), "--episodes", "0", "--device", "cpu"])
    assert result.exit_code == 2
    assert len(lines(result)) == 1, result.output
    assert "--episodes" in result.output


def test_eval_of_a_file_says_to_give_its_run_directory(short_run: Path) -> None:
    checkpoint = short_run / "checkpoints" / "batch_000002.pt"
    result = runner.invoke(app, ["eval", str(checkpoint), "--device", "cpu"])
    assert result.exit_code == 2
    [line] = lines(result)
    assert "does not exist" not in line
    assert f"is a file; give its run directory: {short_run} --checkpoint 2" in line


def test_a_task_module_that_cannot_be_imported_does_not_blame_a_flag(
    short_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "copy"
    shutil.copytree(short_run, run_dir)
    path = run_dir / "checkpoints" / "batch_000002.pt"
    saved = load_checkpoint(path)
    saved["config"]["task"] = "esper_no_such_module_here:Factory"
    torch.save(saved, path)
    result = runner.invoke(app, ["eval", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 2
    [line] = lines(result)
    assert "--task" not in line and "Traceback" not in result.output
    assert "trained on task 'esper_no_such_module_here:Factory'" in line
    assert "cannot import esper_no_such_module_here" in line


def test_a_video_of_a_task_with_no_renderer_is_refused_before_any_episode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import esper.workflows.evaluate as evaluate_module
    from esper.runtime.errors import ConfigError

    outcome = esper.train("probe-constant", episodes=1, run_dir=str(tmp_path), progress=False)
    assert outcome.status == "completed"

    def no_episodes(*args, **kwargs):
        raise AssertionError("episodes ran before the video was refused")

    monkeypatch.setattr(evaluate_module, "run_episodes", no_episodes)
    with pytest.raises(ConfigError, match="has no renderer"):
        evaluate_module.evaluate(tmp_path, video=tmp_path / "v.mp4")


def test_eval_of_best_says_it_is_best(short_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(short_run, run_dir)
    shutil.copy(run_dir / "checkpoints" / "batch_000001.pt", run_dir / "checkpoints" / "best.pt")
    args = ["--episodes", "2", "--device", "cpu"]
    best = runner.invoke(app, ["eval", str(run_dir), "--checkpoint", "best", *args])
    assert best.exit_code == 0, best.output
    assert "checkpoint best (batch 1) (" in best.output
    newest = runner.invoke(app, ["eval", str(run_dir), *args])
    assert "checkpoint batch 2 (" in newest.output and "best (" not in newest.output
