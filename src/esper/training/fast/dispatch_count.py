"""Counting the ops a piece of training dispatches: on the CPU as on a GPU, a
small batch costs its launches, so the count is the figure speed work is
guided by (and the one a test can pin, where a time never can)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


class DispatchCounter(TorchDispatchMode):
    """``with DispatchCounter() as counter: ...``; ``counter.ops`` counts each op by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))
