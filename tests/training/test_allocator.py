"""The allocator tuning applies once and never breaks a process that lacks it."""

from __future__ import annotations

import sys

import pytest

from esper.training import allocator


def test_applies_once_and_reports_the_same_answer() -> None:
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first
    if sys.platform.startswith("linux") and allocator.ctypes.util.find_library("c"):
        assert first is True  # glibc accepts every threshold


def test_missing_c_library_is_a_quiet_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    assert allocator._set_thresholds() is False
