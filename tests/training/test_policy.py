"""The actor-critic: what the fast layers compute must be what nn.Linear computes."""

from __future__ import annotations

import torch
from torch import nn

from esper.envs.spaces import DiscreteSpace
from esper.training.policy import ActorCritic, NarrowInputLinear, Tanh


def test_narrow_input_layer_gradients_match_a_float64_reference() -> None:
    torch.manual_seed(0)
    layer = NarrowInputLinear(4, 64)
    reference = nn.Linear(4, 64).double()
    reference.load_state_dict({k: v.double() for k, v in layer.state_dict().items()})
    x = torch.randn(4096, 4)

    torch.tanh(layer(x)).square().sum().backward()
    torch.tanh(reference(x.double())).square().sum().backward()

    for ours, theirs in ((layer.weight, reference.weight), (layer.bias, reference.bias)):
        assert ours.grad is not None and theirs.grad is not None
        torch.testing.assert_close(ours.grad.double(), theirs.grad, rtol=1e-4, atol=1e-3)


def test_narrow_input_layer_passes_gradients_to_its_input() -> None:
    torch.manual_seed(0)
    layer = NarrowInputLinear(3, 16)
    x = torch.randn(8, 3, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, layer.weight.sum(0).expand(8, 3))


def test_policy_parameters_keep_nn_sequential_names() -> None:
    """Checkpoints written before the fast layer existed still load."""
    policy = ActorCritic(4, DiscreteSpace(2), (64, 64))
    assert {k for k in policy.state_dict() if k.startswith("actor.")} == {
        "actor.0.weight",
        "actor.0.bias",
        "actor.2.weight",
        "actor.2.bias",
        "actor.4.weight",
        "actor.4.bias",
    }
    assert isinstance(policy.actor[0], NarrowInputLinear)
    assert type(policy.actor[2]) is nn.Linear


def test_fast_tanh_computes_tanh_and_its_gradient_at_every_size() -> None:
    torch.manual_seed(0)
    for rows in (4, 2048):  # below and above the size where the sigmoid form takes over
        x = (3 * torch.randn(rows, 64)).requires_grad_()
        reference = x.detach().double().requires_grad_()
        y = Tanh()(x)
        torch.tanh(reference).backward(torch.ones_like(reference))
        y.backward(torch.ones_like(y))
        torch.testing.assert_close(y.double(), torch.tanh(reference), rtol=0, atol=3e-7)
        torch.testing.assert_close(x.grad.double(), reference.grad, rtol=0, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(Tanh()(x), y.detach(), rtol=0, atol=0)
