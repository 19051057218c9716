"""The README's Python API example runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_the_api_example_runs(tmp_path: Path, capsys) -> None:
    [example] = [block for block in python_blocks() if "esper.train(" in block]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # its run_dir is relative
    try:
        namespace: dict = {}
        exec(compile(example, str(README), "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert namespace["outcome"].status == "completed"
    assert namespace["actions"].shape == (5,)
    assert (tmp_path / "runs/api-demo/telemetry.jsonl").exists()
    assert "completed 3" in capsys.readouterr().out
