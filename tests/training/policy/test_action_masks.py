"""Masked policies against sb3-contrib's MaskablePPO distributions, and a mask
the policy cannot ignore.

sb3-contrib (a test dependency) is an independent implementation of the same
distribution: forbidden logits replaced by a large negative number, entropy
over the allowed actions only. Log-probabilities, entropies and sampling
frequencies of esper's policy must match it, rows with one allowed action
included (entropy 0, no NaN).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("sb3_contrib")  # the reference; a bare GPU machine has none
from sb3_contrib.common.maskable.distributions import (
    MaskableCategorical,
    MaskableMultiCategoricalDistribution,
)

from esper.envs.spaces import DiscreteSpace, MultiDiscreteSpace
from esper.training.policy.actor_critic import ActorCritic

OBS_DIM, ROWS = 4, 64
NVEC = (3, 2, 4)


def policy_for(space) -> ActorCritic:
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, space, (16,))
    with torch.no_grad():  # logits far from uniform, so a mismatch shows
        policy.actor[-1].weight.mul_(300.0)
    return policy


def random_masks(rows: int, blocks: tuple[int, ...]) -> torch.Tensor:
    """``[rows, sum(blocks)]`` masks with at least one allowed action per block;
    the first rows allow exactly one action per block."""
    parts = []
    for n in blocks:
        mask = torch.rand(rows, n) < 0.5
        mask[torch.arange(rows), torch.randint(n, (rows,))] = True
        one = torch.zeros(8, n, dtype=torch.bool)
        one[torch.arange(8), torch.randint(n, (8,))] = True
        mask[:8] = one
        parts.append(mask)
    return torch.cat(parts, dim=1)


def allowed_actions(mask: torch.Tensor, blocks: tuple[int, ...]) -> torch.Tensor:
    """An allowed action per row and block, drawn uniformly: ``[rows, len(blocks)]``."""
    picks = [torch.multinomial(m.float(), 1).squeeze(1) for m in mask.split(blocks, dim=1)]
    return torch.stack(picks, dim=1)


def test_discrete_log_prob_and_entropy_match_maskable_categorical() -> None:
    policy = policy_for(DiscreteSpace(5))
    obs, mask = torch.randn(ROWS, OBS_DIM), random_masks(ROWS, (5,))
    action = allowed_actions(mask, (5,)).squeeze(1)
    with torch.no_grad():
        log_prob, entropy, _ = policy.evaluate(obs, action, action_mask=mask)
        reference = MaskableCategorical(logits=policy.actor(obs), masks=mask)
    torch.testing.assert_close(log_prob, reference.log_prob(action), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, reference.entropy(), atol=1e-5, rtol=1e-5)
    assert torch.equal(entropy[:8], torch.zeros(8)), "one allowed action: entropy 0"
    assert torch.isfinite(log_prob).all() and torch.isfinite(entropy).all()


def test_multi_discrete_log_prob_and_entropy_match_maskable_multi_categorical() -> None:
    policy = policy_for(MultiDiscreteSpace(NVEC))
    obs, mask = torch.randn(ROWS, OBS_DIM), random_masks(ROWS, NVEC)
    action = allowed_actions(mask, NVEC)
    with torch.no_grad():
        log_prob, entropy, _ = policy.evaluate(obs, action, action_mask=mask)
        reference = MaskableMultiCategoricalDistribution(list(NVEC))
        reference.proba_distribution(policy.actor(obs))
        reference.apply_masking(mask)
    torch.testing.assert_close(log_prob, reference.log_prob(action), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy, reference.entropy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("space", [DiscreteSpace(5), MultiDiscreteSpace(NVEC)])
def test_sampling_frequencies_match_the_reference(space) -> None:
    """One observation and mask, 40,000 samples: each block's frequencies are
    sb3-contrib's probabilities, and a forbidden action never appears."""
    blocks = (space.n,) if isinstance(space, DiscreteSpace) else space.nvec
    policy = policy_for(space)
    with torch.no_grad():
        policy.actor[-1].weight.mul_(1 / 300.0)  # moderate logits: every allowed one is drawn
    samples = 40_000
    obs = torch.randn(1, OBS_DIM).expand(samples, -1)
    mask = torch.zeros(1, sum(blocks), dtype=torch.bool)
    for start, n in zip(torch.tensor((0, *blocks)).cumsum(0).tolist(), blocks, strict=False):
        mask[0, start : start + n - 1] = True  # the last action of every block is forbidden
        mask[0, start] = True
    mask = mask.expand(samples, -1)
    torch.manual_seed(5)
    with torch.no_grad():
        action, log_prob, _, _ = policy.act(obs, action_mask=mask)
        logits = policy.actor(obs[:1])
    action = action.reshape(samples, -1)
    for head, (block_logits, block_mask) in enumerate(
        zip(logits.split(blocks, dim=1), mask[:1].split(blocks, dim=1), strict=True)
    ):
        expected = MaskableCategorical(logits=block_logits, masks=block_mask).probs[0]
        seen = torch.bincount(action[:, head], minlength=len(expected)).float() / samples
        torch.testing.assert_close(seen, expected, atol=0.01, rtol=0)
        assert seen[-1] == 0, f"head {head}: a forbidden action was sampled"
    with torch.no_grad():
        scored, _, _ = policy.evaluate(obs, action.squeeze(1) if len(blocks) == 1 else action,
                                       action_mask=mask)  # fmt: skip
    torch.testing.assert_close(log_prob, scored)


