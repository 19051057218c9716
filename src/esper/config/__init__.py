"""What a run is: the validated schema, its layers (defaults, task, file,
overrides), settings as text, and a run's config from what the user gave."""
