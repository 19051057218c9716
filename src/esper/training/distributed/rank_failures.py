"""Naming the rank that failed: when one rank of a job fails, the others see
only a symptom (a collective whose peer is gone, or one that timed out).

Every rank posts its error type to the job's store (torchrun's); rank 0 waits
briefly for the posts and turns them into one reason that names the rank that
failed first (``PeerFailure``), rather than its own symptom ("Connection reset
by peer").
"""

from __future__ import annotations

import time
from typing import Any

TIMEOUT_ENV = "ESPER_DIST_TIMEOUT"  # seconds every collective may wait
FAILURE_KEY = "esper/failed/rank{rank}"  # in the job's store: what ended that rank
PEER_GRACE_S = 5.0  # how long rank 0 waits for the other ranks' posts after a failure
# Words in an error that mark a collective whose peer failed, rather than a cause.
SYMPTOM_WORDS = ("gloo", "nccl", "connection", "timed out", "timeout")
TIMEOUT_WORDS = ("timed out", "timeout")


class PeerFailure(RuntimeError):
    """Another rank's failure, as rank 0 saw it: the message names that rank, its
    error type (or that it died without one) and its ``error.rankK.log``."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def is_symptom(exc: BaseException) -> bool:
    """Whether ``exc`` is what a rank sees when another rank fails: a collective
    whose peer is gone, or one that timed out."""
    import torch.distributed as dist

    return isinstance(exc, dist.DistError) or _symptom_text(str(exc))


def describe_failure(
    own: str, posts: dict[int, str], world_size: int, log_dir: str, timeout_s: float
) -> PeerFailure:
    """Rank 0's one reason for a failed job: ``posts`` holds what each other rank
    posted (``Type: message``); a rank that posted its own error comes first, then
    a rank that posted nothing (it died without a Python error, or hung)."""
    timed_out = any(word in own.lower() for word in TIMEOUT_WORDS)
    hint = (
        f"; collectives wait {TIMEOUT_ENV} = {timeout_s:g} s: raise it if a rank is just slow"
        if timed_out
        else ""
    )
    causes = {r: p for r, p in posts.items() if not _symptom_text(p)}
    silent = [r for r in range(1, world_size) if r not in posts]
    log = f"{log_dir}/error.rank{{rank}}.log"
    if causes:
        rank, error = min(causes.items())
        return PeerFailure(
            f"rank {rank} failed with {error} (traceback in {log.format(rank=rank)})",
            error.partition(":")[0],
        )
    if silent:
        rank = silent[0]
        if timed_out:
            what = f"did not answer within {TIMEOUT_ENV} = {timeout_s:g} s (hung, or died)"
        else:
            what = (
                "died without a Python error: killed by a signal (SIGKILL: often the "
                "out-of-memory killer) or crashed; the launcher's report names the signal"
            )
        return PeerFailure(
            f"rank {rank} {what} (its log, if any: {log.format(rank=rank)}); rank 0 saw "
            f"{own}{hint}",
            "RankDied" if not timed_out else "Timeout",
        )
    return PeerFailure(f"every rank saw a collective fail; rank 0 saw {own}{hint}", "Timeout")


def _symptom_text(posted: str) -> bool:
    text = posted.lower()
    return posted.startswith(("DistBackendError", "DistNetworkError", "DistError")) or any(
        word in text for word in SYMPTOM_WORDS
    )


def job_store() -> Any:
    """The job's key-value store (torchrun's), or None."""
    try:
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:
        return None


def gather_posts(store: Any, world_size: int, grace_s: float) -> dict[int, str]:
    """What ranks 1.. posted, waiting up to ``grace_s`` for all of them (a rank
    killed by a signal never posts)."""
    posts: dict[int, str] = {}
    if store is None:
        return posts
    deadline = time.monotonic() + grace_s
    while True:
        for rank in range(1, world_size):
            key = FAILURE_KEY.format(rank=rank)
            try:
                if rank not in posts and store.check([key]):
                    posts[rank] = store.get(key).decode(errors="replace")
            except Exception:  # the store's host may be gone
                return posts
        if len(posts) == world_size - 1 or time.monotonic() > deadline:
            return posts
        time.sleep(0.1)
