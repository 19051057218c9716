"""What users do with runs besides training one: evaluate, load, export, plot,
train many seeds, tune, and generate the telemetry reference."""
