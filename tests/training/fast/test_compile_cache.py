"""The compile cache: one blob per torch version, task and shapes, written whole."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest
import torch

from esper.config.schema import PPOConfig
from esper.training.fast import compile_cache
from esper.training.fast.compile_cache import CompileCache, blob_path


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESPER_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_the_blob_is_keyed_by_torch_version_task_and_shapes(cache_dir: Path) -> None:
    default = blob_path(PPOConfig().to_dict())
    assert default.parent == cache_dir / "compile" / f"torch-{torch.__version__}"
    assert default.name.startswith("cartpole-")
    assert blob_path(PPOConfig(n_envs=256).to_dict()) != default  # a shape
    assert blob_path(PPOConfig(task="acrobot").to_dict()) != default
    assert blob_path(PPOConfig().to_dict(), world_size=2) != default  # each rank's share
    assert blob_path(PPOConfig(clip_coef=0.1).to_dict()) != default  # a traced constant
    # where a run goes and what it reports are not: the same kernels serve both
    assert blob_path(PPOConfig(seed=9, run_dir="elsewhere", n_batches=7).to_dict()) == default


def test_an_eager_run_neither_loads_nor_saves(cache_dir: Path) -> None:
    cache = CompileCache.for_run(PPOConfig(compile=False))
    cache.after_batch()
    assert not cache.loaded and not cache.saved and not any(cache_dir.iterdir())


def test_a_saved_blob_is_whole_under_concurrent_writers(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers race to one path: every read sees one writer's whole blob, and no
    temporary file is left behind."""
    blobs = [bytes([i]) * 200_000 for i in range(8)]
    calls = iter(blobs)
    lock = threading.Lock()

    def artefacts():
        with lock:
            return next(calls), None

    monkeypatch.setattr(torch.compiler, "save_cache_artifacts", artefacts)
    path = blob_path(PPOConfig(compile=True).to_dict())
    threads = [threading.Thread(target=compile_cache.save, args=(path,)) for _ in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert path.read_bytes() in blobs
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_damaged_blob_means_a_cold_compile_not_a_failed_run(cache_dir: Path) -> None:
    path = blob_path(PPOConfig(compile=True).to_dict())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a cache")
    assert not CompileCache.for_run(PPOConfig(compile=True)).loaded  # torch logs why


def test_a_compiled_run_keeps_inductor_s_cache_unless_one_was_chosen(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    CompileCache.for_run(PPOConfig(compile=False))
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ  # eager: untouched
    CompileCache.for_run(PPOConfig(compile=True))
    kept = cache_dir / "inductor" / f"torch-{torch.__version__}"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(kept)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/chosen")
    CompileCache.for_run(PPOConfig(compile=True))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/somewhere/chosen"


def test_a_compiled_run_sweeps_the_compiler_s_leftovers_once_after_its_first_batch(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector's first full pass over what compiling left behind belongs to
    the warm-up batch, not to the second, steady one; an eager run is untouched."""
    sweeps: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *args: sweeps.append(1) or 0)
    eager = CompileCache.for_run(PPOConfig(compile=False))
    eager.after_batch()
    assert sweeps == []
    compiled = CompileCache.for_run(PPOConfig(compile=True))
    for _ in range(3):
        compiled.after_batch()
    assert sweeps == [1]


def test_a_compiled_run_names_inductor_s_folder_before_its_state_is_built(
    cache_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Building the state fixes inductor's cache folder (torch writes its default
    into the environment on first use), so esper's must be named before it: else
    every compiled run's kernels went to /tmp and a second run started cold."""
    from esper.config.layers import build_config
    from esper.telemetry.hub import TelemetryHub
    from esper.training import loop

    class Built(Exception):
        pass

    seen: list[str | None] = []

    def build_state(*args, **kwargs):
        seen.append(os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
        raise Built

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(loop, "build_state", build_state)
    config = build_config(
        overrides={"compile": True, "device": "cpu", "n_envs": 8, "run_dir": str(tmp_path / "run")}
    )
    with pytest.raises(Built):
        loop.run_vectorized_ppo(config, TelemetryHub())
    assert seen == [str(compile_cache.inductor_cache_dir())]
