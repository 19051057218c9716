"""FlatAdam takes torch.optim.Adam's steps, and an optimiser's checkpoint state
crosses the speedups switch either way."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from esper.training.fast import optimizer as optimizer_module
from esper.training.fast.optimizer import ALIGN, DeviceAdam, FlatAdam, PlainAdam
from esper.training.policy.layers import mlp


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
    assert seen[0].shape == fast.flat_grad.shape  # the padded buffer, reduced whole
    torch.testing.assert_close(seen[0][fast._unpadded], seen[1], rtol=1e-5, atol=1e-7)
    assert fast.flat_grad.data_ptr() == next(fast_net.parameters()).grad.data_ptr()


def _policy_sized_net(seed: int) -> nn.Sequential:
    """Parameters whose sizes are not multiples of 16 (as the default policy's
    critic, which an unaligned buffer started at float 4,610)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3), nn.Linear(3, 1))


@pytest.mark.parametrize("adam", [FlatAdam, DeviceAdam])
def test_every_parameter_starts_aligned_and_the_padding_stays_zero(adam: type) -> None:
    net = _policy_sized_net(0)
    opt = adam(net.parameters(), 1e-2, 1e-5)
    offsets = [(p.data_ptr() - opt.flat.data_ptr()) // 4 for p in net.parameters()]
    assert offsets == [0, 48, 64, 96, 112, 128][: len(offsets)]
    assert all(offset % ALIGN == 0 for offset in offsets)
    x = torch.randn(16, 5)
    for _ in range(3):
        _train_step(net, opt, x)
    padding = torch.ones_like(opt.flat, dtype=torch.bool)
    padding[opt._unpadded] = False
    for buffer in (opt.flat, opt.flat_grad, opt._exp_avg, opt._exp_avg_sq):
        assert not buffer[padding].any()


def test_the_clipped_norm_is_the_unpadded_vectors_to_the_bit() -> None:
    """Zeros between the parameters change a reduction's rounding; the norm (and
    so the clip and every later number) must stay the unaligned buffer's."""
    net = _policy_sized_net(1)
    opt = FlatAdam(net.parameters(), 1e-2, 1e-5)
    for seed in range(20):
        opt.zero_grad()
        (
            10 * net(torch.randn(8, 5, generator=torch.Generator().manual_seed(seed)))
        ).sum().backward()
        packed = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
        assert torch.equal(opt.clip_grad_norm_(1e9), torch.linalg.vector_norm(packed))


@pytest.mark.parametrize(("saved_align", "loaded_align"), [(1, ALIGN), (ALIGN, 1)])
def test_checkpoints_load_across_the_alignment(
    saved_align: int, loaded_align: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An optimiser saved from the old, unaligned buffer (``ALIGN`` 1) continues
    in the aligned one to the bit, and the other way round."""
    x = torch.randn(16, 5)
    net = _policy_sized_net(2)
    reference = _policy_sized_net(2)
    monkeypatch.setattr(optimizer_module, "ALIGN", saved_align)
    opt, reference_opt = FlatAdam(net.parameters(), 1e-2), FlatAdam(reference.parameters(), 1e-2)
    for _ in range(3):
        _train_step(net, opt, x)
        _train_step(reference, reference_opt, x)
    saved = {"net": net.state_dict(), "opt": opt.state_dict()}
    monkeypatch.setattr(optimizer_module, "ALIGN", loaded_align)
    clone = _policy_sized_net(3)
    clone.load_state_dict(saved["net"])
    clone_opt = FlatAdam(clone.parameters(), 1.0)
    clone_opt.load_state_dict(saved["opt"])
    for _ in range(3):
        _train_step(reference, reference_opt, x)
        _train_step(clone, clone_opt, x)
    for a, b in zip(reference.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)
