"""Closing an environment that holds something beyond tensors.

``close`` is not part of the batched-env contract: only environments that own
workers or a simulator (gymnasium's vector envs, ``gym-async:`` processes,
``TorchVectorEnv``) have one, so every caller that finishes with an env closes
it through here.
"""

from __future__ import annotations

from typing import Any


def close_env(*envs: Any) -> None:
    """Call each env's ``close`` where it has one."""
    for env in envs:
        close = getattr(env, "close", None)
        if close is not None:
            close()
