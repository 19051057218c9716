"""Optional dependencies (``pip install 'esper-rl[NAME]'``), imported only when asked for.

A missing one is a user error, one line that says what to install, not an
ImportError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from esper.runtime.errors import ConfigError

# The name esper is installed by (``esper`` on the registry is another project);
# the import name and the command stay ``esper``.
DISTRIBUTION = "esper-rl"


def install_hint(extra: str) -> str:
    return f"pip install '{DISTRIBUTION}[{extra}]'"


def import_extra(module: str, extra: str, setting: str) -> ModuleType:
    """Import ``module`` from the optional extra ``extra``, which ``setting`` needs."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module.split(".")[0]
        raise ConfigError(
            setting, f"needs the optional package '{missing}': {install_hint(extra)}"
        ) from None
