"""Output files are checked before the work that fills them.

An export, a video or a plot that cannot be written used to fail with a long
traceback after the work was done. ``check_output_file`` refuses such a path
first, in one line naming the setting: a directory, a missing or non-directory
parent, a place the file system will not let us create a file (``/proc``, a
read-only mount, no permission). It probes by opening the file for append
(nothing of an existing file is changed) and removes a file the probe made.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from esper.runtime.errors import ConfigError


def check_output_file(path: Path | str, setting: str, makes_parents: bool = False) -> Path:
    """``path``, once it is known that a file can be written there. ``makes_parents``:
    the writer creates missing folders, so the nearest existing one must take them."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(setting, f"{path} is a directory; name a file to write")
    parent = path.parent
    if not parent.exists() and makes_parents:
        while not parent.exists():
            parent = parent.parent
        if parent.is_dir():
            try:
                os.rmdir(tempfile.mkdtemp(prefix=".esper-probe-", dir=parent))
            except OSError as exc:
                reason = (exc.strerror or type(exc).__name__).lower()
                message = f"cannot create folders in {parent} ({reason})"
                raise ConfigError(setting, message) from None
            return path
    if not parent.exists():
        raise ConfigError(setting, f"{parent} does not exist; create it first")
    if not parent.is_dir():
        raise ConfigError(setting, f"{parent} is not a directory")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(setting, f"cannot write {path} ({reason})") from None
    if not existed:
        path.unlink(missing_ok=True)
    return path
