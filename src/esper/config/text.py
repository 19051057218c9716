"""Settings as people write them: TOML config files, ``KEY=VALUE`` pairs
(``esper ppo --set``), and the other names they use for esper's settings.

Reading is strict: every key must name a ``PPOConfig`` field (anything else is
an error naming it, with the nearest field or esper's word for another
trainer's name), and every value must have the field's type.
"""

from __future__ import annotations

import difflib
import tomllib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from esper.config.schema import CONFIG_KEYS, PPOConfig
from esper.runtime.errors import ConfigError


def _reader(annotation: Any) -> tuple[str, Any]:
    """What a TOML value for ``annotation`` must be: a description and a converter
    that returns the value or raises TypeError. Optional fields read their inner
    type (TOML has no null: leaving the key out keeps ``None``)."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return _reader(inner[0])
    if get_origin(annotation) is tuple and get_args(annotation)[1:] == (...,):
        _, plural, read_item = _SCALARS[get_args(annotation)[0]]
        return f"a list of {plural}", lambda v: tuple(read_item(x) for x in _expect(v, list))
    if get_origin(annotation) is dict:  # a TOML table, checked by whoever reads it
        return "a table", lambda v: dict(_expect(v, dict))
    if annotation in _SCALARS:
        what, _, read = _SCALARS[annotation]
        return what, read
    raise TypeError(f"PPOConfig has no TOML reading for {annotation!r}")


def _expect(value: Any, kind: type | tuple[type, ...]) -> Any:
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise TypeError
    if not isinstance(value, kind):
        raise TypeError
    return value


_SCALARS: dict[Any, tuple[str, str, Any]] = {
    bool: ("true or false", "booleans", lambda v: _expect(v, bool)),
    int: ("an integer", "integers", lambda v: _expect(v, int)),
    float: ("a number", "numbers", lambda v: float(_expect(v, (int, float)))),
    str: ("a string", "strings", lambda v: _expect(v, str)),
}
# Built at import, so a field of a type TOML cannot express fails at once.
_READERS = {name: _reader(hint) for name, hint in get_type_hints(PPOConfig).items()}

# esper's words at the edge (the CLI's flags, the seed's field names) for the
# fields they set: esper.train accepts them, and checkpoints written before the
# rename use them as config keys.
EDGE_WORDS = {
    "n_episodes": "n_batches",
    "start_episode": "start_batch",
    "max_epochs": "horizon",
    "ppo_epochs": "update_epochs",
}
# Every other name for a field a config file may use by mistake, with what esper
# calls the idea: the edge words, other trainers' names (CleanRL,
# Stable-Baselines3) and esper's old ones.
FOREIGN_KEYS = {
    **EDGE_WORDS,
    "total_timesteps": "n_batches (batches; one batch is n_envs x horizon env steps)",
    "num_iterations": "n_batches",
    "episodes": "n_batches",
    "num_envs": "n_envs",
    "num_steps": "horizon",
    "n_steps": "horizon",
    "n_epochs": "update_epochs",
    "num_minibatches": "n_minibatches",
    "batch_size": "n_minibatches (a count: n_envs x horizon / minibatch size)",
    "minibatch_size": "n_minibatches (a count: n_envs x horizon / minibatch size)",
    "lr": "learning_rate",
    "clip_range": "clip_coef",
    "norm_adv": "normalize_advantages",
    "normalize_advantage": "normalize_advantages",
    "clip_vloss": "clip_value_loss",
    "env_id": "task",
    "cuda": "device",
}


def unknown_key_message(key: str) -> str:
    """``unknown key 'lr'; did you mean learning_rate?``, or esper's word for it."""
    near = FOREIGN_KEYS.get(key) or next(
        iter(difflib.get_close_matches(key, sorted(CONFIG_KEYS), n=1)), None
    )
    return f"unknown key '{key}'" + (f"; did you mean {near}?" if near else "")


