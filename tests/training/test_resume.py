"""A resumed run continues exactly where the checkpoint left it (on CPU)."""

from __future__ import annotations

from pathlib import Path

import torch
from small_runs import train_history

from esper.training.checkpoint import load_checkpoint


def test_two_plus_two_equals_four_bit_for_bit(tmp_path: Path) -> None:
    straight = train_history(tmp_path / "straight", 4)
    train_history(tmp_path / "split", 2)
    resumed = train_history(tmp_path / "split", 2, start=2)
    assert resumed == straight[2:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name
    for part in ("obs_normalizer", "reward_scaler"):
        for name, tensor in a[part].items():
            assert torch.equal(tensor, b[part][name]), (part, name)
    assert torch.equal(a["env"]["state"], b["env"]["state"])


def test_resume_with_other_shapes_is_refused_naming_the_setting(tmp_path: Path) -> None:
    import pytest

    from esper.runtime.errors import ConfigError

    train_history(tmp_path, 1)
    with pytest.raises(ConfigError) as info:
        train_history(tmp_path, 1, start=1, n_envs=16)
    assert info.value.setting == "n_envs" and "n_envs=8" in info.value.message
    with pytest.raises(ConfigError) as info:
        train_history(tmp_path, 1, start=1, hidden_sizes=(32, 32))
    assert "hidden_sizes" in info.value.message


def test_device_and_checkpoint_interval_may_change_on_resume(tmp_path: Path) -> None:
    """A checkpoint written on another machine's GPU resumes here: the device is
    the invocation's, never the checkpoint's (cuda:7, which fails on this one)."""
    import json

    import esper
    from esper.runtime.device import resolve_device

    train_history(tmp_path, 1)
    path = tmp_path / "checkpoints" / "batch_000001.pt"
    saved = load_checkpoint(path)
    saved["config"]["device"] = "cuda:7"  # as a run on another machine's GPU records it
    torch.save(saved, path)
    settings = {"n_envs": 8, "horizon": 32, "n_minibatches": 4, "progress": False}
    # No --device: "auto" picks this machine's (the CPU here), not the checkpoint's.
    outcome = esper.train(
        episodes=1, run_dir=str(tmp_path), resume=True, checkpoint_every=5, **settings
    )
    assert outcome.status == "completed", outcome.reason
    assert (outcome.config.device, outcome.config.checkpoint_every) == ("auto", 5)
    lines = (tmp_path / "telemetry.jsonl").read_text().splitlines()
    started = [json.loads(line) for line in lines if "TRAINING_STARTED" in line]
    assert started[-1]["data"]["device"] == str(resolve_device("auto"))


def test_a_run_resumes_across_the_speedups_switch(tmp_path: Path) -> None:
    """Trained with training/speedups.py's tricks, resumed without them and back:
    the checkpoints load either way, and the weights match resuming with them to
    float rounding."""
    train_history(tmp_path / "on", 2)
    train_history(tmp_path / "on", 2, start=2)
    train_history(tmp_path / "off", 2)
    train_history(tmp_path / "off", 1, start=2, speedups=False)
    train_history(tmp_path / "off", 1, start=3)
    on = load_checkpoint(tmp_path / "on" / "checkpoints" / "batch_000004.pt")
    off = load_checkpoint(tmp_path / "off" / "checkpoints" / "batch_000004.pt")
    assert on["optimizer"]["steps"] == off["optimizer"]["steps"] > 0
    for name, tensor in on["policy"].items():
        torch.testing.assert_close(off["policy"][name], tensor, rtol=1e-3, atol=1e-4)


def test_a_resume_reads_its_checkpoint_once(tmp_path: Path, monkeypatch) -> None:
    """The newest intact checkpoint, its config and the restore: one read of the file."""
    import esper

    esper.train(
        "cartpole", 2, n_envs=8, horizon=8, device="cpu", run_dir=str(tmp_path), progress=False
    )
    reads: list[str] = []
    real_load = torch.load

    def counting_load(path, *args, **kwargs):
        reads.append(Path(path).name)
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    outcome = esper.train(
        "cartpole", 1, n_envs=8, horizon=8, device="cpu", run_dir=str(tmp_path), resume=True,
        progress=False,
    )  # fmt: skip
    assert outcome.status == "completed" and outcome.final_batch == 3
    assert reads == ["batch_000002.pt"]


def test_a_resume_refuses_a_seed_or_horizon_it_cannot_honour(tmp_path: Path) -> None:
    """A resume continues the saved random streams and counts env steps as batches x
    envs x horizon: a new --seed would be recorded but unused, a new --max-epochs
    would make every step count wrong. Both are refused; the same values resume."""
    from typer.testing import CliRunner

    from esper.cli import app

    tiny = ["--envs", "4", "--device", "cpu", "--no-sanctum", "--run-dir", str(tmp_path)]

    def esper(*args: str):
        return CliRunner().invoke(app, ["ppo", "--episodes", "1", *tiny, *args])

    assert esper("--max-epochs", "8", "--seed", "3").exit_code == 0
    for flag, value, saved in (("--seed", "5", "seed=3"), ("--max-epochs", "16", "horizon=8")):
        refused = esper("--resume", flag, value)
        assert refused.exit_code == 2, refused.output
        assert refused.output.strip() == (
            f"esper: error: {flag}: batch_000001.pt was made with {saved}, not {value}; "
            "resume with the checkpoint's value"
        )
    assert esper("--resume", "--seed", "3", "--max-epochs", "8").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir())[-1] == "batch_000002.pt"


def test_a_resume_says_what_it_carried_over_and_a_target_can_be_cleared(tmp_path: Path) -> None:
    """A run that stopped at --stop-at: its resume names the settings it kept
    (console and TRAINING_STARTED), says the target was reached; --eval-every 0 turns
    the kept target off with the evaluations; --stop-at none clears it."""
    import json

    from typer.testing import CliRunner

    from esper.cli import app

    tiny = ["--envs", "4", "--max-epochs", "8", "--device", "cpu", "--no-sanctum"]
    tiny += ["--set", "n_minibatches=1", "--run-dir", str(tmp_path)]

    def esper(*args: str):
        result = CliRunner().invoke(app, ["ppo", *tiny, *args])
        assert result.exit_code == 0, result.output
        return result.output

    def started_messages() -> list[str]:
        lines = (tmp_path / "telemetry.jsonl").read_text().splitlines()
        events = map(json.loads, lines)
        return [e["message"] for e in events if e["event_type"] == "TRAINING_STARTED"]

    first = esper("--episodes", "3", "--eval-every", "1", "--eval-episodes", "1", "--stop-at", "5")
    assert "reached the target return 5" in first  # a CartPole episode lasts >= 8 steps
    resumed = esper("--resume", "--episodes", "2")
    carried = "carried over from the checkpoint: eval_every=1, eval_episodes=1, stop_at=5.0"
    assert carried in resumed and carried in started_messages()[-1]
    assert "already reached its target return 5" in resumed
    assert "reached the target return 5" in resumed  # as announced: it stopped at once
    assert "batch 3/" not in resumed
    off = esper("--resume", "--episodes", "1", "--eval-every", "0")
    assert "batch 3/3" in off and "stop_at" not in off
    cleared = esper("--resume", "--episodes", "2", "--eval-every", "1", "--stop-at", "none")
    assert "batch 5/5" in cleared and "target" not in cleared
