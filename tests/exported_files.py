"""Running an exported policy file the way a deployment would: ONNX through
onnxruntime (skipped where it is not installed), TorchScript through torch.jit."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch


def run_exported(path: Path, format: str, obs: torch.Tensor) -> torch.Tensor:
    """The file's ``action`` output for ``obs``."""
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["action"], {"obs": obs.numpy()})[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        return torch.jit.load(str(path))(obs)
