"""``esper --version`` and ``esper.__version__`` say the installed package's version."""

from __future__ import annotations

import tomllib
from pathlib import Path

from typer.testing import CliRunner

import esper
from esper.cli import app

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_version_is_the_package_s_in_python_and_on_the_command_line() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert esper.__version__ == declared
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"esper {declared}"
