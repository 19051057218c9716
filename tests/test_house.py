"""What the house promises a newcomer: folders that are the map, short functions.

The package root holds the public entry points and packages, nothing else, and
no function in the training core grows past one screen.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "esper"
ROOT_MODULES = {"__init__.py", "__main__.py", "api.py"}
MAX_FUNCTION_LINES = 60


def test_the_package_root_holds_packages_and_the_entry_points() -> None:
    modules = {path.name for path in PACKAGE.glob("*.py")}
    assert modules == ROOT_MODULES, f"modules at the root: {sorted(modules - ROOT_MODULES)}"


def long_functions(folder: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(folder)}:{node.lineno} {node.name} ({lines})")
    return found


def test_every_training_function_fits_one_screen() -> None:
    too_long = long_functions(PACKAGE / "training")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n")
    assert long_functions(tmp_path) == ["long.py:1 f (61)"]
