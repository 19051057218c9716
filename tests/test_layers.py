"""esper's modules form layers that never look up, and no import circles.

Every import of every module under src/esper is read with ``ast`` (imports
inside functions too), resolved to the esper module it names, and checked:
a module imports only from its own layer or lower ones, and no chain of
imports leads back to where it started. Imports under ``if TYPE_CHECKING:``
never run, so they may close a circle, but they must not look up either.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "esper"

# The one list of layers, lowest first. A module may import its own layer and
# those before it. A module matches a layer's pattern (fnmatch); the longest
# matching pattern decides, so a module can be placed apart from its package.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # What every layer may use: user errors, the device, host-sync rules,
    # process settings, torch's threads, torchrun's environment, optional extras.
    ("runtime", ("esper.runtime", "esper.runtime.*")),
    ("telemetry", ("esper.telemetry", "esper.telemetry.*")),
    ("envs", ("esper.envs", "esper.envs.*")),
    # What a run is, and where it lives on disk.
    (
        "config",
        (
            "esper.config",
            "esper.config.schema",
            "esper.config.text",
            "esper.runs",
            "esper.runs.directory",
            "esper.runs.lock",
        ),
    ),
    # The task's packaged defaults layered under a config file: knows envs and config.
    ("task defaults", ("esper.config.layers",)),
    ("training", ("esper.training", "esper.training.*")),
    # What reads a run: the dashboard, curves and plots, evaluation, loading a
    # policy, and the docs generated from the metrics table and the snapshot.
    (
        "readers",
        (
            "esper.sanctum",
            "esper.sanctum.*",
            "esper.runs.curves",
            "esper.runs.seed_groups",
            "esper.workflows",
            "esper.workflows.plot",
            "esper.workflows.evaluate",
            "esper.workflows.scripted",
            "esper.workflows.checkpoint_choice",
            "esper.workflows.inference",
            "esper.workflows.export",
            "esper.workflows.telemetry_docs",
        ),
    ),
    ("api", ("esper.config.run", "esper.runs.sinks", "esper.api")),
    # Workflows over many runs: seed sweeps (processes of esper ppo) and tuning.
    (
        "many runs",
        (
            "esper.workflows.sweep",
            "esper.workflows.sweep_tables",
            "esper.workflows.tune",
            "esper.workflows.tune_space",
        ),
    ),
    ("cli", ("esper.cli", "esper.cli.*", "esper.__main__", "esper")),
)


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``importer`` (file:line) uses ``imported``."""

    importer: str
    imported: str
    where: str  # path:line, for the message
    type_only: bool  # under ``if TYPE_CHECKING:``: named in the message


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The deepest module of ``modules`` that ``name`` lies in (``a.b.func`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(module: str, path: Path, modules: dict[str, Path], root: Path) -> list[Import]:
    """Each esper module that ``module`` (at ``path`` under ``root``) imports,
    wherever the import statement is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    type_only_lines = {
        node.lineno
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block.test)
        for statement in block.body
        for node in ast.walk(statement)
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..envs import y
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import name``: the submodule ``pkg.name`` when there is one
            names = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules)
            if target is None or target == module:
                continue
            where = f"{path.relative_to(root.parent)}:{node.lineno}"
            found.append(Import(module, target, where, node.lineno in type_only_lines))
    return found


def all_imports(package: Path = PACKAGE) -> list[Import]:
    modules = module_files(package)
    return [
        edge for name, path in modules.items() for edge in imports_of(name, path, modules, package)
    ]


def layer_of(module: str) -> int | None:
    """Index in ``LAYERS`` of the longest pattern ``module`` matches; None if none does."""
    matches = [
        (len(pattern), index)
        for index, (_, patterns) in enumerate(LAYERS)
        for pattern in patterns
        if fnmatchcase(module, pattern)
    ]
    return max(matches)[1] if matches else None


def upward_imports(edges: list[Import]) -> list[str]:
    """One line per import from a lower layer into a higher one."""
    problems = []
    for edge in edges:
        low, high = layer_of(edge.importer), layer_of(edge.imported)
        if low is not None and high is not None and high > low:
            problems.append(
                f"{edge.where}: {edge.importer} (layer '{LAYERS[low][0]}') imports "
                f"{edge.imported} (layer '{LAYERS[high][0]}', higher)"
            )
    return problems


def import_cycles(edges: list[Import]) -> list[str]:
    """One line per circle of imports (``a -> b -> a``), with each import's place:
    the shortest circle through each module that lies on one."""
    graph: dict[str, dict[str, Import]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)
    found: dict[tuple[str, ...], str] = {}
    for component in _strongly_connected(graph):
        for start in sorted(component):
            path = _path_back(graph, start, component)
            turn = path.index(min(path[:-1]))
            key = tuple(path[turn:-1] + path[:turn])
            if key in found:
                continue
            steps = [graph[a][b] for a, b in itertools.pairwise(path)]
            places = "; ".join(
                step.where + (" (type only)" if step.type_only else "") for step in steps
            )
            found[key] = f"{' -> '.join([*key, key[0]])}  ({places})"
    return list(found.values())


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def _path_back(graph: dict[str, dict[str, Import]], start: str, within: set[str]) -> list[str]:
    """The shortest import chain from ``start`` back to itself inside ``within``."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, {})):
                if child not in within:
                    continue
                if child == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return [start, *reversed(chain[:-1]), start] if node != start else [start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def test_every_module_has_a_layer() -> None:
    missing = [name for name in module_files() if layer_of(name) is None]
    assert not missing, f"modules in no layer (add them to LAYERS): {', '.join(missing)}"


def test_no_import_looks_up_a_layer() -> None:
    problems = upward_imports(all_imports())
    assert not problems, "imports from a lower layer into a higher one:\n" + "\n".join(problems)


def test_no_import_circle() -> None:
    cycles = import_cycles(all_imports())
    assert not cycles, "import circles:\n" + "\n".join(cycles)


@pytest.fixture
def toy_package(tmp_path: Path) -> Path:
    """A package ``esper`` of three modules: config imports envs, envs imports config."""
    root = tmp_path / "esper"
    (root / "envs").mkdir(parents=True)
    (root / "config").mkdir()
    (root / "__init__.py").write_text("")
    (root / "config" / "__init__.py").write_text("")
    (root / "envs" / "__init__.py").write_text("from .registry import make\n")
    (root / "envs" / "registry.py").write_text("def f():\n    from esper.config.schema import X\n")
    (root / "config" / "schema.py").write_text("from esper.envs import make\nX = 1\n")
    return root


def test_the_checks_name_the_offending_imports(toy_package: Path) -> None:
    edges = all_imports(toy_package)
    cycles = import_cycles(edges)
    assert len(cycles) == 1
    assert cycles[0].startswith(
        "esper.config.schema -> esper.envs -> esper.envs.registry -> esper.config.schema"
    )
    upward = upward_imports(edges)
    assert upward == [
        "esper/envs/registry.py:2: esper.envs.registry (layer 'envs') imports "
        "esper.config.schema (layer 'config', higher)"
    ]
