"""The built wheel behaves like the repository: task configs ship inside it.

The wheel is built from this checkout and installed into a fresh virtual
environment, then ``esper ppo`` runs from an unrelated folder, where only the
installed package can supply CartPole's defaults. The wheel goes in without its
dependencies (offline, from uv's cache); they come from this test's own
environment through a path file, because torch cannot be resolved offline. That
path file adds the folder only, so the checkout's editable install is not seen.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_packaging")

REPO = Path(__file__).resolve().parents[1]
PACKAGED = REPO / "configs"

pytestmark = pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv to build the wheel")


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the fresh venv's bin folder) with the wheel installed."""
    root = tmp_path_factory.mktemp("wheel")
    build = ["uv", "build", "--wheel", "--out-dir", str(root / "dist"), str(REPO)]
    try:
        _run([*build, "--offline"])
    except AssertionError:  # build backend not cached yet: fetch it once
        _run(build)
    [wheel] = (root / "dist").glob("*.whl")
    venv = root / "venv"
    _run(["uv", "venv", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    _run(["uv", "pip", "install", "--offline", "--no-deps", "--python", str(python), str(wheel)])
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    deps = sysconfig.get_paths()["purelib"]
    (Path(site.stdout.strip()) / "_test_dependencies.pth").write_text(deps + "\n")
    return wheel, venv / "bin"


def test_the_wheel_holds_every_task_config(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in PACKAGED.glob("*.toml"):
        assert f"esper/configs/{config.name}" in names


def test_installed_esper_trains_with_the_packaged_cartpole_config(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bin_dir = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UV", "VIRTUAL_ENV")}
    where = _run(
        [str(bin_dir / "python"), "-c", "import esper; print(esper.__file__)"],
        cwd=elsewhere,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(bin_dir.parent)  # not the checkout
    _run(
        [str(bin_dir / "esper"), "ppo", "--episodes", "1", "--envs", "8", "--device", "cpu"],
        cwd=elsewhere,
        env={**env, "OMP_NUM_THREADS": "1"},
    )
    lines = (elsewhere / "runs" / "cartpole" / "telemetry.jsonl").read_text().splitlines()
    started = next(e for e in map(json.loads, lines) if e["event_type"] == "TRAINING_STARTED")
    config = started["data"]["config"]
    expected = tomllib.loads((PACKAGED / "cartpole.toml").read_text())
    assert expected, "cartpole.toml sets nothing: the test would prove nothing"
    for key, value in expected.items():
        assert key == "n_envs" or config[key] == value, key
    assert config["n_envs"] == 8  # the flag still wins over the task's file


def test_the_installed_wheel_reports_the_repository_s_version(
    installed: tuple[Path, Path],
) -> None:
    _, bin_dir = installed
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UV", "VIRTUAL_ENV")}
    said = _run([str(bin_dir / "esper"), "--version"], env=env)
    assert said.stdout.strip() == f"esper {declared}"
