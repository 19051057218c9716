"""Whole episodes: the reward telescopes, episodes restart, scripted policies stay legal."""

import dataclasses

import pytest
import torch
from growth_helpers import SMALL, small_env

from esper.envs.base import statistic_values
from esper.envs.growth import GrowMLP, GrowthSettings
from esper.envs.growth.observation import Fields, score
from esper.runtime.errors import ConfigError


@pytest.mark.parametrize("policy", sorted(GrowMLP.scripted))
def test_scripted_policies_play_whole_episodes_and_only_legal_moves(policy: str) -> None:
    env = small_env(n=4, seed=2)
    act = GrowMLP.scripted[policy](env)
    obs, fields = env._observe(), Fields(env.settings)
    first = score(obs[:, fields.val_accuracy], obs[:, fields.params] * SMALL.param_budget, SMALL)
    total = torch.zeros(4)
    for _ in range(SMALL.max_epochs):
        mask = env.action_mask.clone()
        actions = act(obs, mask)
        assert mask.gather(1, actions.unsqueeze(1)).all(), policy
        obs, reward, terminated, truncated, info = env.step(actions)
        total += reward
        act.reset(terminated)
    assert terminated.all() and not truncated.any()
    last = info["final_obs"]
    final = score(last[:, fields.val_accuracy], last[:, fields.params] * SMALL.param_budget, SMALL)
    # The return is the last score minus the first: nothing to earn along the way.
    torch.testing.assert_close(total, final - first, rtol=0, atol=1e-5)
    assert (env.elapsed_steps == 0).all() and (env.stage == 0).all()  # a fresh episode
    stats = statistic_values(env.batch_statistics())
    assert stats["final_val_accuracy"] == pytest.approx(float(last[:, fields.val_accuracy].mean()))


def test_the_policies_differ_where_they_should() -> None:
    grown = {}
    for policy in ("never", "all-at-start"):
        env = small_env(n=4, seed=2)
        act = GrowMLP.scripted[policy](env)
        obs = env._observe()
        for _ in range(SMALL.max_epochs):
            obs, *_ = env.step(act(obs, env.action_mask))
        grown[policy] = statistic_values(env.batch_statistics())
    assert grown["never"]["germinations"] == 0 and grown["never"]["params_vs_budget"] < 0.2
    assert grown["all-at-start"]["germinations"] == 4 * SMALL.slots  # every slot, every host
    assert grown["all-at-start"]["seeds_fossilized"] >= 1


def test_statistics_with_nothing_to_report_are_nan() -> None:
    env = small_env(n=2)
    env.step(torch.zeros(2, dtype=torch.int64))
    stats = statistic_values(env.batch_statistics())
    assert torch.isnan(stats["final_val_accuracy"]) and torch.isnan(stats["seed_contribution"])
    assert stats["germinations"] == 0
    assert set(stats) == {statistic.name for statistic in type(env).statistics}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"blueprints": ("adapter", "block-64")}, "blueprints: unknown blueprint 'block-64'"),
        ({"slots": 0}, "slots: must be 1 to 8 (got 0)"),
        ({"slots": 9}, "slots: must be 1 to 8"),
        ({"param_budget": 100}, "param_budget: must hold the bare host's 212 parameters"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(change: dict, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        dataclasses.replace(GrowthSettings(), **change)
    assert caught.value.one_line().startswith(words) and "\n" not in caught.value.one_line()


def test_draws_are_reproducible_and_the_state_round_trips() -> None:
    first, second = small_env(n=2, seed=9), small_env(n=2, seed=9)
    torch.testing.assert_close(first.train_x, second.train_x)
    first.step(torch.tensor([1, 5]))
    saved = first.state_dict()
    after = [first.step(torch.tensor([0, 0]))[0] for _ in range(SMALL.max_epochs)]
    second.load_state_dict(saved)
    again = [second.step(torch.tensor([0, 0]))[0] for _ in range(SMALL.max_epochs)]
    torch.testing.assert_close(torch.stack(again), torch.stack(after))


def test_a_step_without_drawn_rows_draws_only_when_its_episodes_end() -> None:
    """Evaluation steps without rows: one draw per episode, not one per step."""
    counted = small_env(n=2, seed=6)
    draws = []
    plain = counted.initial_state
    counted.initial_state = lambda n: draws.append(n) or plain(n)
    for _ in range(2 * SMALL.max_epochs):
        counted.step(torch.zeros(2, dtype=torch.int64))
    assert draws == [2, 2]
    assert (counted.elapsed_steps == 0).all() and (counted.stage == 0).all()
