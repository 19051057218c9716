"""A run on disk: its directory and lock, what its telemetry is written to,
its learning curves, and runs grouped by seed."""
