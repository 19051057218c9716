"""What of a batch's statistics two runs must agree on."""

from __future__ import annotations

# Measurements of the machine, not of training: they differ between processes.
TIMING = {
    "sps",
    "batch_seconds",
    "rollout_seconds",
    "update_seconds",
    "process_memory_mb",
    "cuda_memory_mb",
}


def learning_fields(stats: dict) -> dict:
    """A batch's statistics less the machine's timings and memory."""
    return {k: v for k, v in stats.items() if k not in TIMING}