def read_value(key: str, value: Any) -> Any:
    """One TOML value as the field's type; ``TypeError`` names what was expected."""
    what, read = _READERS[key]
    try:
        return read(value)
    except TypeError:
        raise TypeError(f"expected {what}, got {value!r}") from None


def parse_config_mapping(mapping: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate a flat key/value mapping strictly: unknown keys and wrong types are
    errors naming the key and the file; they belong to the ``config_file`` input."""
    out: dict[str, Any] = {}
    problems: list[str] = []  # every one at once: one round trip to fix the file
    for key, value in mapping.items():
        if key not in CONFIG_KEYS:
            problems.append(unknown_key_message(key))
            continue
        try:
            out[key] = read_value(key, value)
        except TypeError as exc:
            problems.append(f"{key}: {exc}")
    if problems:
        raise ConfigError("config_file", f"{'; '.join(problems)} (in {source})")
    return out


def read_toml(path: Path, setting: str) -> dict[str, Any]:
    """A TOML file a user named through ``setting``; one ``ConfigError`` naming the
    file when it is missing, unreadable (a folder, no permission) or not TOML."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(setting, f"file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(setting, f"{path} is not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(setting, f"cannot read {path}: {exc.strerror}") from None


# A config file's run length in env steps, as ``--total-timesteps`` gives it: not
# a PPOConfig field (it becomes ``n_batches`` once n_envs and horizon are known).
BUDGET_KEY = "total_timesteps"


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML file of PPOConfig keys; errors name the file and the key.
    ``total_timesteps`` is left to ``config_file_budget``."""
    mapping = read_toml(path, "config_file")
    mapping.pop(BUDGET_KEY, None)
    return parse_config_mapping(mapping, str(path))


def config_file_budget(path: Path) -> int | None:
    """The file's ``total_timesteps`` (None: not given); with ``n_batches`` beside
    it, or not an integer, one error naming the file."""
    mapping = read_toml(path, "config_file")
    budget = mapping.get(BUDGET_KEY)
    if budget is None:
        return None
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise ConfigError(
            "config_file", f"{BUDGET_KEY}: expected an integer, got {budget!r} (in {path})"
        )
    if "n_batches" in mapping:
        raise ConfigError("config_file", f"give {BUDGET_KEY} or n_batches, not both (in {path})")
    return budget


def parse_assignments(
    pairs: list[str] | tuple[str, ...], setting: str = "settings"
) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (``esper ppo --set``) checked as a config file's keys are:
    an unknown key gets the same suggestion, a value the same type check. VALUE is
    read as a TOML value (``0.5``, ``true``, ``[64, 64]``); a string field takes the
    text as written (``task=gym:CartPole-v1``). A later pair for a key wins."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for pair in pairs:
        key, sep, text = (part.strip() for part in pair.partition("="))
        if not sep or not key:
            raise ConfigError(setting, f"expects KEY=VALUE (got {pair!r})")
        if key not in CONFIG_KEYS:
            unknown.append(unknown_key_message(key))
            continue
        if _READERS[key][0] == "a string":
            quoted = len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'"
            out[key] = text[1:-1] if quoted else text
            continue
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        try:
            out[key] = read_value(key, value)
        except TypeError as exc:
            raise ConfigError(setting, f"{key}: {exc}") from None
    if unknown:
        raise ConfigError(setting, "; ".join(unknown))
    return out


def field_names(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` keyed by field: each edge word (``max_epochs``) becomes the field
    it sets. Two names for one field with different values are an error naming
    both; None is a value not given, which never replaces another."""
    fields: dict[str, Any] = {}
    named_by: dict[str, str] = {}
    for key, value in values.items():
        name = EDGE_WORDS.get(key, key)
        if value is None and name in fields:
            continue
        if fields.get(name) is not None and fields[name] != value:
            first = named_by[name]
            raise ConfigError(
                key,
                f"{{{first}}} and {{{key}}} are two names for one setting, given different "
                f"values ({fields[name]!r} and {value!r}): give one",
                mentions=(first, key),
            )
        fields[name], named_by[name] = value, key
    return fields
