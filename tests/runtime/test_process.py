"""The allocator setting is the ``esper`` command's alone: a notebook's
``esper.train()`` leaves the process's allocator as it found it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import esper
from esper.runtime import process


@pytest.fixture
def recorded_thresholds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Forget any earlier application and record calls instead of calling mallopt."""
    calls: list[str] = []
    monkeypatch.setattr(process, "freed_memory_kept", None)
    monkeypatch.setattr(process, "_set_thresholds", lambda: calls.append("mallopt") or True)
    return calls


def test_applies_once_per_process(recorded_thresholds: list[str]) -> None:
    assert process.keep_freed_memory() is True
    assert process.keep_freed_memory() is True
    assert recorded_thresholds == ["mallopt"]


def test_glibc_accepts_every_threshold() -> None:
    if not (sys.platform.startswith("linux") and process.ctypes.util.find_library("c")):
        pytest.skip("no C library with mallopt here")
    assert process._set_thresholds() is True


def test_missing_c_library_is_a_quiet_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process.ctypes.util, "find_library", lambda name: None)
    assert process._set_thresholds() is False


def test_esper_train_leaves_the_allocator_alone(
    recorded_thresholds: list[str], tmp_path: Path
) -> None:
    outcome = esper.train(
        "cartpole", 1, n_envs=8, max_epochs=16, device="cpu", run_dir=str(tmp_path / "run")
    )
    assert outcome.status == "completed"
    assert recorded_thresholds == []
    assert process.freed_memory_kept is None


def test_the_esper_command_applies_it() -> None:
    code = (
        "import sys\n"
        "from esper import cli\n"
        "from esper.runtime import process\n"
        "sys.argv = ['esper', '--help']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('kept', process.freed_memory_kept)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = process.ctypes.util.find_library("c") is not None and sys.platform == "linux"
    assert done.stdout.splitlines()[-1] == f"kept {expected}"


def test_the_esper_command_s_first_run_freezes_what_is_loaded_before_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's import objects leave the collector's sweeps (the run's and the
    shutdown's) once, before the first run builds its state: what a run builds,
    compiled code included, stays collectable. A library call freezes nothing."""
    from esper.training import loop

    calls: list[str] = []
    monkeypatch.setattr(process.gc, "freeze", lambda: calls.append("freeze"))
    building = loop.build_state
    monkeypatch.setattr(
        loop, "build_state", lambda *a, **k: calls.append("build") or building(*a, **k)
    )

    def train(name: str) -> None:
        esper.train(
            "cartpole", 1, n_envs=8, max_epochs=16, device="cpu", run_dir=str(tmp_path / name)
        )

    monkeypatch.setattr(process, "_freeze_at_first_run", False)
    train("library")
    assert calls == ["build"]
    monkeypatch.setattr(process, "_freeze_at_first_run", True)  # as apply_process_settings sets it
    train("first")
    train("second")
    assert calls == ["build", "freeze", "build", "build"]
