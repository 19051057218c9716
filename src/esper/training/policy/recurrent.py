"""Recurrent cores: a GRU or an LSTM between the encoder and the heads (``PPOConfig.recurrent``).

The core's hidden state is called *memory* here, to keep it apart from
``hidden_sizes`` (the dense layers). It is one tensor ``[B, memory_size]``: the
GRU's state, or the LSTM's ``h`` and ``c`` side by side. Zero memory is a fresh
episode's.

The cells are written with two linear layers each (input and memory
projections) rather than ``nn.GRUCell``/``nn.LSTMCell``: the same equations,
but plain matmuls and pointwise ops, which ``torch.compile`` fuses, a CUDA
graph replays, and TorchScript and ONNX export without special operators.
Weights are orthogonal and biases zero, as CleanRL initialises its LSTM.

``replay`` runs a whole sequence for the update (truncated backpropagation
through the batch's horizon): the input projection of every step at once, then
one cell step per time step, zeroing the memory of each sequence where its
episode started.
"""

from __future__ import annotations

import torch
from torch import nn


def _projection(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, 1.0)
    nn.init.zeros_(layer.bias)
    return layer


class RecurrentCore(nn.Module):
    """``step(x [B, n_in], memory [B, memory_size]) -> (out [B, width], memory)``."""

    gates = 0  # gate blocks of the cell
    memory_factor = 1  # memory_size = memory_factor x width

    def __init__(self, n_in: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.memory_size = self.memory_factor * width
        self.input_gates = _projection(n_in, self.gates * width)
        self.memory_gates = _projection(width, self.gates * width)

    def step(self, x: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cell(self.input_gates(x), memory)

    def cell(
        self, projected: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from the input's gate projection: ``(out, memory after)``."""
        raise NotImplementedError

    def replay(
        self, inputs: torch.Tensor, memory: torch.Tensor, starts: torch.Tensor
    ) -> torch.Tensor:
        """``inputs [E, T, n_in]`` from ``memory [E, memory_size]``, zeroing a row's
        memory before step ``t`` where ``starts [E, T]`` says its episode began;
        returns the outputs ``[E, T, width]``."""
        projected = self.input_gates(inputs)  # every step's input projection at once
        keep = (~starts).to(projected.dtype).unsqueeze(-1)  # [E, T, 1]
        # unbind, not projected[:, t]: the backward of T slices would build T
        # zero-filled copies of the whole projection; unbind's is one stack.
        outputs = []
        for step_in, step_keep in zip(projected.unbind(1), keep.unbind(1), strict=True):
            out, memory = self.cell(step_in, memory * step_keep)
            outputs.append(out)
        return torch.stack(outputs, dim=1)


class GRUCore(RecurrentCore):
    """Cho et al.'s GRU, with ``nn.GRU``'s arrangement of the reset gate."""

    gates = 3

    def cell(
        self, projected: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        in_r, in_z, in_n = projected.chunk(3, dim=-1)
        mem_r, mem_z, mem_n = self.memory_gates(memory).chunk(3, dim=-1)
        reset = torch.sigmoid(in_r + mem_r)
        update = torch.sigmoid(in_z + mem_z)
        candidate = torch.tanh(in_n + reset * mem_n)
        memory = torch.lerp(candidate, memory, update)  # (1 - z) n + z h
        return memory, memory


class LSTMCore(RecurrentCore):
    """Hochreiter and Schmidhuber's LSTM with ``nn.LSTM``'s gate order (i, f, g, o);
    the memory holds ``h`` then ``c``."""

    gates = 4
    memory_factor = 2

    def cell(
        self, projected: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = memory.chunk(2, dim=-1)
        gate_in, forget, candidate, gate_out = (projected + self.memory_gates(h)).chunk(4, dim=-1)
        c = torch.sigmoid(forget) * c + torch.sigmoid(gate_in) * torch.tanh(candidate)
        h = torch.sigmoid(gate_out) * torch.tanh(c)
        return h, torch.cat((h, c), dim=-1)


CORES: dict[str, type[RecurrentCore]] = {"gru": GRUCore, "lstm": LSTMCore}


def recurrent_core(kind: str, n_in: int, width: int) -> RecurrentCore:
    """The ``kind`` core (``gru`` or ``lstm``) reading ``n_in`` features."""
    return CORES[kind](n_in, width)


def forget_ended(memory: torch.Tensor, ended: torch.Tensor) -> torch.Tensor:
    """``memory [N, memory_size]`` with the rows of copies whose episode ended
    (``ended [N]``) zeroed: their next observation begins a new episode."""
    return memory.masked_fill(ended.unsqueeze(-1), 0.0)


def episode_starts(ended: torch.Tensor) -> torch.Tensor:
    """``[T, N]`` bool: step ``t`` begins an episode because step ``t - 1`` ended one.
    Row 0 is False: the rollout zeroed those memories before the batch began."""
    return torch.cat((torch.zeros_like(ended[:1]), ended[:-1]), dim=0)
