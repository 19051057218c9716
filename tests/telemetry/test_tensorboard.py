"""`esper ppo --tensorboard` writes CleanRL-named scalars that TensorBoard itself reads back."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from esper.cli import app
from esper.config.schema import PPOConfig
from esper.runs.directory import RunDir, prepare_run_dir
from esper.sanctum.aggregator import SanctumAggregator
from esper.telemetry.events import BatchCompletedPayload, TelemetryEvent, TelemetryEventType
from esper.telemetry.field import Absent
from esper.telemetry.jsonl import effective_history, read_events
from esper.telemetry.metrics import BATCH_FIELDS, TENSORBOARD_TAGS, VIDEO_TAG

SMALL = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--no-sanctum"]
STEPS_PER_BATCH = 8 * 16


def ppo(run_dir: Path, *args: str) -> None:
    result = CliRunner().invoke(
        app, ["ppo", "--run-dir", str(run_dir), "--tensorboard", *SMALL, *args]
    )
    assert result.exit_code == 0, result.output


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar as TensorBoard shows it: ``tag -> [(step, value), ...]``."""
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def batches(run_dir: Path) -> dict[int, BatchCompletedPayload]:
    """The surviving BATCH_COMPLETED of each env step, from the JSONL record."""
    return {
        e.data.env_steps: e.data
        for e in read_events(run_dir / "telemetry.jsonl")
        if isinstance(e.data, BatchCompletedPayload)
    }


def completed_batches(events: list[TelemetryEvent]) -> list[int | None]:
    return [e.batch for e in events if e.event_type is TelemetryEventType.BATCH_COMPLETED]


def check_against_record(run_dir: Path, expected_steps: list[int]) -> None:
    logged = scalars(run_dir)
    record = batches(run_dir)
    finished = [s for s in expected_steps if record[s].episodes_finished > 0]
    assert finished, "no episode finished: the episode scalars went untested"
    assert set(logged) == set(TENSORBOARD_TAGS)
    for tag, name in TENSORBOARD_TAGS.items():
        per_episode = BATCH_FIELDS[name].absent is Absent.NO_EPISODE
        assert [step for step, _ in logged[tag]] == (finished if per_episode else expected_steps)
        for step, value in logged[tag]:
            assert value == pytest.approx(getattr(record[step], name), rel=1e-5, abs=1e-7), tag


# What CleanRL's ppo.py writes (vwxyzjn/cleanrl, cleanrl/ppo.py), by the BATCH_COMPLETED
# field that means the same. CleanRL's losses/old_approx_kl has no esper counterpart.
CLEANRL_TAGS = {
    "charts/episodic_return": "episode_return_mean",
    "charts/episodic_length": "episode_length_mean",
    "charts/learning_rate": "learning_rate",
    "charts/SPS": "sps",
    "losses/value_loss": "value_loss",
    "losses/policy_loss": "policy_loss",
    "losses/entropy": "entropy",
    "losses/approx_kl": "approx_kl",
    "losses/clipfrac": "clip_fraction",
    "losses/explained_variance": "explained_variance",
}


def test_tags_are_cleanrls_own_names() -> None:
    assert {tag: TENSORBOARD_TAGS.get(tag) for tag in CLEANRL_TAGS} == CLEANRL_TAGS
    # The one tag CleanRL does not write is esper's own, and says so in its description.
    extra = set(TENSORBOARD_TAGS) - set(CLEANRL_TAGS)
    assert extra == {"losses/grad_norm"}
    assert "CleanRL does not log it" in BATCH_FIELDS["grad_norm"].description


def test_scalars_land_at_env_steps_and_a_resume_continues_the_axis(tmp_path: Path) -> None:
    ppo(tmp_path, "--episodes", "3")
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3)])

    ppo(tmp_path, "--episodes", "2", "--start-episode", "3")
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3, 4, 5)])


def test_a_resume_from_an_earlier_checkpoint_hides_the_superseded_steps(tmp_path: Path) -> None:
    ppo(tmp_path, "--episodes", "4", "--checkpoint-every", "2")
    ppo(tmp_path, "--episodes", "1", "--start-episode", "2", "--overwrite")
    # Batches 3 and 4 of the first invocation are gone; batch 3 is the new one.
    check_against_record(tmp_path, [STEPS_PER_BATCH * b for b in (1, 2, 3)])
    # The JSONL record keeps everything; its readers see each batch once.
    raw = list(read_events(tmp_path / "telemetry.jsonl"))
    assert completed_batches(raw) == [1, 2, 3, 4, 3]
    assert completed_batches(effective_history(raw)) == [1, 2, 3]
    shown = SanctumAggregator.from_file(tmp_path / "telemetry.jsonl").snapshot()
    assert (shown.current_batch, shown.returns.batch) == (3, 3)
    assert len(shown.returns.history) == 3


def test_overwrite_clears_the_old_tensorboard_logs(tmp_path: Path) -> None:
    run_dir = RunDir(tmp_path)
    run_dir.checkpoint_path(1).parent.mkdir(parents=True)
    run_dir.checkpoint_path(1).write_bytes(b"x")
    run_dir.tensorboard_dir.mkdir()
    (run_dir.tensorboard_dir / "events.out.tfevents.old").write_bytes(b"x")
    prepare_run_dir(PPOConfig(run_dir=str(tmp_path), overwrite=True))
    assert not run_dir.tensorboard_dir.exists()


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    result = CliRunner().invoke(
        app, ["ppo", "--run-dir", str(tmp_path / "run"), "--tensorboard", *SMALL]
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "--tensorboard" in lines[0]
    assert "pip install 'esper-rl[tensorboard]'" in lines[0]
    assert not (tmp_path / "run" / "telemetry.jsonl").exists()  # failed before training


def test_evaluations_go_to_tensorboard_under_eval_names(tmp_path: Path) -> None:
    """SB3's EvalCallback names, against the env steps of the evaluated batch."""
    import esper

    esper.train(
        episodes=2, run_dir=str(tmp_path), tensorboard=True, eval_every=1, eval_episodes=1,
        n_envs=4, horizon=8, n_minibatches=1, device="cpu", progress=False,
    )  # fmt: skip
    drawn = scalars(tmp_path)
    assert [step for step, _ in drawn["eval/mean_reward"]] == [32, 64]
    assert len(drawn["eval/std_reward"]) == len(drawn["eval/mean_ep_length"]) == 2


def test_videos_go_to_tensorboard_as_their_path_at_their_batch(tmp_path: Path) -> None:
    """TensorBoard plays no MP4: each video's path, as text, at the batch's env steps."""
    pytest.importorskip("imageio_ffmpeg")
    import esper

    esper.train(
        episodes=2, run_dir=str(tmp_path), tensorboard=True, video_every=1,
        n_envs=4, horizon=8, n_minibatches=1, device="cpu", progress=False,
    )  # fmt: skip
    accumulator = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    accumulator.Reload()
    texts = accumulator.Tensors(f"{VIDEO_TAG}/text_summary")  # add_text's own suffix
    assert [text.step for text in texts] == [32, 64]
    for batch, text in enumerate(texts, start=1):
        written = tmp_path / "videos" / f"batch_{batch:06d}.mp4"
        assert written.is_file()
        assert f"`{written}`" in text.tensor_proto.string_val[0].decode()
