"""Catching host synchronisation: every read of a tensor's value on the host raises.

A read of a device tensor's value (``.item()``, ``.cpu()``, a Python ``if``
on a tensor) makes the host wait for the device. The rollout and the
environments must never do it per step; the tests and ``esper check-env``
run code under ``host_reads_forbidden`` to prove it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

GUARDED = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


class HostSyncError(AssertionError):
    """A tensor's value was read on the host where that is forbidden."""


@contextlib.contextmanager
def host_reads_forbidden() -> Iterator[None]:
    """Within the block, every tensor method in ``GUARDED`` raises ``HostSyncError``."""

    def forbid(name: str):
        def raiser(self, *args, **kwargs):
            raise HostSyncError(f"tensor.{name}() on the hot path")

        return raiser

    saved = {name: getattr(torch.Tensor, name) for name in GUARDED}
    try:
        for name in GUARDED:
            setattr(torch.Tensor, name, forbid(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)
