"""The run directory owns its layout; the sinks are only handed paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from esper.run_dir import RunDir


def test_run_dir_names_its_files_without_importing_a_sink() -> None:
    code = (
        "import sys, esper.run_dir; "
        "print(sorted(m for m in sys.modules if m.startswith('esper.telemetry')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    run = RunDir(Path("runs/x"))
    assert run.telemetry_path == Path("runs/x/telemetry.jsonl")
    assert run.tensorboard_dir == Path("runs/x/tensorboard")
