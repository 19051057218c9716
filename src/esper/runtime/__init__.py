"""What every layer may use: user errors, the device, threads, process
settings, torchrun's environment, host-sync rules and optional extras."""
