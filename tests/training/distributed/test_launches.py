"""What one batch asks of the device: the ops Python dispatches, counted and pinned.

On a GPU each dispatched op is a kernel launch from Python, and launches, not
arithmetic, are what a small batch costs. The count of the default CartPole
batch is pinned, so a change that adds work to every step is seen here; when
a change means to alter it, update the figure with the reason in the commit.
The compiled batch must dispatch a fraction of it (under half) (counted by the profiler:
a compiled graph's fused kernels do not pass through the dispatcher).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.config.layers import build_config
from esper.runs.directory import RunDir
from esper.training.fast.dispatch_count import DispatchCounter
from esper.training.interrupt import StopRequest
from esper.training.loop import train_batch
from esper.training.rollout import RolloutBuffer
from esper.training.state import build_state

# Ops of one default CartPole batch (128 envs x 64 steps, 4 epochs of 8
# minibatches) on the CPU with torch 2.15, views included: ~3,800 in the
# rollout (~59 per environment step: the fused actor-critic forward and
# sampling ~15, CartPole's step ~28, buffer writes 8, episode records 4), ~180
# in GAE (2 per step), ~2,550 in the update (~79 per minibatch step: the fused
# forward 10, the loss and its hand-written gradient ~38, the MLPs' backward
# 19, clipping and fused Adam 6; training/fast/fused_update.py). Before the
# fused paths (speedups off, or issue 25's parent commit, 6 epochs): 16,095.
# 7,822 with the 6 epochs the default had until 2026-12-07 (4 epochs at a
# learning rate of 3e-3 solve as reliably: configs/cartpole.toml).
EAGER_OPS_PER_BATCH = 6_558


def default_cartpole(tmp_path: Path, **changes):
    """The README's default run, its state and rollout buffer, two batches in."""
    config = build_config(None, {"device": "cpu", "run_dir": str(tmp_path), **changes})
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    buffer = RolloutBuffer.allocate(
        config.horizon, config.n_envs, state.env.obs_dim, state.env.action_space.shape, "cpu"
    )
    for _ in range(2):  # warm: lazy initialisation, and compilation with --compile
        train_batch(config, state, buffer, StopRequest())
    return config, state, buffer


def test_the_default_batch_dispatches_the_pinned_number_of_ops(tmp_path: Path) -> None:
    config, state, buffer = default_cartpole(tmp_path)
    counter = DispatchCounter()
    with counter:
        train_batch(config, state, buffer, StopRequest())
    total = sum(counter.ops.values())
    assert total == EAGER_OPS_PER_BATCH, (
        f"one default batch now dispatches {total:,} ops (pinned: {EAGER_OPS_PER_BATCH:,}); "
        f"most frequent: {counter.ops.most_common(5)}"
    )


@pytest.mark.slow
def test_a_compiled_batch_dispatches_a_fraction_of_the_eager_ops(tmp_path: Path) -> None:
    import torch._dynamo

    torch._dynamo.reset()
    config, state, buffer = default_cartpole(tmp_path, compile=True)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        train_batch(config, state, buffer, StopRequest())
    dispatched = [
        e
        for e in profile.events()
        if e.name.startswith("aten::")
        and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
    ]
    # 2,181 at torch 2.15 (mostly the extern matmuls and their views; ~2,900 with
    # 6 epochs): a third of the eager batch's
    assert len(dispatched) < EAGER_OPS_PER_BATCH / 2, len(dispatched)
    torch._dynamo.reset()


def test_the_pinned_count_is_of_the_default_batch_s_shape(tmp_path: Path) -> None:
    """A change to CartPole's defaults changes the count: this says which."""
    config, state, _ = default_cartpole(tmp_path)
    assert (config.n_envs, config.horizon, config.update_epochs) == (128, 64, 4)
    assert config.batch_size // config.minibatch_size == 8
    assert state.batch == 2
