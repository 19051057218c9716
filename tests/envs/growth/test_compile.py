"""The growth step is one static graph: no host read, no branch on a value, no draw."""

import torch
from growth_helpers import small_env

from esper.training.fast.capture import compile_step


def test_the_step_compiles_as_one_graph_and_equals_the_plain_step() -> None:
    plain, compiled = small_env(n=3, seed=1), small_env(n=3, seed=1)
    steps = plain.settings.max_epochs + 2  # across an episode's end: the auto-reset too
    fresh_plain, fresh_compiled = (
        plain.draw_initial_states(steps),
        compiled.draw_initial_states(steps),
    )
    step = compile_step(lambda env, a, fresh: env.step(a, fresh), backend="eager")
    generator = torch.Generator().manual_seed(0)
    for t in range(steps):
        actions = torch.multinomial(plain.action_mask.float(), 1, generator=generator).squeeze(1)
        expected = plain.step(actions, fresh_plain[t])
        got = step(compiled, actions, fresh_compiled[t])
        torch.testing.assert_close(got[0], expected[0])
        torch.testing.assert_close(got[1], expected[1])
        assert torch.equal(got[4]["action_mask"], expected[4]["action_mask"])
    assert (compiled.elapsed_steps == 2).all()
