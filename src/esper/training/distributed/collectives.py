"""One training over several processes: who this process is, and the few
collectives the trainer needs.

torchrun (``python -m torch.distributed.run``, or ``training/launch.py``)
starts one process per rank and sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (read by ``esper.runtime.torchrun_env``). A process outside torchrun
sees none of them and runs as world size 1: every collective below is then a
no-op and ``torch.distributed`` is never imported (importing it costs seconds).
``ESPER_FORCE_DIST=1`` makes a world-size-1 torchrun job build the group and
run every collective anyway (the device check exercises nccl on one GPU so).

What crosses ranks, and when:

- at the start: the config and run-dir checks (rank 0 decides, errors included),
  the parameters (broadcast from rank 0), and a resume's checkpoint;
- per minibatch step: one all-reduce of the flat gradient buffer (averaged);
- per update epoch: the minibatches' advantage moments (global normalisation);
- per batch, only with ``normalize_obs`` / ``normalize_reward``: each running
  normaliser's moments since the last merge (every rank folds in its own steps
  as they come, and the job's moments replace them once a batch);
- per batch: one all-gather of the batch's packed statistics with the stop flag,
  each column combined as the metrics table's ``Field.reduction`` says;
- per checkpoint: every rank's environment state, gathered to rank 0.

Every collective runs under the process group's timeout
(``ESPER_DIST_TIMEOUT`` seconds, default 120), so a dead rank ends the others.
On nccl the communicator is to be aborted when a collective fails or times out
(``TORCH_NCCL_ASYNC_ERROR_HANDLING=2`` unless set), so that rank 0 gets a Python
error it can record instead of blocking in a CUDA sync until it is killed
(unmeasured: no failing nccl job has run yet; gloo's path is tested).

When a rank fails, every rank posts its error type to the job's store, and
rank 0 names the rank that failed first (``training/rank_failures.py``).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch

from esper.runtime.errors import ConfigError, UserError
from esper.runtime.torchrun_env import launched_by_torchrun, local_world_size
from esper.telemetry.field import Reduction
from esper.training.distributed.rank_failures import (
    FAILURE_KEY,
    PEER_GRACE_S,
    TIMEOUT_ENV,
    PeerFailure,
    describe_failure,
    gather_posts,
    is_symptom,
    job_store,
)

NCCL_ERRORS_ENV = "TORCH_NCCL_ASYNC_ERROR_HANDLING"  # 2: abort the communicator, raise
FORCE_ENV = "ESPER_FORCE_DIST"  # "1": a group and its collectives even at world size 1
DEFAULT_TIMEOUT_S = 120.0

T = TypeVar("T")


@dataclass
class Collectives:
    """This process's place in the job and the collectives over it.

    ``Collectives()`` is world size 1: every method returns its input unchanged.
    ``seconds`` adds up the host time spent inside collectives (exact on gloo,
    where they block; on nccl only the time to enqueue them).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    nodes: int = 1
    seconds: float = 0.0
    forced: bool = False  # a group of one rank that runs its collectives (FORCE_ENV)

    @property
    def active(self) -> bool:
        return self.world_size > 1 or self.forced

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # --- sharding --------------------------------------------------------------
    def shard(self, n_envs: int) -> int:
        """This rank's environments: ``n_envs`` is the job's total. The one check
        that it splits evenly, so every caller refuses an uneven split alike."""
        if n_envs % self.world_size:
            raise ConfigError(
                "n_envs",
                f"{n_envs} environments do not split evenly over {self.world_size} ranks; "
                f"use a multiple of {self.world_size}",
            )
        return n_envs // self.world_size

    def rank_seed(self, seed: int) -> int:
        """This rank's stream, derived from (seed, rank); rank 0 keeps ``seed``,
        so a one-process run is unchanged."""
        if self.rank == 0:
            return seed
        digest = hashlib.sha256(f"esper:{seed}:{self.rank}".encode()).digest()
        return int.from_bytes(digest[:7], "little")

    def device_label(self, device: torch.device) -> str:
        """How TRAINING_STARTED names this rank's device (node-qualified when
        several machines would otherwise share names such as ``cuda:0``)."""
        if self.nodes > 1:
            return f"node{os.environ.get('GROUP_RANK', '0')}/{device}"
        return str(device)

    # --- tensors -----------------------------------------------------------------
    def broadcast_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's values into ``tensor`` on every rank (in place)."""
        if self.active:
            with self._timed() as dist:
                dist.broadcast(tensor, src=0)
        return tensor

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place."""
        if self.active:
            with self._timed() as dist:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Mean over ranks, in place (the gradient average of a minibatch step)."""
        if self.active:
            self.sum_(tensor).div_(self.world_size)
        return tensor

    def reduce_fields(
        self, values: torch.Tensor, kinds: Sequence[Reduction], weight_column: int
    ) -> torch.Tensor:
        """Combine a flat ``[K]`` vector across ranks column by column, each by its
        kind (the metrics table's ``Field.reduction``), in one collective (an all-gather)."""
        if not self.active:
            return values
        return combine_fields(self.gather_all(values), kinds, weight_column)

    def gather_all(self, tensor: torch.Tensor) -> torch.Tensor:
        """``[world_size, *tensor.shape]``: every rank's ``tensor``, in rank order
        (one all-gather; a view with a leading 1 in one process).

        The receive buffers start as NaN (-1 for integers), not as ``empty_like``'s
        leftovers: an aborted nccl collective can return without writing them, and
        leftover memory would then read as a rank's values."""
        if not self.active:
            return tensor.unsqueeze(0)
        unwritten = math.nan if tensor.is_floating_point() else -1
        with self._timed() as dist:
            gathered = [torch.full_like(tensor, unwritten) for _ in range(self.world_size)]
            dist.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered)

    # --- Python objects (start, checkpoints) -------------------------------------
    def main_decides(self, decide: Callable[[], T]) -> T:
        """Run ``decide`` on rank 0 and give every rank its result; a user error
        there is raised on every rank (the CLI prints it on rank 0 only)."""
        if not self.active:
            return decide()
        outcome: list[Any] = [None]
        if self.is_main:
            try:
                outcome[0] = ("ok", decide())
            except UserError as exc:
                outcome[0] = ("error", exc.setting, exc.message, exc.mentions)
                self._broadcast_object(outcome)
                raise
            except Exception as exc:  # a bug: rank 0 keeps its traceback, no one waits
                outcome[0] = ("crash", f"{type(exc).__name__}: {exc}")
                self._broadcast_object(outcome)
                raise
        self._broadcast_object(outcome)
        kind, *details = outcome[0]
        if kind == "error":
            raise UserError(details[1], setting=details[0], mentions=details[2])
        if kind == "crash":
            raise RuntimeError(f"rank 0 failed: {details[0]}")
        return details[0]

    def main_scatters(self, decide: Callable[[], Sequence[T]]) -> T:
        """Run ``decide`` on rank 0, which returns one item per rank, and give
        each rank only its own item (errors reach every rank as in ``main_decides``)."""
        if not self.active:
            return decide()[0]
        parts: list[T] = []

        def decide_and_keep() -> int:
            parts.extend(decide())
            return len(parts)

        if self.main_decides(decide_and_keep) != self.world_size:
            raise RuntimeError("rank 0 decided a number of parts other than the world size")
        with self._timed() as dist:
            mine: list[Any] = [None]
            dist.scatter_object_list(mine, parts if self.is_main else None, src=0)
        return mine[0]

    def gather_to_main(self, part: Any) -> list[Any] | None:
        """Every rank's ``part`` as a list on rank 0 (None elsewhere)."""
        if not self.active:
            return [part]
        with self._timed() as dist:
            parts: list[Any] | None = [None] * self.world_size if self.is_main else None
            dist.gather_object(part, parts, dst=0)
        return parts

    def all_gather_object(self, part: Any) -> list[Any]:
        if not self.active:
            return [part]
        with self._timed() as dist:
            parts: list[Any] = [None] * self.world_size
            dist.all_gather_object(parts, part)
        return parts

    def _broadcast_object(self, box: list[Any]) -> None:
        with self._timed() as dist:
            dist.broadcast_object_list(box, src=0)

    # --- failures ------------------------------------------------------------------
    def blame(self, exc: BaseException, log_dir: str) -> PeerFailure | None:
        """After ``exc`` ended this rank's training: post it to the job's store, and on
        rank 0 name the rank that failed first when ``exc`` is only the symptom of
        another rank's failure (None: ``exc`` is this rank's own, or one process).
        Never raises: a failure report must not fail."""
        if not self.active:
            return None
        own = f"{type(exc).__name__}: {exc}"
        store = job_store()
        if store is not None:
            try:
                store.set(FAILURE_KEY.format(rank=self.rank), own)
            except Exception:  # the store may be gone with its host
                store = None
        if not self.is_main or not is_symptom(exc):
            return None
        posts = gather_posts(store, self.world_size, PEER_GRACE_S)
        return describe_failure(own, posts, self.world_size, log_dir, timeout_seconds())

    @contextmanager
    def _timed(self) -> Iterator[Any]:
        import torch.distributed as dist

        started = time.perf_counter()
        try:
            yield dist
        finally:
            self.seconds += time.perf_counter() - started


