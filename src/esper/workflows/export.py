"""``esper export``: a trained policy as one file that runs without esper or Python.

The file holds ``load_policy``'s deterministic policy, the observation
normaliser folded in (``training/deterministic.py``): observations in, the
actions the environment would receive out. Two formats:

- ``onnx`` (the ``export`` extra): ``torch.onnx`` through ``torch.export``;
  onnxruntime or any ONNX runtime runs it, with a dynamic batch axis.
- ``torchscript``: a traced ``torch.jit`` module, for ``torch.jit.load``
  in Python or libtorch in C++; no extra.

The exporter reads its inputs and outputs from the module (``input_names``,
``output_names``, ``batch_dims``, ``example_inputs``), so a policy kind with
more inputs (a recurrent one's hidden state) exports through the same code.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from esper.runtime.errors import ConfigError
from esper.runtime.extras import import_extra
from esper.runtime.outputs import check_output_file
from esper.training.policy.deterministic import DeterministicPolicy
from esper.workflows.inference import load_policy

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}  # format -> the default file's suffix


def default_format() -> str:
    """``onnx`` when the export extra is installed, else ``torchscript`` (no extra)."""
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return "torchscript"
    return "onnx"


def export_policy(
    run_dir: Path | str,
    format: str | None = None,
    checkpoint: int | str | None = None,
    output: Path | str | None = None,
    *,
    stochastic: bool = False,
) -> Path:
    """Write the policy of ``run_dir``'s checkpoint (the newest when None, ``"best"``:
    the best evaluation's) as ``format`` (None: ``default_format()``); returns the file.

    The policy is deterministic, or with ``stochastic`` samples as training does,
    its noise an input (``StochasticPolicy``). The default file is
    ``RUN_DIR/policy_batch_K.onnx`` (``.pt`` for TorchScript; ``_stochastic`` before
    the suffix for a stochastic one).
    """
    format = format or default_format()
    if format not in FORMATS:
        raise ConfigError("format", f"must be {' or '.join(FORMATS)} (got {format!r})")
    if format == "onnx":  # before loading anything: a missing extra is the first thing said
        import_extra("onnx", "export", "format")
        import_extra("onnxscript", "export", "format")
    if output is not None:  # before loading anything too
        check_output_file(output, "output")
    policy = load_policy(run_dir, checkpoint, device="cpu")
    module = policy.stochastic_module() if stochastic else policy.deterministic_module()
    if output is None:
        kind = "_stochastic" if stochastic else ""
        output = (
            policy.run_dir / f"policy_batch_{policy.checkpoint_batch:06d}{kind}{FORMATS[format]}"
        )
    path = check_output_file(output, "output")
    write = write_onnx if format == "onnx" else write_torchscript
    write(module, path)
    return path


@contextmanager
def _quiet_exporters() -> Iterator[None]:
    """For this call only: no FutureWarning that ``torch.jit`` is deprecated, no
    UserWarning about naming a shared batch axis once, and no exporter log lines
    about operators of packages esper does not use (torchvision)."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
            # A recurrent policy's inputs (observations, memory) share one batch axis:
            # the exporter says it names that axis once, which is what is meant.
            warnings.filterwarnings(
                "ignore", message=r"# The axis name: \w+ will not be used", category=UserWarning
            )
            yield
    finally:
        log.setLevel(level)


def write_torchscript(module: DeterministicPolicy, path: Path) -> None:
    """``module`` traced on its example inputs and saved for ``torch.jit.load``."""
    with torch.no_grad(), _quiet_exporters():
        traced = torch.jit.trace(module, module.example_inputs(), check_trace=False)
        torch.jit.save(traced, str(path))


def write_onnx(module: DeterministicPolicy, path: Path) -> None:
    """``module`` through ``torch.export`` into ONNX, every input's batch axis dynamic."""
    batch = torch.export.Dim("batch", min=1)
    dynamic_shapes = tuple({axis: batch} for axis in module.batch_dims)
    with torch.no_grad(), _quiet_exporters():
        torch.onnx.export(
            module,
            module.example_inputs(),
            str(path),
            input_names=list(module.input_names),
            output_names=list(module.output_names),
            dynamic_shapes=dynamic_shapes,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
