"""The deterministic policy as one plain torch module: what ``esper export`` writes.

``obs -> (obs - mean) / std clipped -> actor -> action``: the observation
normaliser folded in as constants, then the argmax (discrete) or the Gaussian
mean clipped to the action bounds (continuous), exactly as ``load_policy``
acts. The network is the plain twin of the trained one (``speedups`` off: the
same weights and values, no custom autograd or shape-dependent branches), so
TorchScript and ``torch.export`` can take it whole.

A policy kind declares its interface here, not in the exporter: ``input_names``
and ``output_names`` (a recurrent policy adds its hidden state to both),
``batch_dims`` (the batch axis of each input) and ``example_inputs``.
"""

from __future__ import annotations

import torch
from torch import nn

from esper.training.normalizer import RunningMeanStd
from esper.training.policy import ActorCritic


class DeterministicPolicy(nn.Module):
    """``forward(obs [B, obs_dim] float32) -> action [B] int64 or [B, act_dim] float32``."""

    input_names: tuple[str, ...] = ("obs",)
    output_names: tuple[str, ...] = ("action",)
    batch_dims: tuple[int, ...] = (0,)  # the batch axis of each input, in input order

    def __init__(self, model: ActorCritic, obs_normalizer: RunningMeanStd | None) -> None:
        super().__init__()
        self.model = model.plain_twin()
        self.obs_dim = model.obs_dim
        self.normalizes = obs_normalizer is not None
        if obs_normalizer is not None:
            # The float32 constants RunningMeanStd.normalize computes for float32 input.
            mean = obs_normalizer.mean.to(torch.float32)
            std = obs_normalizer.std(torch.float32)
            self.register_buffer("obs_mean", mean.detach().clone())
            self.register_buffer("obs_std", std.detach().clone())
            self.clip = float(obs_normalizer.clip)
        self.eval().requires_grad_(False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.normalizes:
            obs = ((obs - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip)
        return self.model.env_action(self.model.act_deterministic(obs))

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Inputs of the right shapes and dtypes (zeros) for tracing and export."""
        return (torch.zeros(batch, self.obs_dim),)
