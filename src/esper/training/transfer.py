"""The batch's one trip from the device to the host, by name end to end.

Every statistic a batch makes on the device (the metrics table's ``DEVICE``
fields) is packed into one flat tensor in table order. With several ranks the
stop request and the host-measured memory ride along as extra columns, so one
collective combines them all, each column as the table says. A task's own
statistics (``BatchedEnv.batch_statistics``) ride after the table's columns as
a total and a weight each, summed over the ranks; the host then divides a
mean's total by its weight (``TaskStatistic.kind``). Then one ``.tolist()``
brings the batch home and the columns are read back by name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from esper.envs.base import TaskStatistic
from esper.telemetry.field import Absent, Field, Reduction, Source
from esper.telemetry.metrics import BATCH_COMPLETED_FIELDS, BATCH_FIELDS
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
# Then a column every rank sends as 1: its minimum is 1 only when every rank's row
# arrived (an aborted collective leaves its rows NaN, ``Collectives.gather_all``).
ARRIVED_REDUCTION = Reduction.MIN


class LostBatchReport(RuntimeError):
    """A rank's statistics did not arrive in the batch's collective (an aborted
    communicator): the batch has no report, and the job fails."""


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
    """The packed statistics (the table's, then ``task_columns`` of the task's,
    totals and weights, summed),
    then the stop request, the arrival column, then ``memory`` in MEMORY_FIELDS
    order, combined over the ranks in one collective. NaN carries memory a rank
    cannot measure (CUDA memory off CUDA)."""
    stop = 1.0 if stop_requested else 0.0
    extra = [stop, 1.0, *(_or_nan(memory[name]) for name in MEMORY_FIELDS)]
    kinds = (
        *PACKED_REDUCTIONS,
        *[Reduction.SUM] * task_columns,
        STOP_REDUCTION,
        ARRIVED_REDUCTION,
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
    task_stats: Mapping[str, Any] | None = None,
    declared: Sequence[TaskStatistic] = (),
) -> BatchReport:
    """The batch's one device-to-host transfer (after one collective with several
    ranks). ``task_stats``: the task's statistics (``batch_statistics``) of the
    ``declared`` ones, packed after the table's as a total and a weight each;
    nothing to report arrives as None in ``task_statistics``."""
    packed = pack_device_stats(device_stats)
    task_width = 2 * len(declared) if task_stats else 0
    if task_width:  # a few more ops: only for a task with statistics
        packed = torch.cat((packed, pack_task_stats(declared, task_stats)))  # type: ignore[arg-type]
    if group.active:
        packed = combine_ranks(group, packed, stop_requested, memory, task_width)
    host = packed.tolist()  # host-sync: the batch's one transfer
    end = len(PACKED_FIELDS) + task_width  # the stop request, then the arrival column
    if group.active and host[end + 1] != 1.0:  # NaN: a row never written
        raise LostBatchReport("a rank's batch statistics did not arrive (collective aborted)")
    stats = unpack_device_stats(host[: len(PACKED_FIELDS)])
    stats.update((k, v) for k, v in device_stats.items() if not isinstance(v, torch.Tensor))
    if task_width:
        stats["task_statistics"] = unpack_task_stats(declared, host[len(PACKED_FIELDS) : end])
    if not group.active:
        return BatchReport(stats, dict(memory), stop_requested)
    stop, _arrived, *job_memory = host[end:]
    return BatchReport(
        stats,
        {name: _or_none(v) for name, v in zip(MEMORY_FIELDS, job_memory, strict=True)},
        stop > 0,
    )


def pack_task_stats(declared: Sequence[TaskStatistic], values: Mapping[str, Any]) -> torch.Tensor:
    """``[2 * len(declared)]`` float64 on the device: each statistic's total and
    weight, which ranks sum. A mean given as one tensor weighs 1 (0 when NaN:
    nothing to report); a count weighs 1."""
    columns: list[torch.Tensor] = []
    for statistic in declared:
        value = values[statistic.name]
        if isinstance(value, tuple):
            total, weight = value
        else:
            weight = (~value.isnan()).to(value.dtype)
            total = torch.where(weight > 0, value, 0.0)
        columns += [total, weight]
    return torch.stack(columns).to(torch.float64)


def unpack_task_stats(declared: Sequence[TaskStatistic], host: Sequence[float]) -> dict:
    """The job's value of each statistic: a count's total, a mean's total over its
    weight; None where nothing was reported (weight 0)."""
    out: dict[str, float | None] = {}
    for i, statistic in enumerate(declared):
        total, weight = host[2 * i], host[2 * i + 1]
        if weight <= 0 or not math.isfinite(weight):
            out[statistic.name] = None
        else:
            out[statistic.name] = _or_none(total if statistic.kind == "count" else total / weight)
    return out


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def _or_none(value: float) -> float | None:
    return None if math.isnan(value) else value
