"""Optional dependencies (``pip install 'esper[NAME]'``), imported only when asked for.

A missing one is a user error, one line that says what to install, not an
ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from esper.config import ConfigError


def import_extra(module: str, extra: str, flag: str) -> ModuleType:
    """Import ``module`` from the optional extra ``extra``, which ``flag`` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module.split(".")[0]
        raise ConfigError(
            flag, f"needs the optional package '{missing}': pip install 'esper[{extra}]'"
        ) from None
