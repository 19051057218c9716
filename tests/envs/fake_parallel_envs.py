"""Tiny PettingZoo parallel environments that break (or stretch) what the
``pettingzoo:`` adapter asks, each a module-level factory the tests name as
``pettingzoo:fake_parallel_envs:FACTORY`` (tests/envs is on sys.path)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

MASK = np.array([1, 0, 1], dtype=np.int8)  # action 1 is never allowed


class TwoAgents(ParallelEnv):
    """Two agents observe their step count; the episode lasts ``length`` steps.

    ``wide`` gives ``b`` a wider observation than ``a``; ``leave_at`` ends
    ``b`` alone at that step; ``mask`` puts an action mask in the infos
    (``"info"``) or in a Dict observation (``"obs"``)."""

    metadata: ClassVar[dict] = {"name": "two_agents"}

    def __init__(self, wide=False, leave_at=None, mask=None, length=4) -> None:
        self.possible_agents = ["a", "b"]
        self.wide, self.leave_at, self.mask, self.max_cycles = wide, leave_at, mask, length
        self.steps = 0

    def observation_space(self, agent):
        box = spaces.Box(-10, 10, (3 if self.wide and agent == "b" else 2,), np.float32)
        if self.mask == "obs":
            return spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(3)})
        return box

    def action_space(self, agent):
        return spaces.Discrete(3)

    def _observe(self):
        obs = {}
        for k, agent in enumerate(self.agents):
            width = self.observation_space(agent)
            width = width["observation"] if self.mask == "obs" else width
            value = np.full(width.shape, self.steps + 0.5 * k, dtype=np.float32)
            obs[agent] = (
                {"observation": value, "action_mask": MASK} if self.mask == "obs" else value
            )
        infos = {a: ({"action_mask": MASK} if self.mask == "info" else {}) for a in self.agents}
        return obs, infos

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.steps = 0
        return self._observe()

    def step(self, actions):
        assert set(actions) == set(self.agents)
        self.steps += 1
        obs, infos = self._observe()
        rewards = {a: float(actions[a]) for a in self.agents}
        over = self.steps >= self.max_cycles
        truncations = {a: over for a in self.agents}
        terminations = {a: a == "b" and self.steps == self.leave_at for a in self.agents}
        self.agents = [a for a in self.agents if not (truncations[a] or terminations[a])]
        return obs, rewards, terminations, truncations, infos


def unlike_agents():
    return TwoAgents(wide=True)


def leaving_agent():
    return TwoAgents(leave_at=2)


def masked_in_info():
    return TwoAgents(mask="info")


def masked_in_obs():
    return TwoAgents(mask="obs")
