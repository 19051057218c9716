"""Picking the training device at run time (CI has no GPU; users mostly do)."""

from __future__ import annotations

import torch

from esper.runtime.errors import ConfigError


def resolve_device(requested: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU; an unusable request is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ConfigError(
            "device", f"'{requested}' is not a device (use auto, cpu, cuda or cuda:N)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", "CUDA is not available on this machine; use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                "device",
                f"{requested} does not exist ({torch.cuda.device_count()} CUDA device(s))",
            )
    elif device.type != "cpu":
        raise ConfigError("device", f"'{requested}' is not supported (use auto, cpu or cuda)")
    return device
