"""esper's Adam takes the same steps as torch.optim.Adam."""

from __future__ import annotations

import torch

from esper.envs.spaces import DiscreteSpace
from esper.training.adam import Adam
from esper.training.policy import ActorCritic, mlp


def test_matches_torch_adam_step_by_step() -> None:
    torch.manual_seed(0)
    ours_net = mlp(4, (16, 16), 3, out_gain=1.0)
    torch_net = mlp(4, (16, 16), 3, out_gain=1.0)
    torch_net.load_state_dict(ours_net.state_dict())
    ours = Adam(ours_net.parameters(), lr=3e-3, eps=1e-5)
    reference = torch.optim.Adam(torch_net.parameters(), lr=3e-3, eps=1e-5)
    for step in range(25):
        x = torch.randn(32, 4)
        for net, opt in ((ours_net, ours), (torch_net, reference)):
            opt.param_groups[0]["lr"] = 3e-3 * (1 - step / 25)
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(ours_net.parameters(), torch_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_state_round_trip_continues_identically() -> None:
    torch.manual_seed(1)
    policy = ActorCritic(4, DiscreteSpace(2), (8,))
    opt = Adam(policy.parameters(), lr=1e-2)
    x = torch.randn(16, 4)

    def train_step(p: ActorCritic, o: Adam) -> None:
        o.zero_grad()
        p.value(x).square().mean().backward()
        o.step()

    train_step(policy, opt)
    clone = ActorCritic(4, DiscreteSpace(2), (8,))
    clone.load_state_dict(policy.state_dict())
    clone_opt = Adam(clone.parameters(), lr=1e-2)
    clone_opt.load_state_dict(opt.state_dict())
    train_step(policy, opt)
    train_step(clone, clone_opt)
    for a, b in zip(policy.parameters(), clone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_clipping_matches_torch_and_gradients_land_in_the_flat_buffer() -> None:
    torch.manual_seed(2)
    ours_net = mlp(4, (16, 16), 3, out_gain=1.0)
    torch_net = mlp(4, (16, 16), 3, out_gain=1.0)
    torch_net.load_state_dict(ours_net.state_dict())
    ours = Adam(ours_net.parameters(), lr=1e-3)
    x = torch.randn(64, 4)
    for _ in range(3):  # accumulation must keep writing into the same buffer
        ours.zero_grad()
        torch_net.zero_grad()
        (10 * ours_net(x)).square().mean().backward()
        (10 * torch_net(x)).square().mean().backward()
        flat_storage = ours.flat_grad.untyped_storage().data_ptr()
        assert all(
            p.grad.untyped_storage().data_ptr() == flat_storage for p in ours_net.parameters()
        )
        ours_norm = ours.clip_grad_norm_(0.5)
        torch_norm = torch.nn.utils.clip_grad_norm_(torch_net.parameters(), 0.5)
        torch.testing.assert_close(ours_norm, torch_norm)
        assert ours_norm > 0.5  # the clip actually acted
        for a, b in zip(ours_net.parameters(), torch_net.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad)
