"""Your own task, named three ways, works wherever a built-in does.

The task is the example package under ``examples/point_mass`` (a batched 2-D
point mass). Fresh processes (``esper eval``, a resume, ``load_policy``) must
find a task registered from Python in the training process, through what the
checkpoint recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.config.layers import build_config
from esper.envs import BatchedEnv, make, register
from esper.envs.registry import UnknownTaskError, describe_tasks, env_class

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "point_mass"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))

from point_mass.env import PointMass  # noqa: E402

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_custom_tasks")

SMALL = {"n_envs": 8, "horizon": 16, "n_minibatches": 2, "device": "cpu"}


def esper_cli(*args: str, pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-m", "esper", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]


def test_the_example_keeps_the_environment_contract() -> None:
    env = make("point_mass.env:PointMass", num_envs=5, seed=3)
    assert isinstance(env, BatchedEnv)
    obs = env.reset()
    assert obs.shape == (5, 6)
    towards_goal = obs[:, 4:] / obs[:, 4:].norm(dim=1, keepdim=True)
    total = torch.zeros(5)
    for _ in range(30):
        obs, reward, *_ = env.step(towards_goal)
        total += reward
        towards_goal = obs[:, 4:] / obs[:, 4:].norm(dim=1, keepdim=True).clamp_min(1e-6)
    assert (total > 0).all()  # heading for the goal pays


@pytest.fixture(scope="module")
def registered_run(tmp_path_factory) -> Path:
    """Two batches of a task registered from Python, in this process."""
    register("pm-registered", PointMass)
    run_dir = tmp_path_factory.mktemp("registered")
    outcome = esper.train("pm-registered", episodes=2, run_dir=str(run_dir), **SMALL)
    assert outcome.status == "completed"
    return run_dir


def test_a_fresh_process_evaluates_a_registered_task(registered_run, tmp_path) -> None:
    done = esper_cli(
        "eval", str(registered_run), "--episodes", "4", pythonpath=EXAMPLE, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    evaluated = [e for e in events(registered_run) if e["event_type"] == "EVALUATION_COMPLETED"]
    assert evaluated and evaluated[-1]["data"]["episodes"] == 4


def test_a_fresh_process_resumes_and_loads_a_registered_task(registered_run, tmp_path) -> None:
    done = esper_cli(
        "ppo",
        "--task",
        "pm-registered",
        "--run-dir",
        str(registered_run),
        "--start-episode",
        "2",
        "--episodes",
        "1",
        "--no-sanctum",
        pythonpath=EXAMPLE,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert events(registered_run)[-1]["batch"] == 3
    script = (
        "import esper, sys; p = esper.load_policy(sys.argv[1]); "
        "print(p.task, p.checkpoint_batch, tuple(p(p.model.actor[0].weight.new_zeros(6)).shape))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script, str(registered_run)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(EXAMPLE)},
        cwd=tmp_path,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["pm-registered", "3", "(2,)"]


def test_a_registered_task_plots(registered_run, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from esper.workflows.plot import plot_runs

    assert plot_runs([registered_run], tmp_path / "curves.png").is_file()


def test_an_installed_entry_point_names_a_task(tmp_path, monkeypatch) -> None:
    """A package installed with the example's own entry-point declaration
    (its dist-info written by hand, as an installer would) is found by name:
    listed by ``esper tasks`` (in this process, the site on its path) and
    trained by ``esper ppo`` in a fresh process."""
    site = tmp_path / "site"
    (site / "point_mass").mkdir(parents=True)
    for source in (EXAMPLE / "point_mass").glob("*.py"):
        (site / "point_mass" / source.name).write_text(source.read_text())
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    dist_info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    points = project["entry-points"]["esper.envs"]
    lines = "".join(f"{name} = {value}\n" for name, value in points.items())
    (dist_info / "entry_points.txt").write_text(f"[esper.envs]\n{lines}")

    from esper.envs import registry

    monkeypatch.syspath_prepend(str(site))  # importlib's caches invalidated with it
    registry._entry_points.cache_clear()
    try:
        listed = CliRunner().invoke(app, ["tasks"])
    finally:
        monkeypatch.undo()
        registry._entry_points.cache_clear()  # the next test finds none again
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "point-mass" in line)
    assert "Box(2" in row and "esper-point-mass" in row

    run_dir = tmp_path / "run"
    trained = esper_cli(
        "ppo",
        "--task",
        "point-mass",
        "--episodes",
        "1",
        "--envs",
        "8",
        "--max-epochs",
        "8",
        "--run-dir",
        str(run_dir),
        "--no-sanctum",
        pythonpath=site,
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    started = events(run_dir)[0]["data"]
    assert started["task"] == "point-mass"
    # the class's default_config applies under the flags
    assert started["config"]["learning_rate"] == PointMass.default_config["learning_rate"]
    assert started["config"]["n_envs"] == 8


def test_module_factory_names_a_task_with_its_defaults() -> None:
    config = build_config(overrides={"task": "point_mass.env:PointMass"})
    assert config.n_envs == PointMass.default_config["n_envs"]
    assert config.update_epochs == PointMass.default_config["update_epochs"]
    assert env_class("point_mass.env:PointMass").spec == PointMass.spec


def test_register_takes_defaults_and_a_plain_function() -> None:
    def factory(num_envs: int, device: str = "cpu", seed: int = 0) -> PointMass:
        return PointMass(num_envs, device=device, seed=seed)

    register("pm-function", factory, defaults={"learning_rate": 0.01})
    assert build_config(overrides={"task": "pm-function"}).learning_rate == 0.01
    row = next(r for r in describe_tasks() if r.name == "pm-function")
    assert (row.obs_dim, row.origin) == (6, "register()")
    with pytest.raises(ValueError, match="already registered"):
        register("pm-function", PointMass)
    with pytest.raises(ValueError, match="built-in"):
        register("cartpole", PointMass)


def test_bad_module_factory_is_one_line(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownTaskError, match="cannot import no_such_module"):
        env_class("no_such_module:Env")
    monkeypatch.chdir(tmp_path)  # the CLI in this process: a refusal needs no process
    done = CliRunner().invoke(app, ["ppo", "--task", "point_mass.env:Missing"])
    assert done.exit_code == 2
    assert done.output.strip().splitlines() == [
        "esper: error: --task: unknown task 'point_mass.env:Missing' "
        "(point_mass.env has no attribute Missing)"
    ]
    assert not (tmp_path / "runs").exists()


class DrawnPointMass(PointMass):
    """The point mass with the renderer hook docs/custom_env.md shows."""

    render_fps = 10

    def render(self, index: int = 0):
        import numpy as np

        x, y = self.state[index, :2].tolist()
        image = np.full((20, 20, 3), 255, dtype=np.uint8)
        image[int((1 - y) * 9.5), int((x + 1) * 9.5)] = (40, 40, 40)
        return image


def test_a_registered_task_that_renders_itself_is_recorded(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from esper.envs.video import check_recordable, record_video
    from esper.runtime.errors import ConfigError

    register("drawn-point-mass", DrawnPointMass)
    register("undrawn-point-mass", PointMass)
    with pytest.raises(ConfigError, match="undrawn-point-mass has no renderer"):
        check_recordable("undrawn-point-mass", "video")

    def still(obs, starts, action_mask):
        return torch.zeros(obs.shape[0], 2)

    frames = record_video("drawn-point-mass", still, tmp_path / "pm.mp4", seed=0)
    assert frames == PointMass.spec.max_episode_steps  # standing still never reaches the goal
    assert (tmp_path / "pm.mp4").stat().st_size > 0
