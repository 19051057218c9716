"""Custom tasks the training tests build by name (``custom_tasks:NAME``)."""

from __future__ import annotations

import dataclasses

from esper.envs import TaskStatistic
from esper.envs.probes import MaskProbe


class MaskProbeWithFacts(MaskProbe):
    """probe-mask that also says what it knows at the start."""

    def start_facts(self):
        return {"forbidden_per_state": 1, "actions": ["left", "middle", "right"]}


class ShadowsATrainerMetric(MaskProbe):
    """Declares a statistic named like the trainer's own ``sps``."""

    statistics = (TaskStatistic("sps", "steps per second, by another name"),)


class HiddenMaskProbe(MaskProbe):
    """probe-mask without its mask: the forbidden action is neither shown nor
    masked, so no policy can tell which action pays."""

    spec = dataclasses.replace(MaskProbe.spec, name="probe-mask-hidden", has_action_mask=False)
