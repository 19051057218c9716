"""TensorBoard gets the run's hyperparameters: the config as a text table at the start."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

import esper


def test_the_config_is_a_text_summary(tmp_path: Path) -> None:
    outcome = esper.train(
        episodes=1, n_envs=4, horizon=8, n_minibatches=1, learning_rate=0.0123,
        device="cpu", run_dir=str(tmp_path), tensorboard=True, progress=False,
    )  # fmt: skip
    assert outcome.status == "completed"
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    (tag,) = [t for t in events.Tags()["tensors"] if t.startswith("hyperparameters")]
    (entry,) = events.Tensors(tag)
    text = entry.tensor_proto.string_val[0].decode()
    assert "| learning_rate | `0.0123` |" in text
    assert "| n_envs | `4` |" in text
    assert entry.step == 0
