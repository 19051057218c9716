"""Configs are parsed strictly and layered: defaults < task file < --config < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from esper.config import ConfigError, PPOConfig, build_config, task_default_values


def test_unknown_key_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("learning_rate = 0.001\nlerning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'lerning_rate'"):
        build_config(path)


def test_wrong_type_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('n_envs = "many"\n')
    with pytest.raises(ConfigError, match="n_envs"):
        build_config(path)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("n_envs = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_config(path)


def test_flags_override_file_which_overrides_task_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("n_envs = 16\nhorizon = 32\nhidden_sizes = [32, 32]\n")
    config = build_config(path, {"horizon": 8, "seed": None})
    assert config.n_envs == 16  # from the file
    assert config.horizon == 8  # the flag wins
    assert config.hidden_sizes == (32, 32)
    task = task_default_values("cartpole")
    assert config.learning_rate == task.get("learning_rate", PPOConfig.learning_rate)


def test_max_batches_is_episodes_plus_start() -> None:
    assert PPOConfig(n_batches=50, start_batch=25).max_batches == 75


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"n_batches": 0}, "--episodes"),
        ({"start_batch": -1}, "--start-episode"),
        ({"n_envs": 0}, "--envs"),
        ({"horizon": 0}, "--max-epochs"),
        ({"update_epochs": 0}, "--ppo-epochs"),
        ({"checkpoint_every": 0}, "--checkpoint-every"),
        ({"n_envs": 3, "horizon": 3, "n_minibatches": 4}, "n_minibatches"),
    ],
)
def test_out_of_range_values_name_their_flag(changes: dict, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        PPOConfig(**changes)
    assert info.value.flag == flag


def test_default_run_dir_is_found_again_by_task() -> None:
    assert PPOConfig(task="cartpole").resolved_run_dir() == Path("runs/cartpole")
    assert PPOConfig(run_dir="elsewhere").resolved_run_dir() == Path("elsewhere")
