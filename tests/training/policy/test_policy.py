"""The actor-critic keeps the parameter names its checkpoints are written with."""

from __future__ import annotations

import torch
from torch import nn

from esper.envs.spaces import BoxSpace, DiscreteSpace
from esper.training.fast.layers import NarrowInputLinear
from esper.training.policy.actor_critic import ActorCritic


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


def test_continuous_actions_reach_the_env_clipped_to_the_bounds() -> None:
    policy = ActorCritic(2, BoxSpace((-1.0, 0.0), (1.0, 2.0)), (8,))
    raw = torch.tensor([[-3.0, 1.0], [0.5, 5.0]])
    assert torch.equal(policy.env_action(raw), torch.tensor([[-1.0, 1.0], [0.5, 2.0]]))
    discrete = ActorCritic(2, DiscreteSpace(3), (8,))
    assert torch.equal(discrete.env_action(torch.tensor([0, 2])), torch.tensor([0, 2]))
