"""``--compile``: the PPO loss through ``torch.compile``.

Kept out of the default path on purpose. Importing the compiler
(``torch._dynamo``) adds ~2.5 s and ~100 MB to a process, and Inductor then
spends ~30 s on a 2-core CPU generating and building C++ kernels for the loss
and its backward. In exchange the update's elementwise work (tanh and its
gradient, the clipped-loss arithmetic) runs fused: 1.2-1.3x faster updates at
4,096 CartPole envs on that machine, so it pays only on long, large runs.
"""

from __future__ import annotations

import torch

from esper.training.ppo import MinibatchLoss, minibatch_loss


def loss_function(compile_loss: bool) -> MinibatchLoss:
    """The loss the update uses: the eager one, or a compiled twin.

    ``dynamic=False``: a run's minibatch shape never changes, so one static
    graph is compiled once and reused for every minibatch.
    """
    if not compile_loss:
        return minibatch_loss
    return torch.compile(minibatch_loss, dynamic=False)
