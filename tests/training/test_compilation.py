"""``--compile`` must change the speed of the update, never its result."""

from __future__ import annotations

import torch

from esper.envs.spaces import DiscreteSpace
from esper.training.compilation import loss_function
from esper.training.policy import ActorCritic
from esper.training.ppo import FlatBatch, UpdateSettings, minibatch_loss

SETTINGS = UpdateSettings(
    update_epochs=1,
    minibatch_size=256,
    clip_coef=0.2,
    clip_value_loss=True,
    ent_coef=0.01,
    vf_coef=0.5,
    max_grad_norm=0.5,
    normalize_advantages=True,
    target_kl=None,
)


def _loss_and_grads(loss_fn, policy: ActorCritic, inputs: tuple[torch.Tensor, ...]):
    policy.zero_grad(set_to_none=True)
    loss, stats = loss_fn(policy, FlatBatch(*inputs), SETTINGS)
    loss.backward()
    return loss.detach(), stats, [p.grad.clone() for p in policy.parameters()]


def test_default_is_the_eager_loss() -> None:
    assert loss_function(False) is minibatch_loss


def test_compiled_loss_matches_eager_loss_and_gradients() -> None:
    torch.manual_seed(0)
    policy = ActorCritic(4, DiscreteSpace(2), (64, 64))
    n = SETTINGS.minibatch_size
    inputs = (
        torch.randn(n, 4),  # obs
        torch.randint(0, 2, (n,)),  # actions
        torch.full((n,), -0.69) + 0.05 * torch.randn(n),  # old log-probs
        torch.randn(n),  # old values
        torch.randn(n),  # advantages
        torch.randn(n),  # returns
    )
    eager = _loss_and_grads(minibatch_loss, policy, inputs)
    compiled = _loss_and_grads(loss_function(True), policy, inputs)

    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5, atol=1e-6)
    for ours, theirs in zip(compiled[2], eager[2], strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
