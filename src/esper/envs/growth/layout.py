"""Named tensors packed side by side in one flat row per copy.

The growth task keeps each host's parameters in one ``[n, P]`` buffer (one
Adam update for all of them) and each fresh episode's draws in one
``[n, D]`` row (one tensor for ``draw_initial_states``); ``Layout`` names the
pieces and hands out views of them.
"""

from __future__ import annotations

import math

import torch


class Layout:
    """Field name -> shape per copy, in order, packed into ``width`` numbers."""

    def __init__(self, fields: list[tuple[str, tuple[int, ...]]]) -> None:
        self.fields = dict(fields)
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, shape in fields:
            size = math.prod(shape)
            self.offsets[name] = (start, start + size)
            start += size
        self.width = start

    def view(self, flat: torch.Tensor, name: str) -> torch.Tensor:
        """``flat [..., width]``'s field ``name`` as ``[..., *shape]`` (a view)."""
        start, end = self.offsets[name]
        return flat[..., start:end].unflatten(-1, self.fields[name])

    def pack(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[..., width]`` from one ``[..., *shape]`` tensor per field, in order."""
        return torch.cat(
            [parts[name].flatten(-len(shape)) if shape else parts[name].unsqueeze(-1)
             for name, shape in self.fields.items()],
            dim=-1,
        )  # fmt: skip
