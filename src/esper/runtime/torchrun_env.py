"""Who this process is in a torchrun job, as torchrun's environment says:
``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``. Outside torchrun none is set
and the process is rank 0 of a world of one.

torch-free, so the CLI can ask which rank speaks to the user without importing
torch; ``esper.training.distributed.collectives`` builds the process group on these answers.
"""

from __future__ import annotations

import os


def launched_by_torchrun() -> bool:
    return world_size() > 1


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0, or a process outside torchrun: the one that speaks to the user."""
    return os.environ.get("RANK", "0") == "0"


def local_world_size() -> int:
    """Ranks on this machine."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
