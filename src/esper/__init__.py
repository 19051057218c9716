"""esper: PPO on batched tensor environments, with built-in telemetry.

The Python API, for notebooks and scripts (the CLI is a thin layer over it)::

    import esper
    outcome = esper.train(task="cartpole", episodes=30, run_dir="runs/demo")
    policy = esper.load_policy("runs/demo")
    policy.save("policy.pt")  # the policy and its normaliser, one file
    policy = esper.load("policy.pt")  # anywhere, no run dir
    esper.export("runs/demo", format="onnx")  # the deterministic policy as one file

They are imported lazily so ``import esper`` stays cheap. ``esper.__version__``
is the installed distribution's (``esper-rl``), so a wheel and the checkout it
was built from say the same.
"""

from __future__ import annotations

from typing import Any

__all__ = ["__version__", "export", "load", "load_policy", "train"]

DISTRIBUTION = "esper-rl"


def version() -> str:
    """The version in the installed package's metadata (pyproject.toml's)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version(DISTRIBUTION)
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def __dir__() -> list[str]:
    """The lazy names too, so ``dir(esper)`` and tab completion show ``train``."""
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str) -> Any:
    if name == "__version__":
        return version()
    if name == "train":
        from esper.api import train

        return train
    if name == "load_policy":
        from esper.workflows.inference import load_policy

        return load_policy
    if name == "load":
        from esper.workflows.inference import load

        return load
    if name == "export":
        from esper.workflows.export import export_policy

        return export_policy
    raise AttributeError(f"module 'esper' has no attribute {name!r}")
