"""Each speed trick computes what its plain torch twin computes, and the switch
between them changes neither parameter names nor checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from esper.config import PPOConfig
from esper.envs.spaces import BoxSpace, DiscreteSpace
from esper.run_dir import RunDir
from esper.training.policy import ActorCritic, mlp
from esper.training.speedups import (
    SIGMOID_TANH_MIN_ELEMENTS,
    FlatAdam,
    NarrowInputLinear,
    PlainAdam,
    SigmoidTanh,
)
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


def _twin_nets(seed: int) -> tuple[nn.Sequential, nn.Sequential]:
    torch.manual_seed(seed)
    fast = mlp(4, (16, 16), 3, out_gain=1.0, fast=True)
    plain = mlp(4, (16, 16), 3, out_gain=1.0, fast=False)
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def _train_step(net: nn.Module, opt: FlatAdam | PlainAdam, x: torch.Tensor) -> torch.Tensor:
    opt.zero_grad()
    (10 * net(x)).square().mean().backward()
    norm = opt.clip_grad_norm_(0.5)
    opt.step()
    return norm


def test_flat_adam_takes_torch_adams_steps_with_clipping() -> None:
    fast_net, plain_net = _twin_nets(0)
    fast, plain = (
        FlatAdam(fast_net.parameters(), 3e-3, 1e-5),
        PlainAdam(plain_net.parameters(), 3e-3, 1e-5),
    )
    assert isinstance(plain._adam, torch.optim.Adam)
    for step in range(25):
        x = torch.randn(32, 4)
        for opt in (fast, plain):
            opt.param_groups[0]["lr"] = 3e-3 * (1 - step / 25)
        fast_norm = _train_step(fast_net, fast, x)
        plain_norm = _train_step(plain_net, plain, x)
        torch.testing.assert_close(fast_norm, plain_norm, rtol=1e-4, atol=1e-6)
        assert fast_norm > 0.5  # the clip acted
    for a, b in zip(fast_net.parameters(), plain_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("saver", "loader"), [(FlatAdam, PlainAdam), (PlainAdam, FlatAdam)])
def test_optimizer_state_crosses_the_switch(saver: type, loader: type) -> None:
    """A checkpoint's optimiser state written on one side continues on the other."""
    torch.manual_seed(1)
    x = torch.randn(16, 4)
    net = mlp(4, (8,), 2, out_gain=1.0, fast=saver is FlatAdam)
    opt = saver(net.parameters(), 1e-2, 1e-5)
    for _ in range(3):
        _train_step(net, opt, x)
    clone = mlp(4, (8,), 2, out_gain=1.0, fast=loader is FlatAdam)
    clone.load_state_dict(net.state_dict())
    clone_opt = loader(clone.parameters(), 1.0, 1e-5)
    clone_opt.load_state_dict(opt.state_dict())
    assert clone_opt.state_dict()["steps"] == 3
    for _ in range(3):
        _train_step(net, opt, x)
        _train_step(clone, clone_opt, x)
    for a, b in zip(net.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_both_optimizers_reduce_every_gradient_as_one_flat_tensor() -> None:
    """The hook a multi-process run averages gradients through (one all-reduce)."""
    fast_net, plain_net = _twin_nets(2)
    fast, plain = (
        FlatAdam(fast_net.parameters(), 1e-3, 1e-5),
        PlainAdam(plain_net.parameters(), 1e-3, 1e-5),
    )
    x = torch.randn(64, 4)
    seen = []
    for net, opt in ((fast_net, fast), (plain_net, plain)):
        opt.zero_grad()
        net(x).square().mean().backward()
        before = [p.grad.clone() for p in net.parameters()]
        opt.reduce_gradients(lambda flat: (seen.append(flat.clone()), flat.mul_(0.5)))
        for grad, old in zip((p.grad for p in net.parameters()), before, strict=True):
            torch.testing.assert_close(grad, old * 0.5)
    assert seen[0].shape == (sum(p.numel() for p in fast_net.parameters()),)
    torch.testing.assert_close(seen[0], seen[1], rtol=1e-5, atol=1e-7)
    assert fast.flat_grad.data_ptr() == next(fast_net.parameters()).grad.data_ptr()


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
    actions = fast.act_deterministic(obs)
    for a, b in zip(fast.evaluate(obs, actions), plain.evaluate(obs, actions), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("speedups", [True, False])
def test_the_switch_reaches_the_trainer(speedups: bool, tmp_path: Path) -> None:
    config = PPOConfig(n_envs=4, horizon=8, device="cpu", run_dir=str(tmp_path), speedups=speedups)
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    assert isinstance(state.optimizer, FlatAdam if speedups else PlainAdam)
    tricks = {NarrowInputLinear, SigmoidTanh}
    assert bool(tricks & {type(m) for m in state.policy.modules()}) is speedups
