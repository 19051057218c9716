"""What a growth task is made of: the problem's sizes, the host, the slots,
the blueprints a seed may be, the lifecycle's durations and the rent.

One frozen ``GrowthSettings`` holds them; a bad value is a ``ConfigError``
naming the setting (one line, exit 2 on the command line), raised when the
settings are made, before any tensor is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esper.runtime.errors import ConfigError


@dataclass(frozen=True)
class Blueprint:
    """A seed's shape: a residual block ``z + alpha * act(z A + a) B + b`` over the
    host's stream, ``width`` hidden units; ``linear`` (no activation, no biases in
    the count) makes it a low-rank adapter of rank ``width``."""

    name: str
    width: int
    linear: bool = False

    def params(self, stream: int) -> int:
        """Trainable numbers this seed adds to a host whose stream is ``stream`` wide."""
        weights = 2 * stream * self.width
        return weights if self.linear else weights + self.width + stream


# Every blueprint a config may name; the settings choose which ones the actions offer.
BLUEPRINTS: dict[str, Blueprint] = {
    bp.name: bp
    for bp in (
        Blueprint("adapter", 4, linear=True),
        Blueprint("block-8", 8),
        Blueprint("block-32", 32),
    )
}

MAX_SLOTS = 8


@dataclass(frozen=True)
class GrowthSettings:
    """The growth task's own knobs (the PPO ones are in ``configs/grow-mlp.toml``)."""

    max_epochs: int = 20  # host epochs per episode: one environment step each
    slots: int = 3
    blueprints: tuple[str, ...] = ("adapter", "block-8", "block-32")
    in_dim: int = 8  # Gaussian inputs
    classes: int = 4
    stream: int = 16  # width of the host's residual stream (the bare host is linear)
    teacher_hidden: int = 32
    train_size: int = 256  # the episode's training set; an epoch walks it once
    val_size: int = 256
    steps_per_epoch: int = 4  # host Adam steps per epoch, minibatches of train_size / steps
    host_lr: float = 0.03
    blend_epochs: int = 3  # epochs for alpha to ramp from 0 to 1
    embargo_epochs: int = 2  # epochs a pruned slot rests before it is dormant again
    param_budget: int = 2000  # a germination that would exceed it is masked
    rent: float = 0.1  # score = val accuracy - rent * params / param_budget

    def __post_init__(self) -> None:
        _positive(self, "max_epochs", "steps_per_epoch", "in_dim", "stream", "teacher_hidden")
        _positive(self, "train_size", "val_size", "blend_epochs", "param_budget")
        if not 1 <= self.slots <= MAX_SLOTS:
            raise ConfigError("slots", f"must be 1 to {MAX_SLOTS} (got {self.slots})")
        if self.classes < 2:
            raise ConfigError("classes", f"must be >= 2 (got {self.classes})")
        if self.embargo_epochs < 0:
            raise ConfigError("embargo_epochs", f"must be >= 0 (got {self.embargo_epochs})")
        if not self.blueprints:
            raise ConfigError("blueprints", "name at least one blueprint")
        unknown = [name for name in self.blueprints if name not in BLUEPRINTS]
        if unknown:
            raise ConfigError(
                "blueprints",
                f"unknown blueprint {unknown[0]!r} (known: {', '.join(BLUEPRINTS)})",
            )
        if len(set(self.blueprints)) != len(self.blueprints):
            raise ConfigError("blueprints", "names a blueprint twice")
        if self.train_size % self.steps_per_epoch:
            raise ConfigError(
                "steps_per_epoch",
                f"must divide train_size = {self.train_size} (got {self.steps_per_epoch})",
            )
        if self.host_lr <= 0 or self.rent < 0:
            raise ConfigError("host_lr" if self.host_lr <= 0 else "rent", "must be positive")
        if self.param_budget < self.host_params:
            raise ConfigError(
                "param_budget", f"must hold the bare host's {self.host_params} parameters"
            )

    @property
    def chosen(self) -> tuple[Blueprint, ...]:
        """The blueprints the actions offer, in action order."""
        return tuple(BLUEPRINTS[name] for name in self.blueprints)

    @property
    def max_width(self) -> int:
        """Hidden units every slot preallocates: the widest offered blueprint's."""
        return max(bp.width for bp in self.chosen)

    @property
    def host_params(self) -> int:
        """The bare host: stream embedding and classifier head, with biases."""
        return (self.in_dim + 1) * self.stream + (self.stream + 1) * self.classes

    @property
    def batch_size(self) -> int:
        return self.train_size // self.steps_per_epoch


def _positive(settings: GrowthSettings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if value < 1:
            raise ConfigError(name, f"must be >= 1 (got {value})")


def settings_from(options: dict[str, Any]) -> GrowthSettings:
    """Settings from a TOML table's keys; an unknown key names the known ones."""
    known = set(GrowthSettings.__dataclass_fields__)
    for key in options:
        if key not in known:
            raise ConfigError(
                "task_options", f"unknown key {key!r} (known: {', '.join(sorted(known))})"
            )
    values = dict(options)
    if "blueprints" in values:
        values["blueprints"] = tuple(values["blueprints"])
    return GrowthSettings(**values)
