"""A batched 2-D point-mass navigation task: an esper task written outside esper."""

from point_mass.env import PointMass

__all__ = ["PointMass"]
