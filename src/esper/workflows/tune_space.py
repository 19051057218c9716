"""The search space of ``esper tune``: which settings a study searches, and over what.

A space is TOML tables ``[KEY] type = ...`` (``--space``) or esper's default
one for PPO; it is read and checked here, before any trial runs, so a bad space
or a base config outside it is one line, not optuna's traceback in trial 0.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.config.schema import CONFIG_KEYS, PPOConfig
from esper.config.text import read_toml, read_value, unknown_key_message
from esper.runtime.errors import ConfigError

KINDS = ("float", "int", "categorical")
# Never tuned, never written to best.toml: where and how a run happens, not what it learns.
NOT_SETTINGS = ("seed", "device", "run_dir", "overwrite", "start_batch", "checkpoint_every")

# A sensible space for PPO: the knobs that matter most, around common values;
# the batch shape (n_envs, horizon) stays as configured, so every trial gets
# the same env steps.
DEFAULT_SPACE = """
[learning_rate]
type = "float"
low = 1e-4
high = 5e-3
log = true

[ent_coef]
type = "float"
low = 0.0
high = 0.02

[clip_coef]
type = "float"
low = 0.1
high = 0.3

[gae_lambda]
type = "float"
low = 0.8
high = 0.99

[gamma]
type = "float"
low = 0.95
high = 0.999

[update_epochs]
type = "int"
low = 2
high = 10

[n_minibatches]
type = "categorical"
choices = [2, 4, 8, 16]

[vf_coef]
type = "float"
low = 0.25
high = 1.0

[max_grad_norm]
type = "float"
low = 0.3
high = 1.0
"""


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (``log``: on a log scale) or choices."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices))


def parse_space(mapping: dict[str, Any], source: str) -> dict[str, Param]:
    """A search space from TOML tables ``[KEY] type = ...``; errors name the key and
    ``source``, and belong to the ``space`` input."""
    space = {}
    for name, table in mapping.items():
        where = f"(in {source})"
        if name not in CONFIG_KEYS or name in NOT_SETTINGS:
            raise ConfigError("space", f"{unknown_key_message(name)} {where}")
        if not isinstance(table, dict) or table.get("type") not in KINDS:
            raise ConfigError(
                "space", f"{name}: needs type = {', '.join(map(repr, KINDS))} {where}"
            )
        kind = table["type"]
        allowed = {"type", "choices"} if kind == "categorical" else {"type", "low", "high", "log"}
        extra = sorted(set(table) - allowed)
        if extra:
            raise ConfigError("space", f"{name}: unknown key '{extra[0]}' for {kind} {where}")
        try:
            if kind == "categorical":
                choices = table.get("choices")
                if not isinstance(choices, list) or not choices:
                    raise TypeError("expected a non-empty list of choices")
                space[name] = Param(name, kind, choices=tuple(read_value(name, c) for c in choices))
                continue
            low, high = table["low"], table["high"]
            read_value(name, low), read_value(name, high)
        except KeyError as exc:
            raise ConfigError("space", f"{name}: needs {exc.args[0]} {where}") from None
        except TypeError as exc:
            raise ConfigError("space", f"{name}: {exc} {where}") from None
        log = table.get("log", False)
        if not low < high or (log and low <= 0) or not isinstance(log, bool):
            raise ConfigError(
                "space", f"{name}: needs low < high (and low > 0 with log = true) {where}"
            )
        space[name] = Param(name, kind, float(low), float(high), log)
    if not space:
        raise ConfigError("space", f"names no setting to search {where}")
    return space


DEFAULT_SPACE_NAME = "esper's default space"


def load_space(path: Path | None) -> dict[str, Param]:
    """``path``'s space, or the default one."""
    if path is None:
        return parse_space(tomllib.loads(DEFAULT_SPACE), DEFAULT_SPACE_NAME)
    return parse_space(read_toml(path, "space"), str(path))


def check_baseline(base: PPOConfig, space: dict[str, Param], source: str) -> None:
    """Trial 0 trains the base config, so a base value that is not one of the space's
    choices is refused now, in one line, not as optuna's traceback in trial 0."""
    for key, param in space.items():
        value = getattr(base, key)
        if param.kind == "categorical" and value not in param.choices:
            choices = ", ".join(map(repr, param.choices))
            raise ConfigError(
                key,
                f"{value!r} is not one of the choices ({choices}) {source} searches, and "
                f"trial 0 trains the base config: choose one of them, or search a {{space}} "
                f"whose {key} choices hold {value!r}",
                mentions=("space",),
            )
