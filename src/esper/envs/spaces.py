"""Observation and action spaces of batched environments, in plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DiscreteSpace:
    """Actions are integers in ``[0, n)``; a batch of them is a ``[num_envs]`` tensor."""

    n: int

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def mask_width(self) -> int:
        """Width of an action mask row: one flag per action."""
        return self.n

    def describe(self) -> str:
        return f"Discrete({self.n})"


@dataclass(frozen=True)
class BoxSpace:
    """Real vectors within ``[low, high]`` per dimension: ``[num_envs, dim]`` tensors."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.low) != len(self.high) or not self.low:
            raise ValueError("BoxSpace needs matching, non-empty low and high")

    @property
    def is_discrete(self) -> bool:
        return False

    @property
    def dim(self) -> int:
        return len(self.low)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.dim,)

    @property
    def mask_width(self) -> int:
        """Continuous actions have no mask."""
        return 0

    def describe(self) -> str:
        bounds = ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in zip(self.low, self.high, strict=True))
        return f"Box({self.dim}: {bounds})"


@dataclass(frozen=True)
class MultiDiscreteSpace:
    """Several integer actions at once, component ``i`` in ``[0, nvec[i])``:
    a batch of them is a ``[num_envs, len(nvec)]`` tensor."""

    nvec: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.nvec or min(self.nvec) < 1:
            raise ValueError("MultiDiscreteSpace needs one or more counts >= 1")

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    @property
    def mask_width(self) -> int:
        """Width of an action mask row: one block of flags per head, heads in
        order (sb3-contrib's layout)."""
        return sum(self.nvec)

    def describe(self) -> str:
        return f"MultiDiscrete({', '.join(map(str, self.nvec))})"


ActionSpace = DiscreteSpace | BoxSpace | MultiDiscreteSpace
