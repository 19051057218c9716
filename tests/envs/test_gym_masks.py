"""``gym:`` tasks with action masks, in either conventional place:
``info["action_mask"]`` or a ``Dict`` observation's ``"action_mask"`` key.

Each test env forbids one of three actions per step, drawn at random and
shown only through the mask, and raises on a forbidden action: a run that
completes never sampled one.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

gymnasium = pytest.importorskip("gymnasium")  # a bare GPU machine has none: skip, not fail

import esper  # noqa: E402
from esper.envs.gym_adapter import GymVectorEnv, probe_spec  # noqa: E402
from esper.workflows.evaluate import evaluate  # noqa: E402


class ForbidsOne(gymnasium.Env):
    """Three actions, one forbidden each step; the lowest allowed pays 1."""

    in_observation = False

    def __init__(self) -> None:
        self.action_space = gymnasium.spaces.Discrete(3)
        box = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
        mask = gymnasium.spaces.MultiBinary(3)
        self.observation_space = (
            gymnasium.spaces.Dict({"obs": box, "action_mask": mask}) if self.in_observation else box
        )

    def _draw(self) -> tuple:
        self.forbidden = int(self.np_random.integers(3))
        mask = np.ones(3, dtype=np.int8)
        mask[self.forbidden] = 0
        obs = np.zeros(2, dtype=np.float32)
        if self.in_observation:
            return {"obs": obs, "action_mask": mask}, {}
        return obs, {"action_mask": mask}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._draw()

    def step(self, action):
        if int(action) == self.forbidden:
            raise AssertionError(f"action {action} was forbidden")
        reward = 1.0 if int(action) == (1 if self.forbidden == 0 else 0) else -1.0
        obs, info = self._draw()
        return obs, reward, True, False, info


class ForbidsOneInObservation(ForbidsOne):
    in_observation = True


gymnasium.register("esper-test/MaskInInfo-v0", entry_point=ForbidsOne, max_episode_steps=5)
gymnasium.register(
    "esper-test/MaskInObs-v0", entry_point=ForbidsOneInObservation, max_episode_steps=5
)
IDS = ["esper-test/MaskInInfo-v0", "esper-test/MaskInObs-v0"]


@pytest.mark.parametrize("gym_id", IDS)
def test_the_mask_is_read_from_either_place_and_kept_like_a_batched_env(gym_id: str) -> None:
    spec = probe_spec(gym_id)
    assert spec.has_action_mask and spec.obs_dim == 2  # the mask is not observed
    env = GymVectorEnv(gym_id, num_envs=4, seed=0)
    try:
        env.reset(seed=0)
        assert env.action_mask.dtype == torch.bool and env.action_mask.shape == (4, 3)
        assert (env.action_mask.sum(1) == 2).all()
        allowed = env.action_mask.int().argmax(1)  # an allowed action of each copy
        _, _, _, _, info = env.step(allowed)
        assert info["action_mask"] is env.action_mask and (env.action_mask.sum(1) == 2).all()
    finally:
        env.close()


@pytest.mark.parametrize("gym_id", IDS)
def test_a_masked_gym_task_trains_without_a_forbidden_action(gym_id: str, tmp_path) -> None:
    outcome = esper.train(
        f"gym:{gym_id}", episodes=2, run_dir=str(tmp_path), device="cpu", n_envs=4, horizon=8,
        n_minibatches=2,
    )  # fmt: skip
    assert outcome.status == "completed", outcome.reason
    # Evaluation and load_policy act under the env's mask too (the env raises otherwise).
    evaluation = evaluate(tmp_path, episodes=12, record=False)
    assert evaluation.payload.episodes == 12
    policy = esper.load_policy(tmp_path)
    mask = torch.tensor([[False, True, True], [True, False, False]])
    for _ in range(20):  # sampled as well as greedy: never a forbidden action
        policy.deterministic = not policy.deterministic
        assert policy(torch.zeros(2, 2), action_mask=mask).tolist()[1] == 0
        assert policy(torch.zeros(2, 2), action_mask=mask)[0] != 0
    with pytest.raises(ValueError, match=r"action_mask must be a bool tensor of shape \[2, 3\]"):
        policy(torch.zeros(2, 2), action_mask=mask.int())
