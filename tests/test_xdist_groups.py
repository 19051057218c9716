"""The suite's xdist_group marks hold: a group's tests run on one worker, so its
module fixtures are built once (tests/xdist_groups.py; without it pytest 9.2 and
pytest-xdist 3.8 spread every group over the workers, and no test failed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

HERE = Path(__file__).resolve().parent

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("{group}")


@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    with open("workers_{group}.txt", "a") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
"""

LOOSE = """
import pytest


@pytest.mark.parametrize("i", range(6))
def test_loose(i):
    pass
"""


def test_a_group_s_tests_run_on_one_worker(tmp_path: Path) -> None:
    for group in ("one", "two"):
        (tmp_path / f"test_{group}.py").write_text(GROUPED.format(group=group))
    (tmp_path / "test_loose.py").write_text(LOOSE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "xdist_groups", "-p", "no:cacheprovider",
         "-n", "2", "--dist", "loadgroup", "-q", "-o", "addopts=", "."],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for group in ("one", "two"):
        workers = (tmp_path / f"workers_{group}.txt").read_text().split()
        assert len(workers) == 6 and len(set(workers)) == 1, (group, workers)