def combine_fields(
    per_rank: torch.Tensor, kinds: Sequence[Reduction], weight_column: int
) -> torch.Tensor:
    """``[world, K]`` -> ``[K]``: each column reduced by its kind; a WEIGHTED column
    is the mean of the ranks' values weighted by ``per_rank[:, weight_column]``
    (a rank with weight 0 adds nothing, even when its value is NaN; all 0 gives NaN)."""
    assert len(kinds) == per_rank.shape[1], f"{len(kinds)} kinds for {per_rank.shape[1]} columns"
    weights = per_rank[:, weight_column : weight_column + 1]
    weighted = torch.where(weights > 0, per_rank * weights, 0.0).sum(0) / weights.sum(0)
    by_kind = {
        Reduction.SUM: per_rank.sum(0),
        Reduction.MEAN: per_rank.mean(0),
        Reduction.MIN: per_rank.min(0).values,
        Reduction.MAX: per_rank.max(0).values,
        Reduction.WEIGHTED: weighted,
        Reduction.SAME: per_rank[0],
    }
    return torch.stack([by_kind[kind][i] for i, kind in enumerate(kinds)])


def timeout_seconds() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(TIMEOUT_ENV, f"must be a positive number of seconds (got {raw!r})")
    return value


@contextmanager
def process_group() -> Iterator[Collectives]:
    """This process's ``Collectives``: world size 1 outside torchrun; under
    torchrun a process group over every rank (gloo for CPU tensors, nccl for
    CUDA ones when this machine has CUDA), closed when the block ends."""
    if not launched_by_torchrun() and not forced_group():
        yield Collectives()
        return
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_seconds())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = local_world_size()
    backend = "gloo"
    if cuda_for_every_local_rank():  # the same answer on every rank of a machine
        # No set_device here: a --device cpu rank never touches CUDA (rank_device
        # picks this rank's GPU when the run is on CUDA).
        backend = "cpu:gloo,cuda:nccl"
        os.environ.setdefault(NCCL_ERRORS_ENV, "2")
    dist.init_process_group(backend=backend, timeout=timeout)
    world_size = dist.get_world_size()
    try:
        yield Collectives(
            rank=dist.get_rank(),
            world_size=world_size,
            local_rank=local_rank,
            nodes=max(1, world_size // max(local_world, 1)),
            forced=world_size == 1,
        )
    finally:
        dist.destroy_process_group()


def forced_group() -> bool:
    """``ESPER_FORCE_DIST=1`` in a torchrun job (torchrun sets ``RANK``): build the
    process group even for one rank. Outside torchrun it has no effect."""
    return os.environ.get(FORCE_ENV) == "1" and "RANK" in os.environ


def rank_device(device: torch.device, group: Collectives) -> torch.device:
    """Each rank's device: ``cuda:LOCAL_RANK`` when the run is on CUDA, else the CPU."""
    if not group.active or device.type != "cuda":
        return device
    if not cuda_for_every_local_rank():  # every rank of this machine refuses alike
        raise ConfigError(
            "device",
            f"{local_world_size()} ranks on this machine need as many CUDA devices, and it has "
            f"{torch.cuda.device_count()}; start at most that many ranks, or use {{device}} cpu",
            mentions=("device",),
        )
    torch.cuda.set_device(group.local_rank)  # before this rank's first nccl collective
    return torch.device("cuda", group.local_rank)


def cuda_for_every_local_rank() -> bool:
    """Whether each rank on this machine can have a CUDA device of its own."""
    return torch.cuda.is_available() and torch.cuda.device_count() >= local_world_size()


def average_gradients(optimizer: Any, group: Collectives) -> None:
    """One all-reduce of every gradient, averaged over ranks, on the optimizer's
    flat gradient (``reduce_gradients``: no copy with the flat Adam)."""
    if group.active:
        optimizer.reduce_gradients(group.average_)


@torch.no_grad()
def broadcast_parameters(params: Sequence[torch.nn.Parameter], group: Collectives) -> None:
    """Rank 0's parameters on every rank, in one broadcast (once, at the start):
    packed into one tensor and copied back in place, so parameters that are
    views of an optimizer's flat buffer stay views."""
    if group.active:
        packed = group.broadcast_(torch.cat([p.detach().reshape(-1) for p in params]))
        offset = 0
        for param in params:
            param.copy_(packed[offset : offset + param.numel()].view_as(param))
            offset += param.numel()


def sum_moments(group: Collectives) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The running normalisers' cross-rank hook (None in one process)."""
    return group.sum_ if group.active else None