@pytest.mark.parametrize("space", [DiscreteSpace(4), MultiDiscreteSpace((4, 3))])
def test_the_policy_never_samples_a_forbidden_action(space) -> None:
    """The actor all but insists on action 0 of every head, which the mask
    forbids: an ignored mask would sample it nearly every time."""
    policy = ActorCritic(OBS_DIM, space, (8,))
    blocks = (space.n,) if isinstance(space, DiscreteSpace) else space.nvec
    starts = torch.tensor((0, *blocks[:-1])).cumsum(0)
    with torch.no_grad():
        policy.actor[-1].bias[starts] = 50.0
    mask = torch.ones(2048, sum(blocks), dtype=torch.bool)
    mask[:, starts] = False
    obs = torch.randn(2048, OBS_DIM)
    with torch.no_grad():
        sampled, _, _, _ = policy.act(obs, action_mask=mask)
        greedy, _ = policy.act_deterministic(obs, action_mask=mask)
    for action in (sampled, greedy):
        assert (action.reshape(2048, -1) != 0).all(), "the mask was ignored"


def test_all_forbidden_row_stays_finite() -> None:
    """A task bug (check-env flags it), but the update must not turn it into NaN."""
    policy = ActorCritic(OBS_DIM, DiscreteSpace(3), (8,))
    mask = torch.zeros(4, 3, dtype=torch.bool)
    log_prob, entropy, _ = policy.evaluate(
        torch.randn(4, OBS_DIM), torch.zeros(4), action_mask=mask
    )
    assert torch.isfinite(log_prob).all() and torch.isfinite(entropy).all()


@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_the_update_scores_each_action_under_the_mask_it_was_sampled_with(
    recurrent: str,
) -> None:
    """Before any update the new policy is the old one, so every stored action's
    log-prob, scored again through the update's batch, must equal the rollout's:
    the ratio is 1. An update that forgot the stored masks would score the
    actions under the unmasked distribution (ratio far from 1)."""
    from esper.envs import make
    from esper.training.episode_stats import EpisodeTracker
    from esper.training.ppo import flatten_batch
    from esper.training.rollout import RolloutBuffer, collect_rollout

    torch.manual_seed(0)
    env = make("probe-mask", 16, "cpu", seed=0)
    policy = ActorCritic(1, env.action_space, (8,), recurrent=recurrent, rnn_hidden=8)
    with torch.no_grad():
        policy.actor[-1].bias.copy_(torch.tensor([3.0, 0.0, -3.0]))
    buffer = RolloutBuffer.allocate(
        8, 16, 1, (), "cpu", memory_size=policy.memory_size, mask_width=env.spec.mask_width
    )
    memory = policy.initial_memory(16)
    obs = env.reset(seed=0)
    collect_rollout(env, policy, buffer, obs, None, EpisodeTracker(16, torch.device("cpu"), 8),
                    memory=memory)  # fmt: skip
    assert buffer.action_masks is not None and not buffer.action_masks.all()
    zeros = torch.zeros_like(buffer.rewards)
    batch = flatten_batch(buffer, zeros, zeros)
    with torch.no_grad():
        log_prob, _, _ = batch.evaluate(policy)
    torch.testing.assert_close(log_prob, batch.log_probs, atol=1e-5, rtol=1e-5)
