"""The one validated, frozen description of a training run.

Layering, lowest first: the dataclass defaults below, the task's defaults in
``configs/<task>.toml``, the user's ``--config FILE.toml``, then CLI flags.
Every TOML key must name a field here; anything else is an error naming it.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration or command-line mistake; ``flag`` names what to fix."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(message, flag=flag)

    def __str__(self) -> str:
        return f"{self.flag}: {self.message}"


@dataclass(frozen=True)
class PPOConfig:
    """Every knob of a run. Field comments say what each one means for PPO."""

    # --- run shape: batches of n_envs x horizon steps ---
    task: str = "cartpole"  # built-in task name, see esper.envs
    n_batches: int = 50  # batches to run in this invocation (--episodes)
    start_batch: int = 0  # batches already completed before this invocation (--start-episode)
    n_envs: int = 64  # environments stepped together (--envs)
    horizon: int = 128  # env steps per env per batch: the rollout horizon (--max-epochs)
    seed: int = 1
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:N"

    # --- PPO ---
    update_epochs: int = 4  # passes over each batch in the update
    n_minibatches: int = 4  # each pass walks the shuffled batch in this many minibatches
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True  # linear decay to 0 over max_batches
    # Batches the decay spans; None: this invocation's max_batches. Set it to the
    # planned total to make a run split across invocations decay exactly as one.
    anneal_batches: int | None = None
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_value_loss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    target_kl: float | None = None  # stop an update's epochs early past this approx KL
    normalize_obs: bool = False  # running mean/std of observations, clipped to +-10
    normalize_reward: bool = False  # divide rewards by a running std of the discounted return
    hidden_sizes: tuple[int, ...] = (64, 64)
    # torch.compile the PPO loss (--compile). Costs ~30 s of compilation at the
    # start on a 2-core CPU and ~100 MB; measured 1.2-1.3x faster updates at
    # 4,096 CartPole envs there, so it pays only on long, large runs.
    compile: bool = False
    speedups: bool = True  # training/speedups.py's tricks; False: plain torch, same checkpoints

    # --- bookkeeping ---
    run_dir: str | None = None  # None: runs/<task>
    checkpoint_every: int = 10  # batches between checkpoints; the last batch always saves
    keep_checkpoints: int | None = None  # keep only the newest N checkpoints (None: all)
    overwrite: bool = False

    def __post_init__(self) -> None:
        _require(self.n_batches >= 1, "--episodes", f"must be >= 1 (got {self.n_batches})")
        _require(
            self.start_batch >= 0,
            "--start-episode",
            f"must be >= 0 (got {self.start_batch})",
        )
        _require(self.n_envs >= 1, "--envs", f"must be >= 1 (got {self.n_envs})")
        _require(self.horizon >= 1, "--max-epochs", f"must be >= 1 (got {self.horizon})")
        _require(
            self.update_epochs >= 1, "--ppo-epochs", f"must be >= 1 (got {self.update_epochs})"
        )
        _require(
            self.checkpoint_every >= 1,
            "--checkpoint-every",
            f"must be >= 1 (got {self.checkpoint_every})",
        )
        _require(
            self.anneal_batches is None or self.anneal_batches >= 1,
            "anneal_batches",
            f"must be >= 1 (got {self.anneal_batches})",
        )
        _require(
            self.keep_checkpoints is None or self.keep_checkpoints >= 1,
            "--keep-checkpoints",
            f"must be >= 1 (got {self.keep_checkpoints})",
        )
        _require(
            self.n_minibatches >= 1 and self.batch_size % self.n_minibatches == 0,
            "n_minibatches",
            f"must be >= 1 and divide n_envs x horizon = {self.batch_size} "
            f"(got {self.n_minibatches})",
        )
        _require(self.learning_rate > 0, "learning_rate", "must be > 0")
        _require(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        _require(0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        _require(self.clip_coef > 0, "clip_coef", "must be > 0")
        _require(self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        _require(
            len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes",
            "must be a non-empty list of positive layer widths",
        )

    @property
    def max_batches(self) -> int:
        """The batch count the run ends at: ``n_batches + start_batch``."""
        return self.n_batches + self.start_batch

    @property
    def batch_size(self) -> int:
        """Transitions per batch: ``n_envs x horizon``."""
        return self.n_envs * self.horizon

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.n_minibatches

    def resolved_run_dir(self) -> Path:
        """``--run-dir`` or the default ``runs/<task>``, which a resume finds again."""
        if self.run_dir:
            return Path(self.run_dir)
        return Path("runs") / self.task.replace(":", "_").replace("/", "_")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    def replace(self, **changes: Any) -> PPOConfig:
        return dataclasses.replace(self, **changes)


def _require(ok: bool, flag: str, message: str) -> None:
    if not ok:
        raise ConfigError(flag, message)


_FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}
# Keys a config file may set. The run's position (episodes, start) and output
# location belong to the invocation, but are accepted so a file can pin them.
CONFIG_KEYS = frozenset(_FIELDS)


def _coerce(key: str, value: Any) -> Any:
    """Check one TOML value against the field's declared type."""
    annotation = str(_FIELDS[key].type)
    if annotation == "bool":
        ok = isinstance(value, bool)
    elif annotation == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif annotation == "float" or annotation == "float | None":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif annotation == "str" or annotation == "str | None":
        ok = isinstance(value, str)
    elif annotation == "tuple[int, ...]":
        ok = isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value
    else:  # pragma: no cover - a new field type must be taught here
        raise AssertionError(f"no TOML coercion for {key}: {annotation}")
    if not ok:
        raise ConfigError(key, f"expected {annotation}, got {value!r}")
    return value


def parse_config_mapping(mapping: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate a flat key/value mapping strictly: unknown keys are errors."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key not in CONFIG_KEYS:
            raise ConfigError("--config", f"unknown key '{key}' in {source}")
        out[key] = _coerce(key, value)
    return out


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML file of PPOConfig keys; errors name the file and the key."""
    try:
        with path.open("rb") as fh:
            mapping = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("--config", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{path} is not valid TOML ({exc})") from None
    return parse_config_mapping(mapping, str(path))


def task_defaults_dir() -> Path:
    """Where ``configs/<task>.toml`` lives: the repository's top-level folder."""
    return Path(__file__).resolve().parents[2] / "configs"


def task_default_values(task: str) -> dict[str, Any]:
    """Per-task hyperparameters from ``configs/<task>.toml`` (empty if none)."""
    path = task_defaults_dir() / f"{task.replace(':', '_')}.toml"
    if not path.is_file():
        return {}
    values = load_config_file(path)
    values.pop("task", None)
    return values


def build_config(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> PPOConfig:
    """Layer defaults, task defaults, a config file and explicit overrides."""
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in overrides:
        if key not in CONFIG_KEYS:
            raise ConfigError(key, f"'{key}' is not a PPOConfig setting")
    file_values = load_config_file(config_file) if config_file else {}
    task = overrides.get("task", file_values.get("task", PPOConfig.task))
    values = {**task_default_values(task), **file_values, **overrides}
    return PPOConfig(**values)


__all__ = [
    "CONFIG_KEYS",
    "ConfigError",
    "PPOConfig",
    "build_config",
    "load_config_file",
]
