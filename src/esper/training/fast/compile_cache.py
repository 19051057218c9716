"""A warm first run with ``--compile``: the compiled kernels of one run, kept
for the next process that compiles the same steps.

torch's own caches (inductor's FX graphs, AOTAutograd's) live under ``/tmp``,
per user and machine; a reboot, a container or a fresh CI runner starts them
cold, and a cold compile costs ~45 s on a 2-core CPU. torch packs what a
process compiled into one blob (``torch.compiler.save_cache_artifacts``) and
loads such a blob back into its caches (``load_cache_artifacts``), so the
next compile of the same graphs is a cache hit (dynamo still traces). On the
CPU that blob holds the graphs, not the C++ built from them (measured: the
second process still ran the compiler), so a compiled run also keeps
inductor's own cache folder under esper's (``keep_inductor_cache``).

esper keeps one blob per **torch version, task and shapes**:
``$ESPER_CACHE_DIR`` (else ``$XDG_CACHE_HOME/esper``, else ``~/.cache/esper``)
``/compile/torch-VERSION/TASK-DIGEST.bin``, the digest over every setting the
compiled graphs read (shapes, and the constants traced into them). The same
folder serves a checkout and an installed wheel. A blob is written to a
temporary file and renamed over the old one, so concurrent runs never read a
partial blob: the last writer wins, and every blob is whole. A blob another
torch wrote, or one that fails to load, is skipped: the run compiles cold.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

# Settings that change nothing the compiled steps trace: where and how long a
# run goes, what it reports. Every other setting is part of the key (a setting
# added later is keyed by default: a needless cold compile, never a wrong hit).
NOT_TRACED = frozenset({
    "n_batches", "start_batch", "seed", "learning_rate", "anneal_lr", "anneal_batches",
    "run_dir", "checkpoint_every", "keep_checkpoints", "overwrite", "eval_every",
    "eval_episodes", "stop_at", "video_every", "compile",
})  # fmt: skip


def cache_root() -> Path:
    """Where esper keeps what outlives a run (not the run's own files)."""
    if os.environ.get("ESPER_CACHE_DIR"):
        return Path(os.environ["ESPER_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "esper"


def inductor_cache_dir() -> Path:
    """Inductor's own cache inside esper's, per torch version."""
    return cache_root() / "inductor" / f"torch-{torch.__version__}"


def keep_inductor_cache() -> None:
    """Inductor's own cache in esper's (``inductor_cache_dir``), unless the user
    (or torch, once it has compiled in this process) chose one: on the CPU the
    blob does not carry the C++ kernels built from its graphs, this folder
    does. Inductor's writes there are atomic and locked (concurrent runs)."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(inductor_cache_dir()))


def blob_path(settings: dict[str, Any], world_size: int = 1) -> Path:
    """The blob of a run with ``settings`` (a ``PPOConfig.to_dict()``)."""
    traced = {k: v for k, v in sorted(settings.items()) if k not in NOT_TRACED}
    traced["world_size"] = world_size  # each rank's share of the envs is a shape
    digest = hashlib.sha256(json.dumps(traced, default=str).encode()).hexdigest()[:16]
    task = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(settings["task"]))
    return cache_root() / "compile" / f"torch-{torch.__version__}" / f"{task}-{digest}.bin"


def load(path: Path) -> bool:
    """Put ``path``'s kernels into torch's caches before the first compile;
    whether it did (no blob, or one that would not load: a cold compile)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return False
    try:
        return torch.compiler.load_cache_artifacts(blob) is not None
    except Exception as exc:  # a damaged blob costs a cold compile, not the run
        warnings.warn(f"compile cache {path} not loaded ({exc}); compiling cold", stacklevel=2)
        return False


def save(path: Path) -> bool:
    """Write what this process compiled to ``path``, atomically; whether it did.
    A folder that cannot be written costs the next run a cold compile only."""
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return False
    blob, _ = saved
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as part:
            part.write(blob)
        os.replace(part.name, path)
    except OSError as exc:
        warnings.warn(f"compile cache {path} not written ({exc})", stacklevel=2)
        return False
    return True


class CompileCache:
    """A compiled run's blob: loaded before its first batch, saved after it.
    An eager run's does nothing."""

    def __init__(self, path: Path | None, save_blob: bool = True) -> None:
        self.path, self.save_blob = path, save_blob and path is not None
        self.loaded = load(path) if path is not None else False
        self.saved = False
        self.swept = False

    @classmethod
    def for_run(cls, config: Any, world_size: int = 1, is_main: bool = True) -> CompileCache:
        """Every rank loads; one writes."""
        path = blob_path(config.to_dict(), world_size) if config.compile else None
        if path is not None:
            keep_inductor_cache()
        return cls(path, save_blob=is_main)

    def after_batch(self) -> None:
        """After the first batch every step has compiled: save them, once, and
        sweep the compiler's leftovers. Left to itself, the garbage collector's
        first full pass over them fell inside the second batch (0.5 s of a
        0.15 s batch with warm caches, seconds when cold): a warm-up cost that
        a steady batch must not carry."""
        if self.path is None or self.swept:
            return
        if self.save_blob:
            self.saved = save(self.path)
        gc.collect()
        self.swept = True
