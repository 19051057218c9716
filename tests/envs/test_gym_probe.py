"""A ``gym:`` task's spaces are probed from one gymnasium env per id, not one per ask."""

import pytest

gymnasium = pytest.importorskip("gymnasium")

from esper.envs import env_class, make  # noqa: E402


class CountedEnv(gymnasium.Env):
    """Counts how often gymnasium builds it."""

    built = 0
    observation_space = gymnasium.spaces.Box(-1, 1, (3,))
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self) -> None:
        type(self).built += 1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}


gymnasium.register("EsperTestCounted-v0", entry_point=CountedEnv, max_episode_steps=5)


def test_validating_describing_and_building_probe_once() -> None:
    before = CountedEnv.built
    assert env_class("gym:EsperTestCounted-v0").spec.obs_dim == 3  # the CLI's check
    assert env_class("gym-async:EsperTestCounted-v0").spec.name == "gym-async:EsperTestCounted-v0"
    env = make("gym:EsperTestCounted-v0", num_envs=2)  # the run's own copies
    assert env.spec.name == "gym:EsperTestCounted-v0" and env.spec.max_episode_steps == 5
    env.close()
    assert CountedEnv.built - before == 1 + 2  # one probe, then the two copies
