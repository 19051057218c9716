"""The metrics table is the one declaration: payloads, packing and the console agree with it."""

from __future__ import annotations

import dataclasses
import typing

import pytest
import torch

from esper.sanctum.health import THRESHOLDS
from esper.sanctum.schema import SanctumSnapshot
from esper.telemetry.events import (
    BatchCompletedPayload,
    TrainingStartedPayload,
)
from esper.telemetry.field import Absent, Field
from esper.telemetry.metrics import BATCH_COMPLETED_FIELDS, TRAINING_STARTED_FIELDS
from esper.training.episode_stats import EpisodeTracker
from esper.training.transfer import PACKED_FIELDS, pack_device_stats, unpack_device_stats

TABLES = [
    (BatchCompletedPayload, BATCH_COMPLETED_FIELDS),
    (TrainingStartedPayload, TRAINING_STARTED_FIELDS),
]


def expected_annotation(spec: Field) -> object:
    base = dict[str, typing.Any] if spec.type is dict else spec.type
    return base if spec.absent is Absent.NEVER else base | None


@pytest.mark.parametrize(("payload", "table"), TABLES, ids=lambda x: getattr(x, "__name__", ""))
def test_payload_dataclass_agrees_with_the_table(payload, table) -> None:
    hints = typing.get_type_hints(payload)
    fields = dataclasses.fields(payload)
    assert [f.name for f in fields] == [spec.name for spec in table]
    for f, spec in zip(fields, table, strict=True):
        assert hints[f.name] == expected_annotation(spec), f.name
        has_default = f.default is not dataclasses.MISSING or (
            f.default_factory is not dataclasses.MISSING
        )
        assert has_default is not spec.required, f.name
        if has_default:
            made = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert made == spec.default, f.name


def test_record_ids_are_unique() -> None:
    ids = [spec.id for _, table in TABLES for spec in table]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("spec", BATCH_COMPLETED_FIELDS + TRAINING_STARTED_FIELDS, ids=str)
def test_sanctum_path_names_a_snapshot_field(spec: Field) -> None:
    if spec.sanctum is None:
        return
    value: object = SanctumSnapshot()
    for part in spec.sanctum.split("."):
        assert hasattr(value, part), spec.sanctum
        value = getattr(value, part)


def device_scalars(**changes: float) -> dict[str, torch.Tensor]:
    values = {f.name: float(i + 1) for i, f in enumerate(PACKED_FIELDS)}
    values.update(changes)
    return {name: torch.tensor(v, dtype=torch.float32) for name, v in values.items()}


def test_packing_is_one_flat_float64_tensor_unpacked_by_name() -> None:
    packed = pack_device_stats(device_scalars(episodes_finished=3.0, grad_norm=0.25))
    assert packed.dtype == torch.float64 and packed.shape == (len(PACKED_FIELDS),)
    host = unpack_device_stats(packed.tolist())
    assert host["episodes_finished"] == 3 and isinstance(host["episodes_finished"], int)
    assert host["grad_norm"] == 0.25
    assert list(host) == [f.name for f in PACKED_FIELDS]


def test_packing_names_a_missing_or_unknown_statistic() -> None:
    scalars = device_scalars()
    scalars.pop("approx_kl")
    scalars["old_approx_kl"] = torch.tensor(0.0)
    with pytest.raises(KeyError, match="approx_kl"):
        pack_device_stats(scalars)


def test_a_batch_without_finished_episodes_unpacks_to_none() -> None:
    tracker = EpisodeTracker(4, torch.device("cpu"), horizon=3)
    host = unpack_device_stats(pack_device_stats(device_scalars(**{}) | tracker.totals()).tolist())
    assert host["episodes_finished"] == 0
    assert [host[f.name] for f in PACKED_FIELDS if f.absent is Absent.NO_EPISODE] == [None] * 4


def test_episode_totals_pack_into_the_payloads_fields() -> None:
    tracker = EpisodeTracker(2, torch.device("cpu"), horizon=3)
    done = torch.tensor([False, False])
    tracker.record(0, torch.tensor([1.0, 1.0]), done)
    tracker.record(1, torch.tensor([1.0, 2.0]), torch.tensor([True, False]))
    tracker.record(2, torch.tensor([5.0, 2.0]), torch.tensor([True, True]))
    host = unpack_device_stats(pack_device_stats(device_scalars() | tracker.totals()).tolist())
    # Ended: 2 (length 2) at step 1; 5 (length 1) and 5 (length 3) at step 2.
    assert host["episodes_finished"] == 3
    assert host["episode_return_mean"] == pytest.approx(4.0)
    assert (host["episode_return_min"], host["episode_return_max"]) == (2.0, 5.0)
    assert host["episode_length_mean"] == pytest.approx(2.0)


def test_sanctum_health_comes_from_the_table() -> None:
    assert {f.name: f.health for f in BATCH_COMPLETED_FIELDS if f.health} == THRESHOLDS
    assert THRESHOLDS["approx_kl"].warn == 0.02
