"""``grow-mlp``'s settings as a config chooses them, and the env spec they imply.

Apart from ``env.py`` because the spec's sizes (observation, actions) follow
from the settings alone, before any environment exists.
"""

from __future__ import annotations

from typing import Any

from esper.envs.base import EnvSpec
from esper.envs.growth.actions import action_count
from esper.envs.growth.observation import observation_size
from esper.envs.growth.settings import GrowthSettings, settings_from
from esper.envs.spaces import DiscreteSpace

DEFAULT_SETTINGS = GrowthSettings()


def growth_spec(s: GrowthSettings, name: str = "grow-mlp") -> EnvSpec:
    return EnvSpec(
        name, "", max_episode_steps=s.max_epochs, obs_dim=observation_size(s), state_dim=0,
        action_space=DiscreteSpace(action_count(s)), has_action_mask=True,
    )  # fmt: skip


def chosen_settings(
    settings: GrowthSettings | None, options: dict[str, Any] | None
) -> GrowthSettings:
    """``settings`` (or the defaults) with a config's ``[task_options]`` table on top."""
    if options:
        settings = settings_from({**_fields_of(settings), **options})
    return settings or DEFAULT_SETTINGS


def _fields_of(settings: GrowthSettings | None) -> dict[str, Any]:
    """A settings object's values, as ``settings_from`` takes them ({} for None)."""
    if settings is None:
        return {}
    return {name: getattr(settings, name) for name in GrowthSettings.__dataclass_fields__}
