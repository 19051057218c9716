"""The seed lifecycle: only legal moves are allowed, and each does what its stage says."""

import torch
from growth_helpers import action, everyone, small_env

from esper.envs.growth.actions import ADVANCE, FOSSILIZE, GERMINATE, PRUNE, WAIT
from esper.envs.growth.hosts import host_layout
from esper.envs.growth.lifecycle import (
    BLENDING,
    DORMANT,
    EMBARGOED,
    FOSSILIZED,
    HOLDING,
    TRAINING,
)


def test_a_fresh_host_may_only_wait_or_germinate() -> None:
    env = small_env()
    allowed = env.action_mask[0].nonzero().flatten().tolist()
    kinds = env.table.kind[allowed].tolist()
    assert kinds[0] == WAIT and set(kinds[1:]) == {GERMINATE}
    assert len(allowed) == 1 + env.settings.slots * len(env.settings.blueprints)


def test_an_illegal_move_changes_nothing() -> None:
    env = small_env()
    illegal = action(env, FOSSILIZE, slot=1)
    assert not env.action_mask[:, illegal].any()
    env.step(everyone(env, illegal))
    assert (env.stage == DORMANT).all()


def test_the_stages_follow_the_legal_directions() -> None:
    env = small_env(blend_epochs=2)
    env.step(everyone(env, action(env, GERMINATE, slot=1, blueprint=2)))
    assert env.stage[:, 1].eq(TRAINING).all() and env.stage[:, [0, 2]].eq(DORMANT).all()
    assert not env.action_mask[:, action(env, FOSSILIZE, slot=1)].any()  # not yet holding
    assert not env.action_mask[:, action(env, GERMINATE, slot=1)].any()  # slot taken
    env.step(everyone(env, action(env, ADVANCE, slot=1)))
    assert env.stage[:, 1].eq(BLENDING).all()
    assert not env.action_mask[:, action(env, ADVANCE, slot=1)].any()
    env.step(everyone(env, 0))
    assert env.stage[:, 1].eq(HOLDING).all()
    env.step(everyone(env, action(env, FOSSILIZE, slot=1)))
    assert env.stage[:, 1].eq(FOSSILIZED).all()
    assert not env.action_mask[:, action(env, PRUNE, slot=1)].any()  # permanent


def test_blending_ramps_alpha_over_blend_epochs() -> None:
    env = small_env(blend_epochs=3)
    env.step(everyone(env, action(env, GERMINATE, slot=0, blueprint=1)))
    assert env.alpha.eq(0).all()
    seen = []
    for a in (action(env, ADVANCE, slot=0), 0, 0):
        env.step(everyone(env, a))
        seen.append(env.alpha[:, 0].clone())
    torch.testing.assert_close(torch.stack(seen)[:, 0], torch.tensor([1 / 3, 2 / 3, 1.0]))
    assert env.stage[:, 0].eq(HOLDING).all()


def test_a_pruned_slot_rests_for_the_embargo_then_takes_a_seed_again() -> None:
    env = small_env(embargo_epochs=2)
    env.step(everyone(env, action(env, GERMINATE, slot=2, blueprint=2)))
    env.step(everyone(env, action(env, PRUNE, slot=2)))
    assert env.stage[:, 2].eq(EMBARGOED).all()
    assert host_layout(env.settings).view(env.weights, "seeds")[:, 2].eq(0).all()
    germinate = action(env, GERMINATE, slot=2, blueprint=0)
    assert not env.action_mask[:, germinate].any()
    env.step(everyone(env, germinate))  # refused: still resting
    assert env.stage[:, 2].eq(DORMANT).all() and env.action_mask[:, germinate].all()
    env.step(everyone(env, germinate))
    assert env.stage[:, 2].eq(TRAINING).all()


def test_a_germination_that_would_exceed_the_budget_is_masked() -> None:
    env = small_env()
    big = action(env, GERMINATE, slot=0, blueprint=2)
    per_seed = int(env.blueprint_params[2])
    tight = small_env(param_budget=env.settings.host_params + per_seed)
    assert tight.action_mask[:, big].all()
    tight.step(everyone(tight, big))
    assert not tight.action_mask[:, action(tight, GERMINATE, slot=1, blueprint=2)].any()
    assert not tight.action_mask[:, action(tight, GERMINATE, slot=1, blueprint=0)].any()
