"""Each speed trick computes what its plain torch twin computes, and the switch
between them changes neither parameter names nor checkpoints (the optimiser's
side: test_optimizer.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from esper.config.schema import PPOConfig
from esper.envs.spaces import BoxSpace, DiscreteSpace
from esper.runs.directory import RunDir
from esper.training.fast.layers import SIGMOID_TANH_MIN_ELEMENTS, NarrowInputLinear, SigmoidTanh
from esper.training.fast.optimizer import FlatAdam, PlainAdam
from esper.training.policy.actor_critic import ActorCritic
from esper.training.state import build_state


def test_sigmoid_tanh_computes_tanh_and_its_gradient_at_every_size() -> None:
    torch.manual_seed(0)
    for rows in (4, 2 * SIGMOID_TANH_MIN_ELEMENTS // 64):  # below and above the threshold
        x = (3 * torch.randn(rows, 64)).requires_grad_()
        reference = x.detach().double().requires_grad_()
        y = SigmoidTanh()(x)
        nn.Tanh()(reference).backward(torch.ones_like(reference))
        y.backward(torch.ones_like(y))
        torch.testing.assert_close(y.double(), torch.tanh(reference), rtol=0, atol=3e-7)
        torch.testing.assert_close(x.grad.double(), reference.grad, rtol=0, atol=1e-6)
        with torch.no_grad():
            torch.testing.assert_close(SigmoidTanh()(x), y.detach(), rtol=0, atol=0)


def test_narrow_input_layer_gradients_match_nn_linear_in_float64() -> None:
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


@pytest.mark.parametrize("space", [DiscreteSpace(2), BoxSpace((-1.0, -2.0), (1.0, 2.0))])
def test_switch_off_builds_plain_layers_with_the_same_names_and_outputs(space) -> None:
    torch.manual_seed(3)
    fast = ActorCritic(4, space, (64, 64), speedups=True)
    plain = ActorCritic(4, space, (64, 64), speedups=False)
    assert fast.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(fast.state_dict())
    assert {type(m) for m in plain.modules()} <= {ActorCritic, nn.Sequential, nn.Linear, nn.Tanh}
    assert isinstance(fast.actor[0], NarrowInputLinear) and isinstance(fast.actor[1], SigmoidTanh)
    obs = torch.randn(2 * SIGMOID_TANH_MIN_ELEMENTS // 64, 4)
    actions, _ = fast.act_deterministic(obs)
    for a, b in zip(fast.evaluate(obs, actions), plain.evaluate(obs, actions), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("speedups", [True, False])
def test_the_switch_reaches_the_trainer(speedups: bool, tmp_path: Path) -> None:
    config = PPOConfig(n_envs=4, horizon=8, device="cpu", run_dir=str(tmp_path), speedups=speedups)
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    assert isinstance(state.optimizer, FlatAdam if speedups else PlainAdam)
    tricks = {NarrowInputLinear, SigmoidTanh}
    assert bool(tricks & {type(m) for m in state.policy.modules()}) is speedups
