"""A CartPole whose rank 1 raises in its third batch: a rank's own Python error."""

from __future__ import annotations

import os

from esper.envs.cartpole import CartPole


class BreaksOnRankOne(CartPole):
    steps = 0

    def dynamics(self, state, actions):
        self.steps += 1
        if os.environ.get("RANK") == "1" and self.steps > 40:  # 16 steps a batch
            raise ValueError("rank one broke on purpose")
        return super().dynamics(state, actions)
