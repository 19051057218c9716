"""One rank of the two-shards-versus-union check (run by torchrun from
test_distributed.py): one PPO step and one normaliser update over this rank's
shard of a fixed batch, written to OUT_DIR/rank{R}.pt for the test to compare."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch

from esper.config.schema import PPOConfig
from esper.envs.spaces import DiscreteSpace
from esper.training.distributed.collectives import (
    process_group,
    sum_moments,
)
from esper.training.fast.optimizer import FlatAdam
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RunningMeanStd
from esper.training.ppo import FlatBatch, ppo_update, update_settings

OBS_DIM, SHARD = 4, 32


def union_batch(policy: ActorCritic) -> FlatBatch:
    """The same 2 x SHARD transitions in every process."""
    gen = torch.Generator().manual_seed(7)
    obs = torch.randn(2 * SHARD, OBS_DIM, generator=gen)
    actions = torch.randint(0, 2, (2 * SHARD,), generator=gen)
    with torch.no_grad():
        log_probs, _, values = policy.evaluate(obs, actions)
    return FlatBatch(
        obs=obs,
        actions=actions,
        log_probs=log_probs + 0.05 * torch.randn(2 * SHARD, generator=gen),
        values=values,
        advantages=3.0 * torch.randn(2 * SHARD, generator=gen) + 1.0,
        returns=torch.randn(2 * SHARD, generator=gen),
    )


def shard(batch: FlatBatch, rank: int, world_size: int) -> FlatBatch:
    size = batch.size // world_size
    part = slice(rank * size, (rank + 1) * size)
    fields = FlatBatch.__dataclass_fields__
    values = {name: getattr(batch, name) for name in fields}
    # Fields a task without them leaves None (an action mask) stay None.
    return FlatBatch(**{k: v if v is None else v[part] for k, v in values.items()})


def one_step(rank: int, world_size: int, group=None) -> dict[str, torch.Tensor]:
    """Gradient, parameters and normaliser moments after one step over the shard."""
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, DiscreteSpace(2), (16, 16))
    optimizer = FlatAdam(policy.parameters(), lr=1e-2, eps=1e-5)
    batch = shard(union_batch(policy), rank, world_size)
    # The default loss settings, one epoch in one minibatch: this rank's slice of the whole batch.
    settings = replace(update_settings(PPOConfig()), update_epochs=1, minibatch_size=batch.size)
    stats = ppo_update(policy, optimizer, batch, settings, group=group)
    normalizer = RunningMeanStd((OBS_DIM,))
    if group is not None:
        normalizer.sum_across = sum_moments(group)
    normalizer.update(batch.obs)
    normalizer.update(batch.obs * 2.0 + 1.0)
    normalizer.merge_across()
    return {
        "gradient": optimizer.flat_grad.clone(),
        "parameters": optimizer.flat.clone(),
        "policy_loss": stats["policy_loss"],
        "obs_mean": normalizer.mean.clone(),
        "obs_var": normalizer.var.clone(),
    }


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    with process_group() as group:
        result = one_step(group.rank, group.world_size, group)
        torch.save(result, out_dir / f"rank{group.rank}.pt")
