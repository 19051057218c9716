"""The actor-critic: encoders, the recurrent core, action distributions, the
observation normaliser, and the deterministic policy that export writes."""
