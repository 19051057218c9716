"""The batch's one trip from the device to the host, by name end to end.

Every statistic a batch makes on the device (the metrics table's ``DEVICE``
fields) is packed into one flat tensor in table order. With several ranks the
stop request and the host-measured memory ride along as extra columns, so one
collective combines them all, each column as the table says. A task's own
statistics (``BatchedEnv.batch_statistics``) ride after the table's columns,
combined by their mean. Then one ``.tolist()`` brings the batch home and the
columns are read back by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from esper.telemetry.metrics import (
    BATCH_COMPLETED_FIELDS,
    BATCH_FIELDS,
    Absent,
    Field,
    Reduction,
    Source,
)
from esper.training.distributed.collectives import Collectives

# The batch's device statistics, in the order of the packed tensor.
PACKED_FIELDS: tuple[Field, ...] = tuple(
    f for f in BATCH_COMPLETED_FIELDS if f.source is Source.DEVICE
)
# How several ranks combine each packed column; a WEIGHTED column is weighted by this one.
PACKED_REDUCTIONS: tuple[Reduction, ...] = tuple(f.reduction for f in PACKED_FIELDS)
PACKED_WEIGHT_COLUMN: int = next(
    i for i, f in enumerate(PACKED_FIELDS) if f.name == "episodes_finished"
)
# Host-measured BATCH_COMPLETED fields that only several ranks need to combine.
MEMORY_FIELDS: tuple[str, ...] = ("process_memory_mb", "cuda_memory_mb")
# The column after the packed statistics when ranks combine: anyone's stop stops all.
STOP_REDUCTION = Reduction.MAX


@dataclass(frozen=True)
class BatchReport:
    """What the batch's transfer brought to the host: the job's values."""

    stats: dict[str, Any]  # the DEVICE fields of BATCH_COMPLETED, by name (task_statistics too)
    memory: dict[str, float | None]  # MEMORY_FIELDS, by name (the job's largest)
    stop_requested: bool  # by this process, or (several ranks) by any rank


def pack_device_stats(values: Mapping[str, torch.Tensor | float]) -> torch.Tensor:
    """``[len(PACKED_FIELDS)]`` float64 on the device: the named scalars in table order.

    An episode statistic of a batch in which no episode ended is NaN (mean) or
    +inf/-inf (min/max) here and ``None`` after ``unpack_device_stats``. A value
    the host holds already (a Python number: the learning rate of a host
    schedule) is not sent: its column carries a placeholder, and ``to_host``
    puts the number back, so a host value costs the device nothing.
    """
    names = [f.name for f in PACKED_FIELDS]
    if set(values) != set(names):
        missing, extra = set(names) - set(values), set(values) - set(names)
        raise KeyError(f"packed statistics differ from the table: missing {missing}, extra {extra}")
    placeholder = next(v for v in values.values() if isinstance(v, torch.Tensor))
    columns = [values[n] if isinstance(values[n], torch.Tensor) else placeholder for n in names]
    # One stack of the 0-d scalars, then one cast: cheaper than a cast per scalar.
    return torch.stack(columns).to(torch.float64)


def unpack_device_stats(host: Sequence[float]) -> dict[str, Any]:
    """The packed statistics as BATCH_COMPLETED fields, by name (host values, no tensors)."""
    if len(host) != len(PACKED_FIELDS):
        raise ValueError(f"{len(host)} packed values for {len(PACKED_FIELDS)} fields")
    values: dict[str, Any] = {f.name: v for f, v in zip(PACKED_FIELDS, host, strict=True)}
    no_episode = values["episodes_finished"] == 0
    for f in PACKED_FIELDS:
        if f.type is int:
            values[f.name] = round(values[f.name])  # a count that crossed as float64
        elif no_episode and f.absent is Absent.NO_EPISODE:
            values[f.name] = None
    return values


def combine_ranks(
    group: Collectives,
    packed: torch.Tensor,
    stop_requested: bool,
    memory: Mapping[str, float | None],
    task_columns: int = 0,
) -> torch.Tensor:
    """The packed statistics (the table's, then ``task_columns`` of the task's),
    then the stop request, then ``memory`` in MEMORY_FIELDS order, combined over
    the ranks in one collective. NaN carries memory a rank cannot measure (CUDA
    memory off CUDA)."""
    extra = [1.0 if stop_requested else 0.0, *(_or_nan(memory[name]) for name in MEMORY_FIELDS)]
    kinds = (
        *PACKED_REDUCTIONS,
        *[Reduction.MEAN] * task_columns,
        STOP_REDUCTION,
        *(BATCH_FIELDS[name].reduction for name in MEMORY_FIELDS),
    )
    return group.reduce_fields(
        torch.cat((packed, packed.new_tensor(extra))), kinds, PACKED_WEIGHT_COLUMN
    )


def to_host(
    device_stats: Mapping[str, torch.Tensor | float],
    memory: Mapping[str, float | None],
    stop_requested: bool,
    group: Collectives,
    task_stats: Mapping[str, torch.Tensor] | None = None,
) -> BatchReport:
    """The batch's one device-to-host transfer (after one collective with several
    ranks). ``task_stats``: the task's 0-d statistics, by name, packed after the
    table's; NaN (nothing to report) arrives as None in ``task_statistics``."""
    packed = pack_device_stats(device_stats)
    task_names = list(task_stats or {})
    if task_names:  # one more stack and cat: only for a task with statistics
        task_column = torch.stack([task_stats[n] for n in task_names])  # type: ignore[index]
        packed = torch.cat((packed, task_column.to(packed.dtype)))
    if group.active:
        packed = combine_ranks(group, packed, stop_requested, memory, len(task_names))
    host = packed.tolist()  # host-sync: the batch's one transfer
    stats = unpack_device_stats(host[: len(PACKED_FIELDS)])
    stats.update((k, v) for k, v in device_stats.items() if not isinstance(v, torch.Tensor))
    end = len(PACKED_FIELDS) + len(task_names)
    if task_names:
        task_values = host[len(PACKED_FIELDS) : end]
        stats["task_statistics"] = {
            name: _or_none(value) for name, value in zip(task_names, task_values, strict=True)
        }
    if not group.active:
        return BatchReport(stats, dict(memory), stop_requested)
    stop, *job_memory = host[end:]
    return BatchReport(
        stats,
        {name: _or_none(v) for name, v in zip(MEMORY_FIELDS, job_memory, strict=True)},
        stop > 0,
    )


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value
