"""Where a batch's time and memory go, measured without making the rollout wait.

On CUDA the marks are CUDA events read after the batch's one host transfer;
on the CPU they are wall-clock readings.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import torch


class BatchClock:
    """Marks ``start``, ``rollout_done`` and ``update_done`` of one batch."""

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._events: dict[str, torch.cuda.Event] = {}
        self._times: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self._times[name] = time.perf_counter()
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events[name] = event

    def split(self) -> tuple[float, float]:
        """``(rollout_seconds, update_seconds)``; call after the batch has synced."""
        if self._cuda:
            rollout = self._events["start"].elapsed_time(self._events["rollout_done"]) / 1e3
            update = self._events["rollout_done"].elapsed_time(self._events["update_done"]) / 1e3
            return rollout, update
        t = self._times
        return t["rollout_done"] - t["start"], t["update_done"] - t["rollout_done"]

    def since_start(self) -> float:
        return time.perf_counter() - self._times["start"]


def memory_usage_mb(device: torch.device) -> dict[str, float | None]:
    """Peak resident memory of this process, and CUDA memory allocated by torch.

    Peak RSS is what the memory budget is about (a 4,096-env CartPole run stays
    under 1 GB); both are read from counters, never from the device stream.
    """
    cuda_mb = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"process_memory_mb": peak_rss_mb(), "cuda_memory_mb": cuda_mb}


def peak_rss_mb() -> float:
    """This process's own peak RSS. Linux's ``VmHWM`` first: ``ru_maxrss`` survives
    ``exec``, so a trainer started by a large parent (a test runner, a notebook)
    would report the parent's peak as its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
