"""Single key presses from the terminal, without Enter, for ``q`` to quit.

The terminal goes into cbreak mode (keys arrive at once, Ctrl-C still
interrupts) only while the block runs, and is restored however it ends.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

ReadKey = Callable[[float], str | None]


@contextmanager
def keypresses(stream: TextIO | None = None) -> Iterator[ReadKey]:
    """Yields ``read_key(timeout)``: a key pressed within ``timeout`` seconds, or None.

    When the input is not a terminal there are no keys; ``read_key`` just waits.
    """
    stream = stream if stream is not None else sys.stdin
    if not stream.isatty():

        def wait(timeout: float) -> str | None:
            time.sleep(timeout)
            return None

        yield wait
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)

    def read_key(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 1).decode(errors="replace") if ready else None

    tty.setcbreak(fd)
    try:
        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
