"""The Python API: what it adds to the trainer for the user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import esper


def test_a_gym_resume_says_its_environments_start_afresh(tmp_path: Path) -> None:
    settings = dict(n_envs=4, max_epochs=16, device="cpu", run_dir=str(tmp_path), progress=False)
    esper.train(task="gym:CartPole-v1", episodes=1, **settings)
    esper.train(task="gym:CartPole-v1", episodes=1, start_episode=1, **settings)
    lines = (tmp_path / "telemetry.jsonl").read_text().splitlines()
    events = [e for e in map(json.loads, lines) if e["event_type"] == "TRAINING_STARTED"]
    assert "freshly reset" not in events[0]["message"]
    assert "freshly reset environments" in events[1]["message"]


def test_an_interrupted_train_says_how_to_resume_from_python(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from esper.api import TrainOutcome
    from esper.config.schema import PPOConfig

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "batch_000004.pt").write_bytes(b"")
    outcome = TrainOutcome(SimpleNamespace(final_batch=4), PPOConfig(run_dir=str(tmp_path)))
    call = outcome.resume_call
    assert (
        call == f"esper.train(task='cartpole', episodes=46, run_dir={str(tmp_path)!r}, resume=True)"
    )
    assert "--resume --episodes 46" in outcome.resume_command


def test_the_fresh_environments_note_of_a_gym_resume_reaches_the_console(
    tmp_path: Path, capsys
) -> None:
    settings = dict(n_envs=4, max_epochs=16, device="cpu", run_dir=str(tmp_path))
    esper.train(task="gym:CartPole-v1", episodes=1, progress=False, **settings)
    capsys.readouterr()
    esper.train(task="gym:CartPole-v1", episodes=1, start_episode=1, **settings)
    err = capsys.readouterr().err
    assert "esper: note: gym:CartPole-v1: this task's environments cannot be checkpointed" in err
    assert "freshly reset environments" in err


def test_two_names_for_one_setting_with_different_values_are_refused(tmp_path: Path) -> None:

    from esper.runtime.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        esper.train(horizon=16, max_epochs=32, run_dir=str(tmp_path), progress=False)
    line = str(refused.value)
    assert "horizon and max_epochs are two names for one setting" in line
    assert "(16 and 32)" in line and not (tmp_path / "telemetry.jsonl").exists()


def test_the_resume_command_keeps_how_the_run_was_recorded(tmp_path: Path) -> None:
    """A resume takes its settings from the checkpoint, but the device and the
    sinks are this invocation's: the printed command must repeat them."""
    import shlex
    from types import SimpleNamespace

    from esper.api import TrainOutcome
    from esper.config.schema import PPOConfig

    config = PPOConfig(run_dir=str(tmp_path), device="cpu")
    outcome = TrainOutcome(SimpleNamespace(), config, tensorboard=True, track="offline")
    words = shlex.split(outcome.resume_command)
    assert "--tensorboard" in words
    assert words[words.index("--track") + 1] == "offline"
    assert words[words.index("--device") + 1] == "cpu"
    assert "tensorboard=True, track='offline'" in outcome.resume_call
    assert "device='cpu'" in outcome.resume_call
    plain = TrainOutcome(SimpleNamespace(), PPOConfig(run_dir=str(tmp_path)))
    assert "--tensorboard" not in plain.resume_command and "--device" not in plain.resume_command


def test_a_config_file_s_task_is_the_task_unless_one_is_named(tmp_path: Path) -> None:
    from esper.api import train

    config = tmp_path / "acrobot.toml"
    config.write_text('task = "acrobot"\nn_envs = 8\nhorizon = 16\nn_minibatches = 2\n')
    outcome = train(config_file=config, episodes=1, run_dir=str(tmp_path / "a"), progress=False)
    assert outcome.config.task == "acrobot"
    named = train(
        task="cartpole", config_file=config, episodes=1, run_dir=str(tmp_path / "c"), progress=False
    )
    assert named.config.task == "cartpole" and named.config.n_envs == 8  # the file's other keys
    started = json.loads((tmp_path / "c" / "telemetry.jsonl").read_text().splitlines()[0])
    assert started["data"]["task"] == "cartpole"


def test_dir_shows_the_api_and_an_outcome_prints_in_one_line(tmp_path: Path) -> None:
    from esper.api import TrainOutcome
    from esper.config.schema import PPOConfig
    from esper.training.report import TrainingResult

    assert {"train", "load_policy", "export", "__version__"} <= set(dir(esper))
    history = [{"batch": b, "episode_return_mean": float(b)} for b in range(500)]
    result = TrainingResult("completed", tmp_path, "r", 500, 64_000, history=history)
    result.last_batch = {"episode_return_mean": 187.25}
    text = repr(TrainOutcome(result, PPOConfig(run_dir=str(tmp_path))))
    assert "\n" not in text and len(text) < 300, text
    assert "status='completed'" in text and "final_batch=500" in text
    assert "return_mean=187.2" in text


def test_episodes_and_n_episodes_that_disagree_are_refused(tmp_path: Path) -> None:
    from esper.api import train
    from esper.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="episodes and n_episodes are two names"):
        train(episodes=5, n_episodes=10, run_dir=str(tmp_path), progress=False)
