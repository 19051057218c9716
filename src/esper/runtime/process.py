"""Process-wide settings the ``esper`` command makes for itself.

They change the whole Python process, so only the command line applies them
(``esper.cli.main``); ``esper.train()`` in someone's notebook leaves the
process as it found it. torch-free, so ``esper --help`` stays fast.

Keeping freed memory (glibc ``mallopt``): on the CPU every PPO minibatch
allocates and frees the same large activations (8 MB each at 4,096 CartPole
envs). By default glibc hands large freed blocks back to the kernel, so the
next minibatch page-faults them in again: a 4,096-env update took 2.1M page
faults. With the thresholds below it takes 0.2M, and updates are 1.1-1.4x
faster (2-vCPU AMD EPYC VM, torch 2.15; docs/performance.md). The plain
version is glibc's defaults: same results, more page faults. A no-op where the
C library has no ``mallopt`` (macOS, musl, Windows).

Sharing the CPUs: training runs of this process take torch's thread count from
the CPUs they may use and the other esper trainers running on them
(``esper.runtime.threads``).

Freezing what is loaded: at the first training run's start the collector's
objects are frozen (``gc.freeze``): the millions that torch's import made are
then never swept again, by the run's collections or by the interpreter's
shutdown (an ``esper ppo`` process took 1.4-1.7 s to exit, docs/performance.md).
What the run builds (its state, compiled code) stays collectable, as it must:
triton's bindings warn of every object of theirs left alive at exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

from esper.runtime import threads

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's ceiling on 64-bit
TRIM_THRESHOLD_BYTES = 2**30
TOP_PAD_BYTES = 64 * 2**20

# None until keep_freed_memory() runs; then whether glibc accepted the thresholds.
freed_memory_kept: bool | None = None
_freeze_at_first_run = False  # the esper command's process, until its first run starts


def apply_process_settings() -> None:
    """Everything the ``esper`` command sets for its own process, in one call."""
    global _freeze_at_first_run
    keep_freed_memory()
    threads.enable()
    _freeze_at_first_run = True


def freeze_long_lived() -> None:
    """Before the first training run of the ``esper`` command's process builds
    anything: freeze what is loaded (a no-op elsewhere, and after the first)."""
    global _freeze_at_first_run
    if _freeze_at_first_run:
        _freeze_at_first_run = False
        gc.freeze()


def keep_freed_memory() -> bool:
    """Apply the allocator thresholds once per process; True where glibc accepted them."""
    global freed_memory_kept
    if freed_memory_kept is None:
        freed_memory_kept = _set_thresholds()
    return freed_memory_kept


def _set_thresholds() -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return all(
        mallopt(option, value) == 1
        for option, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            (_M_TOP_PAD, TOP_PAD_BYTES),
        )
    )
