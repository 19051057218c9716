"""The terminal's keyboard while the dashboard is up: single key presses for
``q`` to quit, and no echo of what is typed over the dashboard.

The terminal's modes change only while a block runs, and are restored however
it ends.
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
def unechoed(stream: TextIO | None = None) -> Iterator[None]:
    """While the block runs, typed keys and Ctrl-C's ``^C`` are not echoed.

    rich ``Live`` redraws by moving the cursor up over the lines it drew last.
    An echoed ``^C`` after a full-width line wraps onto a new line, so the next
    frame lands one line lower and the old frame's top border stays behind.
    Only a foreground process touches the terminal: a background one would be
    stopped (SIGTTOU) for changing its modes.
    """
    stream = stream if stream is not None else sys.stdin
    if stream is None or not stream.isatty() or not _in_foreground(stream.fileno()):
        yield
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)  # the local modes
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _in_foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:  # not this process's controlling terminal: no job control applies
        return True


@contextmanager
def keypresses(stream: TextIO | None = None) -> Iterator[ReadKey]:
    """Yields ``read_key(timeout)``: a key pressed within ``timeout`` seconds, or None.

    The terminal goes into cbreak mode: keys arrive at once, Ctrl-C still interrupts.

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
