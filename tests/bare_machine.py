"""Run pytest as on a bare GPU machine: only torch, numpy, pytest, typer and rich
(with what they require) importable from site-packages.

    python tests/bare_machine.py PYTEST_ARGS...

The device machines carry no gymnasium, matplotlib, tensorboard and so on, and
``pytest -m cuda tests`` must still collect there (a test module that needs one
skips itself). tests/test_device_check.py runs the collection so; without it a
module-level ``import gymnasium`` hid there until the GPU's first minutes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata as metadata
import os
import re
import sys

BASE = ("torch", "numpy", "pytest", "typer", "rich")


def requirements(names: tuple[str, ...]) -> set[str]:
    """``names`` and every distribution they require (extras left out)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = re.split(r"[ ;<>=!~\[(]", todo.pop())[0].lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return seen


def top_level_modules(dists: set[str]) -> set[str]:
    modules = set()
    for name in dists:
        for file in metadata.distribution(name).files or []:
            part = file.parts[0]
            if not part.endswith((".dist-info", ".data")) and part != "..":
                modules.add(part.removesuffix(".py").split(".")[0])
    return modules


class BareMachine(importlib.abc.MetaPathFinder):
    """Refuses a top-level module that site-packages holds but BASE does not need."""

    def __init__(self) -> None:
        self.allowed = top_level_modules(requirements(BASE)) | {"esper", "_pytest"}
        self.site = tuple(p for p in sys.path if "site-packages" in p)

    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if path is not None or top in self.allowed or top in sys.stdlib_module_names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(top)
        origin = (spec.origin or "") if spec else ""
        if spec and not origin and spec.submodule_search_locations:
            origin = next(iter(spec.submodule_search_locations), "")
        if self.site and origin.startswith(self.site):
            raise ModuleNotFoundError(f"No module named {name!r} (a bare machine)", name=name)
        return None


if __name__ == "__main__":
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # no plugin of a fuller machine
    sys.meta_path.insert(0, BareMachine())
    import pytest

    sys.exit(pytest.main(sys.argv[1:]))
