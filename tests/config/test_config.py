"""Configs are parsed strictly and layered: defaults < task file < --config < flags."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import get_origin, get_type_hints

import pytest

from esper.config.layers import build_config, task_config_name, task_default_values
from esper.config.schema import PPOConfig
from esper.runtime.errors import ConfigError

HINTS = get_type_hints(PPOConfig)
# A TOML spelling of a valid value for each kind of field, and one of the wrong type.
VALID = {int: "3", float: "0.125", bool: "true", str: '"cpu"', tuple[int, ...]: "[16, 16]",
         dict: "{ slots = 2 }"}  # fmt: skip
WRONG = {int: '"three"', float: '"small"', bool: "1", str: "3", tuple[int, ...]: '["wide"]',
         dict: "3"}  # fmt: skip


def _kind(name: str) -> object:
    hint = HINTS[name]
    if get_origin(hint) is dict:  # a table (task_options), whatever its values
        return dict
    return next((a for a in getattr(hint, "__args__", ()) if a is not type(None)), hint)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(PPOConfig)])
def test_every_field_loads_from_toml_and_names_its_key_on_a_type_error(
    name: str, tmp_path: Path
) -> None:
    kind = _kind(name) if name != "hidden_sizes" else tuple[int, ...]
    good = tmp_path / "good.toml"
    value = {
        "task": '"cartpole"',
        "n_minibatches": "1",
        "cuda_graphs": '"off"',
        "lr_schedule": '"adaptive"',
        "activation": '"relu"',
        "encoder": '"cnn"',
        "recurrent": '"gru"',
        "rnn_hidden": "32",
        "critic": '"central"',
    }.get(name, VALID[kind])
    needs = {"stop_at": "eval_every = 1\n"}.get(name, "")  # a setting only valid with another
    good.write_text(f"{name} = {value}\n{needs}")
    expected = tomllib.loads(f"v = {value}")["v"]
    expected = tuple(expected) if isinstance(expected, list) else expected
    assert getattr(build_config(good), name) == expected
    bad = tmp_path / "bad.toml"
    bad.write_text(f"{name} = {WRONG[kind]}\n")
    with pytest.raises(ConfigError) as info:
        build_config(bad)
    assert f"{name}: expected" in str(info.value) and "bad.toml" in str(info.value)


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("lr", "learning_rate"),
        ("lerning_rate", "learning_rate"),
        ("num_envs", "n_envs"),
        ("num_steps", "horizon"),
        ("n_steps", "horizon"),
        ("n_epochs", "update_epochs"),
        ("batch_size", "n_minibatches"),
        ("num_minibatches", "n_minibatches"),
        ("max_epochs", "horizon"),
        ("ppo_epochs", "update_epochs"),
        ("n_episodes", "n_batches"),
        ("start_episode", "start_batch"),
    ],
)
def test_unknown_key_points_to_esper_s_name(key: str, suggestion: str, tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"{key} = 1\n")
    with pytest.raises(ConfigError) as info:
        build_config(path)
    assert f"unknown key '{key}'; did you mean {suggestion}" in str(info.value)


def test_our_own_names_are_not_mistaken_for_foreign_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("update_epochs = 2\nlearning_rate = 0.001\n")
    assert build_config(path).update_epochs == 2


def test_gym_twin_of_a_built_in_uses_its_config_and_others_the_generic_file() -> None:
    assert task_config_name("gym:CartPole-v1") == "cartpole.toml"
    assert task_default_values("gym:Acrobot-v1") == task_default_values("acrobot")
    assert task_config_name("gym-async:CartPole-v1") == "cartpole.toml"
    assert task_config_name("gym:LunarLander-v3") == "gym_LunarLander-v3.toml"
    assert task_config_name("gym:Pusher-v5") == "generic.toml"
    assert task_default_values("gym:Pusher-v5") == {}


def test_a_pettingzoo_twin_of_a_built_in_trains_with_its_config() -> None:
    assert task_config_name("pettingzoo:mpe2.simple_spread_v3") == "simple-spread.toml"
    assert task_default_values("pettingzoo:mpe2.simple_spread_v3")["critic"] == "central"


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
    ("changes", "setting"),
    [
        ({"n_batches": 0}, "n_batches"),
        ({"start_batch": -1}, "start_batch"),
        ({"n_envs": 0}, "n_envs"),
        ({"horizon": 0}, "horizon"),
        ({"update_epochs": 0}, "update_epochs"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"anneal_batches": 0}, "anneal_batches"),
        ({"keep_checkpoints": 0}, "keep_checkpoints"),
        ({"n_envs": 3, "horizon": 3, "n_minibatches": 4}, "n_minibatches"),
    ],
)
def test_out_of_range_values_name_their_setting(changes: dict, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        PPOConfig(**changes)
    assert info.value.setting == setting
    assert str(info.value).startswith(f"{setting}: ")


def test_default_run_dir_is_found_again_by_task() -> None:
    assert PPOConfig(task="cartpole").resolved_run_dir() == Path("runs/cartpole")
    assert PPOConfig(run_dir="elsewhere").resolved_run_dir() == Path("elsewhere")


def test_every_unknown_key_of_a_file_is_named_with_its_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("lr = 0.001\nnum_envs = 8\ngamma = 0.9\n")
    with pytest.raises(ConfigError) as info:
        build_config(path)
    line = str(info.value)
    assert "unknown key 'lr'; did you mean learning_rate?" in line
    assert "unknown key 'num_envs'; did you mean n_envs?" in line
    assert line.endswith(f"(in {path})")


def test_a_bad_value_from_a_file_names_the_file_not_the_setting_s_flag(tmp_path: Path) -> None:
    from esper.cli import CLI_NAMES

    path = tmp_path / "c.toml"
    path.write_text("n_envs = 0\n")
    with pytest.raises(ConfigError) as info:
        build_config(path)
    line = info.value.in_words(CLI_NAMES).one_line()
    assert line.startswith(f"--config: n_envs = 0 in {path}: must be >= 1")
    with pytest.raises(ConfigError, match=r"^n_envs: must be >= 1"):  # a flag's own value
        build_config(path, {"n_envs": -1})


def test_a_config_file_s_total_timesteps_is_the_flag_s_budget(tmp_path: Path) -> None:
    """``total_timesteps`` in a file sets the batches as --total-timesteps does;
    a flag (--episodes or --total-timesteps) replaces it."""
    from esper.config.run import make_config

    path = tmp_path / "c.toml"
    path.write_text("total_timesteps = 70\nn_envs = 4\nhorizon = 8\nn_minibatches = 1\n")
    assert make_config(path).n_batches == 3  # ceil(70 / (4 x 8))
    assert make_config(path, {"n_batches": 5}).n_batches == 5
    assert make_config(path, total_timesteps=200).n_batches == 7
    path.write_text("total_timesteps = 70\nn_batches = 2\n")
    with pytest.raises(ConfigError, match="give total_timesteps or n_batches, not both"):
        make_config(path)
    path.write_text('total_timesteps = "lots"\n')
    with pytest.raises(ConfigError, match="total_timesteps: expected an integer, got 'lots'"):
        make_config(path)
