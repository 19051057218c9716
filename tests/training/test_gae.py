"""GAE against a plain-Python reference, with truncation bootstrapped from V(final obs)."""

from __future__ import annotations

import pytest
import torch

from esper.training import gae
from esper.training.gae import bootstrap_values, compute_gae, compute_gae_fast


def reference_gae(rewards, values, last_value, final_values, terminated, truncated, gamma, lam):
    """One environment, written the slow, obvious way."""
    horizon = len(rewards)
    advantages = [0.0] * horizon
    running = 0.0
    for t in reversed(range(horizon)):
        if terminated[t]:
            next_value = 0.0
        elif truncated[t]:
            next_value = final_values[t]
        else:
            next_value = values[t + 1] if t + 1 < horizon else last_value
        delta = rewards[t] + gamma * next_value - values[t]
        ended = terminated[t] or truncated[t]
        running = delta + (0.0 if ended else gamma * lam * running)
        advantages[t] = running
    return advantages


def test_matches_reference_on_random_episodes() -> None:
    g = torch.Generator().manual_seed(0)
    horizon, n_envs, gamma, lam = 37, 5, 0.99, 0.95
    rewards = torch.randn(horizon, n_envs, generator=g)
    values = torch.randn(horizon, n_envs, generator=g)
    final_values = torch.randn(horizon, n_envs, generator=g)
    last_value = torch.randn(n_envs, generator=g)
    terminated = torch.rand(horizon, n_envs, generator=g) < 0.1
    truncated = (torch.rand(horizon, n_envs, generator=g) < 0.1) & ~terminated
    terminated[5, 0] = truncated[5, 0] = True  # both at once: termination wins

    next_values = bootstrap_values(values, last_value, final_values, terminated, truncated)
    advantages, returns = compute_gae(
        rewards, values, next_values, terminated | truncated, gamma, lam
    )
    for env in range(n_envs):
        expected = reference_gae(
            rewards[:, env].tolist(),
            values[:, env].tolist(),
            last_value[env].item(),
            final_values[:, env].tolist(),
            terminated[:, env].tolist(),
            truncated[:, env].tolist(),
            gamma,
            lam,
        )
        torch.testing.assert_close(advantages[:, env], torch.tensor(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(returns, advantages + values)


def test_truncation_bootstraps_but_termination_does_not() -> None:
    rewards = torch.ones(1, 2)
    values = torch.zeros(1, 2)
    final_values = torch.full((1, 2), 10.0)
    last_value = torch.zeros(2)
    terminated = torch.tensor([[True, False]])
    truncated = torch.tensor([[False, True]])
    next_values = bootstrap_values(values, last_value, final_values, terminated, truncated)
    advantages, _ = compute_gae(rewards, values, next_values, terminated | truncated, 0.9, 0.95)
    assert advantages.tolist() == [[1.0, 1.0 + 0.9 * 10.0]]


def test_final_observations_are_valued_a_few_steps_per_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A large rollout is valued in minibatch-sized passes (the memory peak) with
    the same values as one pass."""
    horizon, n_envs = 10, 6
    final_obs = torch.randn(horizon, n_envs, 3)
    passes: list[int] = []

    def value_of(obs: torch.Tensor) -> torch.Tensor:
        passes.append(obs.shape[0])
        return obs.sum(-1)

    monkeypatch.setattr(gae, "VALUE_CHUNK_ROWS", 4 * n_envs)
    values = gae._values_in_chunks(value_of, final_obs)
    assert passes == [4, 4, 2]
    torch.testing.assert_close(values, final_obs.sum(-1))


@pytest.mark.parametrize("shape", [(1, 1), (37, 5), (64, 128)])
def test_the_fast_gae_equals_the_plain_loop_bit_for_bit(shape: tuple[int, int]) -> None:
    """The rollout's GAE (two ops a step) must not move a single bit of training."""
    g = torch.Generator().manual_seed(1)
    rewards, values, next_values = torch.randn(3, *shape, generator=g).unbind(0)
    ended = torch.rand(*shape, generator=g) < 0.05
    plain = compute_gae(rewards, values, next_values, ended, 0.99, 0.95)
    fast = compute_gae_fast(rewards, values, next_values, ended, 0.99, 0.95)
    for a, b in zip(plain, fast, strict=True):
        assert torch.equal(a, b)
