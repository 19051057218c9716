"""A time budget for a test session, with no plugin to install (the device
check runs on a machine that has only pytest).

- ``ESPER_TEST_TIMEOUT_S``: a test running longer fails there (SIGALRM raises
  ``TestTimeout`` inside it), with its traceback, and the session goes on.
- ``ESPER_TEST_DEADLINE``: a Unix time; tests that would start after it are
  skipped, so the session ends by itself and prints every failure's traceback
  (an outer ``timeout`` killing pytest would lose them all).

tests/conftest.py loads these hooks; ``python -m pytest -p budget`` loads them
elsewhere (with this directory on ``sys.path``).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest


class TestTimeout(Exception):
    """A test ran past ``ESPER_TEST_TIMEOUT_S``."""

    __test__ = False


def _seconds(name: str) -> float:
    try:
        return float(os.environ.get(name, "") or 0)
    except ValueError:
        return 0.0


def pytest_runtest_setup(item: pytest.Item) -> None:
    deadline = _seconds("ESPER_TEST_DEADLINE")
    if deadline and time.time() > deadline:
        pytest.skip("the session's time budget (ESPER_TEST_DEADLINE) is spent")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    limit = _seconds("ESPER_TEST_TIMEOUT_S")
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if limit <= 0 or not usable:
        yield
        return

    def expire(signum, frame):
        raise TestTimeout(f"ran past ESPER_TEST_TIMEOUT_S={limit:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
