"""``compile=True`` must train as ``compile=False`` does, end to end.

test_capture.py compares single steps; here whole batches run through
``train_batch``: rollout with auto-resets inside it, GAE, every epoch's
minibatches, DeviceAdam. Dynamo's ``error_on_recompile`` is on, so a batch
that retraces (a shape, a Python value or a guard that changes per step or per
batch) fails instead of silently compiling again. Small runs: CI has 2 cores.

Tolerance: the compiled steps fuse ops (other rounding) and step with
DeviceAdam, whose bias corrections are device float64 where FlatAdam's are
Python floats, so results agree to float32 rounding grown over a few dozen
optimiser steps, not bit for bit: rtol 1e-4, atol 1e-5 (passes with margin unmeasured).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from esper.config.layers import build_config
from esper.runs.directory import RunDir
from esper.training.interrupt import StopRequest
from esper.training.loop import train_batch
from esper.training.rollout import RolloutBuffer
from esper.training.state import build_state

BATCHES = 3
COMPARED = ("policy_loss", "value_loss", "entropy", "approx_kl", "grad_norm", "episodes_finished")


@pytest.fixture(autouse=True)
def fresh_compiler():
    """Each test compiles from nothing, so no other test's graphs count as recompiles."""
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def train(tmp_path: Path, compile: bool, **settings) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """``BATCHES`` batches of a small run; each batch's report and the final weights."""
    run_dir = tmp_path / ("compiled" if compile else "eager")
    config = build_config(None, {"device": "cpu", "run_dir": str(run_dir), "seed": 5,
                                 "compile": compile, **settings})  # fmt: skip
    state = build_state(config, torch.device("cpu"), RunDir(run_dir))
    env = state.env
    buffer = RolloutBuffer.allocate(
        config.horizon, env.num_envs, env.obs_dim, env.action_space.shape, "cpu",
        obs_dtype=env.spec.obs_dtype, memory_size=state.policy.memory_size,
    )  # fmt: skip
    history = [train_batch(config, state, buffer, StopRequest())[0] for _ in range(BATCHES)]
    return history, {k: v.detach().clone() for k, v in state.policy.state_dict().items()}


def assert_trains_alike(tmp_path: Path, **settings) -> list[dict]:
    import torch._dynamo

    eager, eager_weights = train(tmp_path, compile=False, **settings)
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled, compiled_weights = train(tmp_path, compile=True, **settings)
    for batch, (plain, fast) in enumerate(zip(eager, compiled, strict=True)):
        for name in COMPARED:
            assert math.isclose(fast[name], plain[name], rel_tol=1e-4, abs_tol=1e-5), (
                f"batch {batch + 1}: {name} compiled {fast[name]} against eager {plain[name]}"
            )
    for name, weight in eager_weights.items():
        torch.testing.assert_close(compiled_weights[name], weight, rtol=1e-4, atol=1e-5)
    return eager


def test_compiled_cartpole_trains_as_eager_across_episode_ends(tmp_path: Path) -> None:
    history = assert_trains_alike(
        tmp_path, task="cartpole", n_envs=8, horizon=32, n_minibatches=2, update_epochs=2
    )
    assert all(batch["episodes_finished"] > 0 for batch in history)  # resets inside each batch


@pytest.mark.slow
def test_a_compiled_gru_trains_as_eager_on_cartpole_without_velocity(tmp_path: Path) -> None:
    history = assert_trains_alike(
        tmp_path, task="cartpole-no-velocity", recurrent="gru", rnn_hidden=16,
        n_envs=8, horizon=8, n_minibatches=2, update_epochs=2,
    )  # fmt: skip
    assert sum(batch["episodes_finished"] for batch in history) > 0


def test_a_compiled_run_keeps_its_thread_count_when_the_machine_gets_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``esper`` command rebalances torch's threads between batches by the
    CPUs' load, and a cold compile's C++ compilers are load: the count fell from
    2 to 1 after batch 1 and every graph compiled again (dynamo guards on it),
    a cold run's batch 2 taking as long as its first. Here the share changes at
    every look, and a recompilation fails the run."""
    import torch._dynamo

    from esper.runtime import threads
    from esper.telemetry.hub import TelemetryHub
    from esper.training import run_vectorized_ppo

    looks: list[int] = []

    def flipping_share(self, others_busy: float = 0.0) -> int:
        looks.append(1)
        return 1 + len(looks) % 2  # 2, 1, 2, ...: another count at every look

    before = torch.get_num_threads()
    for name in threads.EXPLICIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # the registry, this test's own
    monkeypatch.setattr(threads, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(threads.CpuShare, "threads", flipping_share)
    monkeypatch.setattr(threads, "_enabled", True)
    monkeypatch.setattr(threads, "_share", None)
    monkeypatch.setattr(threads, "_held", False)
    settings = {
        "task": "cartpole",
        "n_envs": 8,
        "horizon": 32,
        "n_minibatches": 2,
        "update_epochs": 2,
        "n_batches": BATCHES,
        "seed": 5,
    }  # the test above's shapes
    config = build_config(None, {"device": "cpu", "run_dir": str(tmp_path / "run"),
                                 "compile": True, **settings})  # fmt: skip
    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = run_vectorized_ppo(config, TelemetryHub())
        claimed = torch.get_num_threads()
    finally:
        share = threads._share
        if share is not None:
            share.registry.leave()
        torch.set_num_threads(before)
    assert len(result.history) == BATCHES
    assert (looks, claimed) == ([1], 2)  # the share was taken once, at the start
