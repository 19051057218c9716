"""Tasks that declare statistics and start facts, importable as ``stat_tasks:NAME``."""

from __future__ import annotations

from esper.envs import TaskStatistic
from esper.envs.probes import MaskProbe


class MaskProbeWithFacts(MaskProbe):
    """probe-mask that also says what it knows at the start."""

    def start_facts(self):
        return {"forbidden_per_state": 1, "actions": ["left", "middle", "right"]}


class ShadowsATrainerMetric(MaskProbe):
    """Declares a statistic named like the trainer's own ``sps``."""

    statistics = (TaskStatistic("sps", "steps per second, by another name"),)
