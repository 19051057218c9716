"""Ctrl-C, SIGTERM, non-finite losses and damaged files lose nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from esper.config.schema import PPOConfig
from esper.envs.cartpole import CartPole
from esper.runs.directory import RunDir
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.checkpoint import CheckpointError, load_checkpoint, load_for_resume


def small_config(run_dir: Path, **changes) -> PPOConfig:
    fields = dict(n_envs=8, horizon=16, n_minibatches=2, device="cpu", run_dir=str(run_dir))
    return PPOConfig(**{**fields, **changes})


def record(run_dir: Path) -> list[dict]:
    path = run_dir / "telemetry.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


# SIGINT (exit 130): tests/cli/test_cli.py's printed-resume test, which also runs
# the command it prints; here SIGTERM, with no checkpoint due when it comes.
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143)])
def test_signal_checkpoints_and_prints_the_resume_command(
    tmp_path: Path, signum: int, code: int
) -> None:
    args = [sys.executable, "-m", "esper", "ppo", "--episodes", "100000", "--envs", "8"]
    args += ["--max-epochs", "16", "--device", "cpu", "--no-sanctum", "--run-dir", str(tmp_path)]
    args += ["--checkpoint-every", "1000"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(e["event_type"] == "BATCH_COMPLETED" for e in record(tmp_path)):
        if proc.poll() is not None or time.monotonic() >= deadline:
            proc.kill()  # a hung run must fail the test, not hang it in communicate()
            pytest.fail(f"no batch completed: {proc.communicate(timeout=30)}")
        time.sleep(0.1)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    events = record(tmp_path)
    interrupted = events[-1]
    assert interrupted["event_type"] == "TRAINING_INTERRUPTED"
    resume = interrupted["data"]["resume_batch"]
    assert resume >= 1
    assert load_checkpoint(RunDir(tmp_path).checkpoint_path(resume))["batch"] == resume
    assert "--resume --episodes" in stderr
    assert "Traceback" not in stderr


def test_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    original = CartPole.dynamics
    # counted on each env itself: the start's contract check steps its own, and a
    # count keyed by id() carried over when the training env reused a freed one's id

    def poisoned(self, state, actions):
        next_state, reward, terminated = original(self, state, actions)
        self.poison_count = getattr(self, "poison_count", 0) + 1
        if self.poison_count > 16 and self.num_envs == 8:  # the second batch sees a NaN reward
            reward = reward * float("nan")
        return next_state, reward, terminated

    monkeypatch.setattr(CartPole, "dynamics", poisoned)
    seen = []
    hub = TelemetryHub()
    hub.subscribe(seen.append)
    result = run_vectorized_ppo(small_config(tmp_path, n_batches=4, checkpoint_every=1), hub)
    assert result.status == "failed"
    failed = seen[-1]
    assert failed.event_type == "TRAINING_FAILED"
    assert "non-finite" in failed.data.reason and "batch 2" in failed.data.reason
    assert failed.data.last_good_batch == 1
    assert list(RunDir(tmp_path).checkpoints()) == [1]
    saved = load_checkpoint(RunDir(tmp_path).checkpoint_path(1))
    assert all(torch.isfinite(t).all() for t in saved["policy"].values())


def test_keep_checkpoints_prunes_but_never_the_newest(tmp_path: Path) -> None:
    config = small_config(tmp_path, n_batches=5, checkpoint_every=1, keep_checkpoints=2)
    run_vectorized_ppo(config, TelemetryHub())
    assert list(RunDir(tmp_path).checkpoints()) == [4, 5]


def test_damaged_checkpoint_names_the_newest_intact_one(tmp_path: Path) -> None:
    run_vectorized_ppo(small_config(tmp_path, n_batches=3, checkpoint_every=1), TelemetryHub())
    run_dir = RunDir(tmp_path)
    newest = run_dir.checkpoint_path(3)
    newest.write_bytes(newest.read_bytes()[:100])  # a torn write from some other tool
    with pytest.raises(CheckpointError) as info:
        load_for_resume(run_dir.checkpoints(), 3)
    message = str(info.value)
    assert "batch_000003.pt" in message and "(start_batch=2)" in message


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    run_vectorized_ppo(small_config(tmp_path, n_batches=2, checkpoint_every=1), TelemetryHub())
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["batch_000001.pt", "batch_000002.pt"]
