"""A run's config from its layers: ``PPOConfig``'s defaults, the task's defaults,
the user's config file, then explicit overrides.

The task's layer is the one place that knows both the config and the tasks
(``configs/<task>.toml``, or what a task's factory declares), so neither
``esper.config.schema`` nor ``esper.envs`` imports the other. Tasks are imported only
when the packaged file is not found by name, so ``esper --help`` stays free of
torch.
"""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from esper.config.schema import CONFIG_KEYS, FIELDS, PPOConfig
from esper.config.text import load_config_file, parse_config_mapping, unknown_key_message
from esper.runtime.errors import ConfigError

GENERIC_DEFAULTS = "generic.toml"


@functools.cache
def _configs_folder() -> Any:
    """The task configs: ``esper/configs/`` inside a wheel (hatch includes the
    checkout's top-level ``configs/`` there at build time), else the checkout's
    own ``configs/`` beside ``src/``, which an editable install reads."""
    packaged = resources.files("esper") / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "configs"


def _packaged(name: str) -> Any:
    """A file among the task configs, found in a checkout and a wheel alike."""
    return _configs_folder() / name


def config_name(task: str) -> str:
    """The ``configs/<name>.toml`` that holds ``task``'s defaults.

    A ``gym:`` (or ``gym-async:``) twin of a built-in task uses the built-in's
    file: ``gym:Acrobot-v1`` trains with ``acrobot.toml``; so does a
    ``pettingzoo:`` one (``pettingzoo:mpe2.simple_spread_v3``: ``simple-spread.toml``).
    """
    from esper.envs.gym_ids import gym_id_of, pettingzoo_target_of
    from esper.envs.registry import TASKS

    gym_id = gym_id_of(task)
    if gym_id is not None:
        twins = [name for name, cls in TASKS.items() if cls.spec.gym_id == gym_id]
        return twins[0] if twins else f"gym_{gym_id}"
    target = pettingzoo_target_of(task)
    if target is not None:
        twins = [name for name, cls in TASKS.items() if cls.pettingzoo_twin == target]
        if twins:
            return twins[0]
    return task.replace(":", "_")


def task_config_name(task: str) -> str | None:
    """The packaged file (in ``configs/``) holding ``task``'s defaults, or
    None when the task declares its own (``default_config``).

    - A built-in task uses ``<task>.toml`` (or declares ``default_config``); a
      built-in with neither is an error, never a silent fallback.
    - A ``gym:``/``gym-async:`` id that is a built-in task's twin (the same
      gymnasium id) uses the built-in's file: the same dynamics learn with the
      same settings. Other gymnasium ids use ``gym_<ID>.toml`` when esper ships one.
    - Any other task uses what its factory declares, else ``generic.toml``,
      which keeps PPOConfig's own defaults.
    """
    if _packaged(f"{task}.toml").is_file():  # no torch import for the common case
        return f"{task}.toml"
    from esper.envs.registry import TASKS, task_defaults

    name = f"{config_name(task)}.toml"
    if _packaged(name).is_file():
        return name
    if task_defaults(task):
        return None
    if task in TASKS:
        raise ConfigError("task", f"esper ships no defaults for {task} (configs/{task}.toml)")
    return GENERIC_DEFAULTS


def task_default_values(task: str) -> dict[str, Any]:
    """Per-task hyperparameters: the packaged ``configs/`` file for ``task``, else
    those the task itself declares (a registered or installed task's defaults)."""
    name = task_config_name(task)
    if name is None:
        from esper.envs.registry import task_defaults

        return parse_config_mapping(task_defaults(task), f"task {task}'s default_config")
    return dict(_packaged_values(name))


@functools.cache
def _packaged_values(name: str) -> dict[str, Any]:
    """``configs/<name>``'s values, read once per process (the CLI's help asks for
    cartpole's once per flag)."""
    mapping = tomllib.loads(_packaged(name).read_text(encoding="utf-8"))
    values = parse_config_mapping(mapping, f"esper's configs/{name}")
    values.pop("task", None)
    return values


def default_text(name: str, task: str = "cartpole") -> str:
    """A flag's default as help and the README say it: the task's file wins over
    the dataclass default (``32 for cartpole``), ``off`` for a false switch."""
    item = FIELDS[name]
    task_values = task_default_values(task)
    if name in task_values:
        return f"task config ({task_values[name]} for {task})"
    if item.default is None:
        return item.metadata["default_text"]
    if item.default is False:
        return "off"
    return str(item.default)


def build_config(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> PPOConfig:
    """Layer defaults, task defaults, a config file and explicit overrides."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in overrides:
        if key not in CONFIG_KEYS:
            raise ConfigError(
                key, unknown_key_message(key).replace("unknown key", "unknown setting")
            )
    file_values = load_config_file(config_file) if config_file else {}
    task = overrides.get("task", file_values.get("task", PPOConfig.task))
    values = {**task_default_values(task), **file_values, **overrides}
    return checked_config(values, file_values, overrides, config_file)


def checked_config(
    values: dict[str, Any],
    file_values: dict[str, Any],
    overrides: dict[str, Any],
    config_file: Path | None,
) -> PPOConfig:
    """``PPOConfig(**values)``; a bad value that came from ``config_file`` (and no
    override replaced) is blamed on the file, naming it, not on the setting's flag."""
    try:
        return PPOConfig(**values)
    except ConfigError as exc:
        if exc.setting in file_values and exc.setting not in overrides:
            value = file_values[exc.setting]
            raise ConfigError(
                "config_file",
                f"{exc.setting} = {value!r} in {config_file}: {exc.message}",
                mentions=exc.mentions,
            ) from None
        raise
