"""Valid random actions for any batched env, drawn from a generator on the CPU
and moved to the env's device: what the checker and the speed measurement step with."""

from __future__ import annotations

from typing import Any

import torch

from esper.envs.spaces import DiscreteSpace, MultiDiscreteSpace


def random_actions(env: Any, generator: torch.Generator) -> torch.Tensor:
    """A batch of valid random actions on the env's device: ``[num_envs, ...]``,
    ``[num_envs, n_agents, ...]`` for a multi-agent task."""
    space = env.action_space
    rows = (env.num_envs, *env.spec.agent_shape)
    if isinstance(space, DiscreteSpace):
        drawn = torch.randint(space.n, rows, generator=generator)
    elif isinstance(space, MultiDiscreteSpace):
        upper = torch.tensor(space.nvec)
        drawn = (torch.rand(*rows, len(space.nvec), generator=generator) * upper).long()
    else:
        low, high = torch.tensor(space.low), torch.tensor(space.high)
        drawn = low + (high - low) * torch.rand(*rows, space.dim, generator=generator)
    return drawn.to(env.device)


def action_sequence(env: Any, count: int, seed: int) -> list[torch.Tensor]:
    """``count`` batches of random actions, the same ones for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    return [random_actions(env, generator) for _ in range(count)]


def allowed_actions(env: Any, mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A batch of random actions that ``mask`` (``[num_envs, mask_width]`` bool,
    ``[num_envs, n_agents, mask_width]`` with several agents) allows, uniform
    over each head's allowed actions, on the env's device. A row that allows
    nothing draws uniformly from all (the checker reports it)."""
    space = env.action_space
    heads = space.nvec if isinstance(space, MultiDiscreteSpace) else (space.n,)
    picks = []
    # check-env's draws use a CPU generator, never training; one row per copy (and agent)
    host_mask = mask.cpu().reshape(-1, mask.shape[-1])  # host-sync: check-env only
    for block in host_mask.split(heads, dim=1):
        weights = block.float() + (~block.any(dim=1, keepdim=True)).float()
        picks.append(torch.multinomial(weights, 1, generator=generator).squeeze(1))
    drawn = torch.stack(picks, dim=1).reshape(*mask.shape[:-1], len(heads))
    return (drawn.squeeze(-1) if isinstance(space, DiscreteSpace) else drawn).to(env.device)
