"""esper: PPO on batched tensor environments, with built-in telemetry.

The Python API, for notebooks and scripts (the CLI is a thin layer over it)::

    import esper
    outcome = esper.train(task="cartpole", episodes=30, run_dir="runs/demo")
    policy = esper.load_policy("runs/demo")

Both are imported lazily so ``import esper`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_policy", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from esper.api import train

        return train
    if name == "load_policy":
        from esper.inference import load_policy

        return load_policy
    raise AttributeError(f"module 'esper' has no attribute {name!r}")
