"""How a task name spells a gymnasium id: ``gym:ENV_ID``, or ``gym-async:ENV_ID``
for one process per copy.

Apart from the registry and the adapter, so that both (and the task-default
lookup) read the prefixes without importing each other or gymnasium.
"""

from __future__ import annotations

GYM_PREFIX = "gym:"
GYM_ASYNC_PREFIX = "gym-async:"


def gym_id_of(task: str) -> str | None:
    """The gymnasium id a ``gym:`` or ``gym-async:`` task names; None for others."""
    for prefix in (GYM_PREFIX, GYM_ASYNC_PREFIX):
        if task.startswith(prefix):
            return task.removeprefix(prefix)
    return None
