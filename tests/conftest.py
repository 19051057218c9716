"""Fixtures shared across the suite."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from esper.config.layers import build_config
from esper.runs.directory import RunDir
from esper.runtime.threads import usable_cpus
from esper.telemetry.hub import TelemetryHub
from esper.telemetry.jsonl import JsonlSink
from esper.training import run_vectorized_ppo
from esper.training.fast.compile_cache import inductor_cache_dir
from esper.training.interrupt import StopRequest
from esper.training.scoring import ReturnScore

sys.path.insert(0, str(Path(__file__).resolve().parent))  # budget.py, under importlib mode
from budget import pytest_runtest_call, pytest_runtest_setup  # noqa: F401 (its hooks)
from xdist_groups import name_the_groups


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker takes its share of the CPUs, not all of them:
    two workers of two threads each on two cores would slow every test down. The
    processes a test starts inherit the share (OMP_NUM_THREADS, unless a test or
    the caller chose), and inductor compiles in the process that asked: its
    default is a pool of compile workers, each importing torch (~13 CPU-seconds
    more per compiling process on 2 cores)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        share = max(1, int(usable_cpus()) // int(workers))
        torch.set_num_threads(share)
        os.environ.setdefault("OMP_NUM_THREADS", str(share))
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first: under pytest-xdist a worker that draws one last
    would leave the other idle for its whole length. (xdist sends the groups
    first, the largest first, then the other tests in this order.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    name_the_groups(config, items)


SOLVED_RECENT_RETURN = 490.0  # stop training once the newest finished episodes average this
SOLVED_WINDOW_EPISODES = 16  # ... over at least this many (one batch holds only 2-4)


@pytest.fixture(autouse=True, scope="session")
def compile_cache_of_the_suite(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
):
    """Compiled runs keep their kernels in the suite's own cache, never the user's
    (training/fast/compile_cache.py): pytest's cache folder (``.pytest_cache``,
    emptied by ``--cache-clear``), so a second ``uv run pytest`` finds the graphs
    the first compiled, as a second ``esper ppo --compile`` does. Inductor's
    cache goes there too, for the tests that compile in their own process.
    Without pytest's cache (``-p no:cacheprovider``) it is the session's
    temporary root. The workers of pytest-xdist share it (esper's blobs and
    inductor's cache are written whole and locked, for concurrent runs); hits
    are keyed by the traced graph and torch's version, so a changed graph
    compiles afresh."""
    cache = getattr(pytestconfig, "cache", None)
    if cache is not None:
        folder = Path(cache.mkdir("esper_cache"))
    else:
        root = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            root = root.parent  # pytest-N/popen-gwK: pytest-N is the session's
        folder = root / "esper_cache"
        folder.mkdir(exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setenv("ESPER_CACHE_DIR", str(folder))
    patch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache_dir()))  # the suite's, not a user's
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def registry_as_found():
    """Tasks a test registers (esper.register, module:Factory) leave with it: a
    later test in the same worker lists the built-in tasks, not its leftovers."""
    from esper.envs import registry

    registered = dict(registry._REGISTERED)
    yield
    registry._REGISTERED.clear()
    registry._REGISTERED.update(registered)


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    final_batch: int  # the newest checkpoint
    returns: list[float]  # each batch's mean return (batches where an episode finished)


@pytest.fixture(scope="session")
def solved_cartpole(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """CartPole trained once per session with its default settings until solved.

    Up to 50 batches on the CPU, seed 1, stopping early once the newest >= 16
    finished episodes average 490 (the trainer then checkpoints that batch). A
    single batch's 2-4 episodes were too weak a signal: stopped on one, the
    deterministic policy averaged 471 over 100 evaluation episodes. 50 is the
    README's `esper ppo --episodes 50`, which the defaults are tuned for: the
    learning rate decays over the run's length. Only the invocation's own keys
    are set here, so the fixture follows configs/cartpole.toml. The run
    dir holds the telemetry record as well as the checkpoints; tests may append to
    it (``esper eval``).
    """
    run_dir = tmp_path_factory.mktemp("solved_cartpole")
    config = build_config(
        overrides={"n_batches": 50, "device": "cpu", "seed": 1, "run_dir": str(run_dir)}
    )
    stop = StopRequest()
    score = ReturnScore(SOLVED_RECENT_RETURN, stop, window=SOLVED_WINDOW_EPISODES)
    hub = TelemetryHub()
    hub.subscribe(JsonlSink(RunDir(run_dir).telemetry_path))
    hub.subscribe(score)
    try:
        result = run_vectorized_ppo(config, hub, stop)
    finally:
        hub.close()
    assert result.status in ("completed", "interrupted"), result.reason
    return TrainedRun(
        run_dir=run_dir, final_batch=max(RunDir(run_dir).checkpoints()), returns=score.scores
    )
