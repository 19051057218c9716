"""esper seeds: one config over many seeds in parallel processes, one table, a parent
dir that esper plot reads as one experiment; every child has a deadline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app
from esper.runs.curves import expand_run_dirs, read_curves
from esper.runs.seed_groups import group_runs
from esper.workflows.sweep import cpu_slices, parse_seeds

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_sweep")

TINY = ["--set", "n_envs=4", "--set", "horizon=8", "--set", "n_minibatches=1", "--device", "cpu"]


def invoke(*args: str):
    return CliRunner().invoke(app, ["seeds", *TINY, *args])


def test_seeds_and_cpu_slices() -> None:
    assert parse_seeds("1-3,7,2") == [1, 2, 3, 7]
    assert cpu_slices([0, 1, 2, 3], 2) == [frozenset({0, 1}), frozenset({2, 3})]
    assert cpu_slices([0, 1], 3) == [frozenset({0}), frozenset({1}), frozenset({0})]


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seeds 1 and 2, two batches each, two at a time (each seed a process of its own)."""
    parent = tmp_path_factory.mktemp("two_seeds") / "sweep"
    result = invoke("--seeds", "1-2", "--jobs", "2", "--episodes", "2", "--dir", str(parent))
    assert result.exit_code == 0, result.output
    return parent


def test_a_sweep_writes_its_table_and_plots_as_one_experiment(two_seeds: Path) -> None:
    parent = two_seeds
    table = (parent / "seeds.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| seed | last-5 mean | best batch mean (batch) |")
    assert [row.split(" | ")[0] for row in rows[2:]] == ["| 1", "| 2", "| mean ± std"]
    assert "± " in rows[-1] and "2/2 completed" in rows[-1]
    record = json.loads((parent / "seeds.json").read_text())
    assert [s["seed"] for s in record["seeds"]] == [1, 2]
    assert all(s["env_steps"] == 64 and s["status"] == "completed" for s in record["seeds"])
    # Each seed is a whole run with its own seed; the parent plots as one group.
    runs = [read_curves(path) for path in expand_run_dirs([parent])]
    assert sorted(run.seed for run in runs) == [1, 2]
    (group,) = group_runs(runs, None)
    assert len(group.runs) == 2

    # The summary row writes each column as its rows do: 64 ± 0, not 64.0 ± 0.0.
    assert rows[-1].split(" | ")[4] == "64 ± 0"

    again = invoke("--seeds", "1-2", "--episodes", "2", "--dir", str(parent))
    assert again.exit_code == 2
    assert "give --overwrite to replace it" in again.output
    assert len(again.output.strip().splitlines()) == 1
    other = invoke("--seeds", "3", "--episodes", "3", "--dir", str(parent))
    assert other.exit_code == 2 and "holds a sweep with episodes 2, not 3" in other.output


def test_new_seeds_join_an_earlier_sweep_s_table(two_seeds: Path, tmp_path: Path) -> None:
    """Seed 3 beside 1 and 2 (a copy of the fixture's sweep), without --overwrite:
    the table covers all three."""
    parent = tmp_path / "sweep"
    shutil.copytree(two_seeds, parent)
    more = invoke("--seeds", "3", "--episodes", "2", "--dir", str(parent))
    assert more.exit_code == 0, more.output
    record = json.loads((parent / "seeds.json").read_text())
    assert [s["seed"] for s in record["seeds"]] == [1, 2, 3]
    table = (parent / "seeds.md").read_text()
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows[2:] == ["| 1", "| 2", "| 3", "| mean ± std"] and "3/3 completed" in table
    assert table.startswith("Seeds 1, 2, 3;")


def test_a_seed_past_its_deadline_is_stopped_and_reported(tmp_path: Path) -> None:
    parent = tmp_path / "slow"
    result = invoke(
        "--seeds", "1", "--episodes", "1000000", "--dir", str(parent), "--timeout", "0.01"
    )
    assert result.exit_code == 1
    (seed,) = json.loads((parent / "seeds.json").read_text())["seeds"]
    assert seed["status"].startswith("timed out")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "5-1"], "--seeds: expects seeds like 1-5 or 1,3,7 (got '5-1')"),
        (["--jobs", "0"], "--jobs: must be >= 1 (got 0)"),
        (["--set", "lr=1"], "--set: unknown key 'lr'; did you mean learning_rate?"),
        (["--set", "n_envs=0"], "--set n_envs: must be >= 1 (got 0)"),  # not --envs
    ],
)
def test_bad_input_is_one_line_before_any_run(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke("--dir", str(tmp_path / "s"), *args)
    assert result.exit_code == 2
    assert result.output.strip() == f"esper: error: {message}"
    assert not (tmp_path / "s").exists()
