"""How a task name spells a gymnasium id: ``gym:ENV_ID``, or ``gym-async:ENV_ID``
for one process per copy; and a PettingZoo parallel env: ``pettingzoo:MODULE``.

Apart from the registry and the adapter, so that both (and the task-default
lookup) read the prefixes without importing each other or gymnasium.
"""

from __future__ import annotations

GYM_PREFIX = "gym:"
GYM_ASYNC_PREFIX = "gym-async:"
PETTINGZOO_PREFIX = "pettingzoo:"


def gym_id_of(task: str) -> str | None:
    """The gymnasium id a ``gym:`` or ``gym-async:`` task names; None for others."""
    for prefix in (GYM_PREFIX, GYM_ASYNC_PREFIX):
        if task.startswith(prefix):
            return task.removeprefix(prefix)
    return None


def pettingzoo_target_of(task: str) -> str | None:
    """The ``module[:factory]`` a ``pettingzoo:`` task names; None for others."""
    return task.removeprefix(PETTINGZOO_PREFIX) if task.startswith(PETTINGZOO_PREFIX) else None
