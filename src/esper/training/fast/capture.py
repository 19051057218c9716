"""The batch in few launches: device-resident optimiser state, compiled steps, CUDA graphs.

The plain path (``rollout.collect_rollout``, ``ppo.ppo_update`` with the flat
Adam) is the reference. Everything here must equal it and is switched by
two settings:

- ``compile``: ``torch.compile`` (inductor) of the rollout step and of the
  minibatch step (forward, loss, backward, clipping and Adam in one graph),
  so each step's elementwise work runs as a few fused kernels.
- ``cuda_graphs``: on CUDA, a batch's rollout replays as one captured graph,
  its advantages as another and each update epoch as a third, so that a
  batch costs a handful of launches from Python instead of one per kernel
  (the design; no GPU has measured it yet, and tests/training/test_cuda.py's
  graphed-against-eager comparisons have not run). The first batch runs
  eagerly (the warm-up a capture needs) and the second is captured.

Both need the optimiser's step count and learning rate on the device
(``optimizer.DeviceAdam``, which the adaptive schedule uses too): a compiled
or captured step must read them, not bake in the
Python numbers of the step it was made from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, NamedTuple

import torch

from esper.envs.base import BatchedEnv
from esper.runtime.errors import UserError
from esper.training.distributed.collectives import Collectives
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.fused_update import fused_update
from esper.training.fast.optimizer import DeviceAdam
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RewardScaler, RunningMeanStd
from esper.training.ppo import (
    UPDATE_STATS,
    FlatBatch,
    MinibatchStep,
    UpdateSettings,
    minibatch_step,
    ppo_update,
    update_epoch,
)
from esper.training.rollout import RolloutBuffer, collect_rollout, rollout_step

# Eager batches before the capture: the first runs lazy initialisation
# (cuBLAS handles, autograd's buffers) that a capture must not contain.
WARMUP_BATCHES = 1


def uses_cuda_graphs(choice: str, device: torch.device, env: object, group: Collectives) -> bool:
    """Whether this run captures CUDA graphs. ``on`` where they cannot work is
    bad input; ``auto`` stays eager until a CUDA machine has measured the
    graphed path against it."""
    if choice != "on":
        return False
    why_not = (
        # Any group, a forced one of one rank too: a captured update would hold no
        # all-reduce, and the normalisers' merge would stop after the capture.
        "runs without a process group only (collectives stay outside graphs)"
        if group.active
        else "needs a CUDA device"
        if device.type != "cuda"
        else "is not yet measured with several agents per copy"
        if getattr(env, "n_agents", 1) > 1
        else "needs a batched task on the device (a gym: task steps on the CPU)"
        if not isinstance(env, BatchedEnv)
        else f"needs a torch whose CUDA graphs take a generator (not {torch.__version__})"
        if not hasattr(torch.cuda.CUDAGraph, "register_generator_state")
        else ""
    )
    if why_not:
        raise UserError(f"on {why_not}; use auto or off", setting="cuda_graphs")
    return True


# --- compiled steps ----------------------------------------------------------------


def traces_backward() -> bool:
    """Whether this torch's dynamo can trace ``backward()`` into a graph (the
    ``trace_autograd_ops`` setting, newer than some torch a GPU image carries)."""
    from torch._dynamo import config as dynamo_config

    return hasattr(dynamo_config, "trace_autograd_ops")


def compile_step(
    step: Callable[..., Any], backend: str = "inductor", autograd: bool = False
) -> Callable[..., Any]:
    """``step`` through ``torch.compile`` as one static graph (``fullgraph``: a graph
    break, a host read or a branch on a tensor's value is an error, not a slow path).
    ``autograd``: the step calls ``backward()``, which dynamo then traces into the
    same graph, a setting scoped to each call (a library must not change it
    process-wide)."""
    compiled = torch.compile(step, fullgraph=True, dynamic=False, backend=backend)
    if not autograd:
        return compiled
    from torch._dynamo import config as dynamo_config

    if not traces_backward():  # refused as the run is built, not at its first batch
        raise UserError(
            f"needs a torch whose dynamo traces backward() (trace_autograd_ops; "
            f"torch {torch.__version__} has not); run without it",
            setting="compile",
        )

    @functools.wraps(step)
    def call(*args: Any, **kwargs: Any) -> Any:
        with dynamo_config.patch(trace_autograd_ops=True):
            return compiled(*args, **kwargs)

    return call


@functools.cache
def compiled_rollout_step() -> Callable[..., torch.Tensor]:
    """``rollout_step`` through inductor, one graph for every step of a run."""
    return compile_step(rollout_step)


@functools.cache
def compiled_minibatch_step() -> MinibatchStep:
    """``minibatch_step`` through inductor: forward, backward, clipping and Adam."""
    return compile_step(minibatch_step, autograd=True)


# --- CUDA graphs -------------------------------------------------------------------


class _Captured:
    """Runs ``eager`` for the warm-up batches, then captures ``body`` once and
    replays it; ``body`` must read and write only tensors that outlive it."""

    def __init__(self) -> None:
        self.graph: torch.cuda.CUDAGraph | None = None
        self.calls = 0

    def warming_up(self) -> bool:
        self.calls += 1
        return self.graph is None and self.calls <= WARMUP_BATCHES

    def capture(
        self, part: str, body: Callable[[], None], generators: Iterable[torch.Generator]
    ) -> None:
        """Capture ``body``; a failure is one line naming ``part`` (the rollout, the
        advantages or the update) and the way out, not CUDA's "operation failed
        due to a previous error during capture" traceback."""
        graph = torch.cuda.CUDAGraph()
        for generator in generators:  # a replay draws new numbers from each
            graph.register_generator_state(generator)
        torch.cuda.synchronize()
        try:
            with torch.cuda.graph(graph):
                body()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise UserError(
                f"on: capturing the {part} as a CUDA graph failed "
                f"({type(exc).__name__}: {first}); use off",
                setting="cuda_graphs",
            ) from exc
        self.graph = graph


def _on_side_stream(run: Callable[[], Any]) -> Any:
    """Warm-up work on a side stream, as a capture needs (torch's CUDA graph notes)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = run()
    torch.cuda.current_stream().wait_stream(side)
    return out


class GraphedRollout(_Captured):
    """``collect_rollout`` whose whole batch of steps replays as one CUDA graph.

    The observation the next batch starts from lives in ``self.obs``: the graph
    ends by copying the last step's observation into it.
    """

    def __init__(self, step: Callable[..., torch.Tensor] = rollout_step) -> None:
        super().__init__()
        self.step = step
        self.obs: torch.Tensor | None = None

    def __call__(
        self,
        env: BatchedEnv,
        policy: ActorCritic,
        buffer: RolloutBuffer,
        next_obs: torch.Tensor,
        obs_normalizer: RunningMeanStd | None,
        episodes: EpisodeTracker,
        reward_scaler: RewardScaler | None = None,
        memory: torch.Tensor | None = None,
    ) -> torch.Tensor:
        args = (env, policy, buffer)
        rest = (obs_normalizer, episodes, reward_scaler, memory)  # memory: updated in place
        if self.warming_up():
            return _on_side_stream(lambda: collect_rollout(*args, next_obs, *rest, step=self.step))
        if self.graph is None:
            obs = self.obs = next_obs.clone()

            def body() -> None:
                obs.copy_(collect_rollout(*args, obs, *rest, step=self.step))

            self.capture("rollout", body, [env.generator])
        assert self.graph is not None and self.obs is not None
        if next_obs is not self.obs:  # a restored or fresh observation
            self.obs.copy_(next_obs)
        self.graph.replay()
        return self.obs


class GraphedUpdate(_Captured):
    """``ppo_update`` whose epochs each replay one CUDA graph.

    The batch is copied into static storage once per batch; each epoch's
    permutation is drawn eagerly into a static index (the same draw as the
    plain path), then the graph gathers, normalises and steps every minibatch.
    """

    def __init__(self, step: MinibatchStep = minibatch_step) -> None:
        super().__init__()
        self.step = step
        self.batch: FlatBatch | None = None
        self.order: torch.Tensor | None = None
        self.sums: torch.Tensor | None = None
        self.epoch_kl: torch.Tensor | None = None

    def __call__(
        self,
        policy: ActorCritic,
        optimizer: DeviceAdam,
        batch: FlatBatch,
        settings: UpdateSettings,
        group: Collectives | None = None,
    ) -> dict[str, torch.Tensor]:
        if self.warming_up():
            return _on_side_stream(
                lambda: ppo_update(policy, optimizer, batch, settings, group, self.step)
            )
        if self.graph is None:
            self._capture(policy, optimizer, batch, settings)
        assert self.graph is not None and self.batch is not None
        assert self.order is not None and self.sums is not None and self.epoch_kl is not None
        if "obs" not in batch.computed:
            assert batch.obs.data_ptr() == self.batch.obs.data_ptr(), "the rollout buffer moved"
        for name in _present(batch):  # the rest are views of the rollout buffer
            getattr(self.batch, name).copy_(getattr(batch, name))
        self.sums.zero_()
        minibatches = len(range(0, batch.size, settings.minibatch_size))
        epochs = 0
        for _ in range(settings.update_epochs):
            torch.randperm(batch.units, device=self.order.device, out=self.order)
            self.graph.replay()
            epochs += 1
            if settings.target_kl is not None:
                mean_kl = (self.epoch_kl / minibatches).item()  # host-sync: opt-in target_kl
                if mean_kl > settings.target_kl:
                    break
        return dict(zip(UPDATE_STATS, (self.sums / (epochs * minibatches)).unbind(0), strict=True))

    def _capture(
        self,
        policy: ActorCritic,
        optimizer: DeviceAdam,
        batch: FlatBatch,
        settings: UpdateSettings,
    ) -> None:
        static = self.batch = replace(
            batch, **{name: getattr(batch, name).clone() for name in _present(batch)}
        )
        # Filled by each epoch's randperm before its replay; not drawn here, so the
        # random stream stays the plain path's.
        order = self.order = torch.empty(batch.units, dtype=torch.int64, device=batch.obs.device)
        sums = self.sums = torch.zeros(len(UPDATE_STATS), device=batch.obs.device)
        epoch_kl = self.epoch_kl = torch.zeros((), device=batch.obs.device)
        group = Collectives()

        def body() -> None:
            total, kl = update_epoch(
                policy, optimizer, static, order, settings, sums, group, self.step
            )
            sums.copy_(total)
            epoch_kl.copy_(kl)

        self.capture("update", body, [])


def _present(batch: FlatBatch) -> list[str]:
    """The batch's computed fields it has (an unmasked task has no masks)."""
    return [name for name in batch.computed if getattr(batch, name) is not None]


class GraphedAdvantages(_Captured):
    """``batch_advantages`` replayed as one CUDA graph: the time loop of GAE is
    one launch instead of a few per step. The observation after the batch is
    copied into a static input; the advantages and returns it gives back are
    the graph's own tensors, overwritten by the next replay."""

    def __init__(self) -> None:
        super().__init__()
        self.last_obs: torch.Tensor | None = None
        self.out: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(
        self,
        rollout: RolloutBuffer,
        last_obs: torch.Tensor,
        value_of: Callable[[torch.Tensor], torch.Tensor],
        gamma: float,
        gae_lambda: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.warming_up():
            return _on_side_stream(
                lambda: batch_advantages(rollout, last_obs, value_of, gamma, gae_lambda)
            )
        if self.graph is None:
            static = self.last_obs = last_obs.clone()

            def body() -> None:
                self.out = batch_advantages(rollout, static, value_of, gamma, gae_lambda)

            self.capture("advantages", body, [])
        assert self.graph is not None and self.last_obs is not None and self.out is not None
        self.last_obs.copy_(last_obs)
        self.graph.replay()
        return self.out


class BatchSteps(NamedTuple):
    """A run's rollout, advantages and update, each plain, compiled or graphed,
    with the plain functions' arguments and results."""

    collect: Callable[..., torch.Tensor]
    advantages: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    update: Callable[..., dict[str, torch.Tensor]]


def batch_steps(config: Any, device: torch.device, env: object, group: Collectives) -> BatchSteps:
    """The run's steps: plain, compiled, graphed, or compiled and graphed."""
    graphs = uses_cuda_graphs(config.cuda_graphs, device, env, group)
    rollout_fn = compiled_rollout_step() if config.compile else rollout_step
    step_fn = compiled_minibatch_step() if config.compile else minibatch_step
    if graphs:
        return BatchSteps(GraphedRollout(rollout_fn), GraphedAdvantages(), GraphedUpdate(step_fn))
    if not config.compile:  # eager: the fused update where it covers the batch
        return BatchSteps(
            collect_rollout, batch_advantages, fused_update if config.speedups else ppo_update
        )
    return BatchSteps(
        functools.partial(collect_rollout, step=rollout_fn),
        batch_advantages,
        functools.partial(ppo_update, step=step_fn),
    )
