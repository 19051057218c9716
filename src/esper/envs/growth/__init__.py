"""The growth task: batched host networks in training, grown by the policy (docs/growth.md)."""

from esper.envs.growth.env import GrowMLP
from esper.envs.growth.settings import BLUEPRINTS, GrowthSettings

__all__ = ["BLUEPRINTS", "GrowMLP", "GrowthSettings"]
