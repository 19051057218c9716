"""How many torch threads a training process takes: its share of the CPUs it may use.

The CPUs a process may use are its affinity (``os.sched_getaffinity``) capped
by its cgroup's CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``, rounded down, at least 1). Several trainers on those
CPUs share them: each ``esper`` trainer writes a small file (its pid, its
start time, its CPUs) into a per-user registry directory while it runs, and
takes ``cpus // live trainers`` threads (at least 1), counting only live
trainers whose CPUs overlap its own. Between batches, at most once a second,
it re-reads the registry, so runs that start or end later rebalance the others,
and also counts the CPU time other processes took on its CPUs since the last
look (``/proc/stat`` minus its own): it takes no more threads than the CPUs left
free, rounded, at least 1. A torch thread that is descheduled stalls every
parallel op of its process, so on a busy machine 2 threads ran a batch 4-20x
slower than 1, and four 2-thread runs on 2 cores took 3.7x as long as in
sequence (docs/performance.md, "Several runs on one machine"). A compiled run
(``--compile``) takes its share once, at its start: its graphs are guarded on
torch's thread count, and a new count would compile every one of them again.

An explicit choice wins: with ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``)
set, torch's count is left as torch set it from that variable; the trainer
still registers, as one share, so the others leave it room.

Only the ``esper`` command turns this on (``enable()``, from
``esper.runtime.process.apply_process_settings``), because torch's thread count is
process-wide: a notebook's ``esper.train()`` reports the count it runs with
and leaves it alone, unless the caller called ``enable()`` first.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

EXPLICIT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
RECHECK_SECONDS = 1.0  # the least time between two reads of the registry

_enabled = False
_share: CpuShare | None = None
_held = False  # the current run keeps the count it claimed (a compiled run)


def enable() -> None:
    """Let this process's training runs choose torch's thread count (the CLI's call)."""
    global _enabled
    _enabled = True


def claim(hold: bool = False) -> int:
    """At the start of a run: join the registry and set torch's thread count when
    enabled (unless chosen explicitly); return the count torch now uses. With
    ``hold`` (a compiled run) ``rebalance`` leaves that count as it is."""
    global _share, _held
    import torch

    _held = hold

    if _enabled and _share is None:
        _share = CpuShare(cpus=affinity(), limit=usable_cpus(), registry=Registry(registry_dir()))
        _share.registry.join(_share.cpus)
        atexit.register(_share.registry.leave)
        _share.explicit = explicit_threads(os.environ) is not None
        _share.apply(force=True)
    return torch.get_num_threads()


def rebalance() -> None:
    """Between batches: take this process's current share again, if it changed.
    Reads the registry at most once per ``RECHECK_SECONDS``; a no-op unless claimed,
    and for a run that claimed with ``hold``."""
    if _share is not None and not _held:
        _share.apply()


@dataclass
class CpuShare:
    """This process's place among the trainers sharing ``cpus``."""

    cpus: frozenset[int]
    limit: int  # usable CPUs: the affinity capped by the cgroup quota
    registry: Registry
    explicit: bool = False
    _checked: float = field(default=float("-inf"), init=False)
    _busy: CpuClock | None = field(default=None, init=False)

    def threads(self, others_busy: float = 0.0) -> int:
        """``limit // live trainers``, no more than the CPUs others leave free
        (``others_busy``: CPUs' worth of their work), at least 1."""
        share = self.limit // max(1, self.registry.live(self.cpus))
        free = int(self.limit - others_busy + 0.5)
        return max(1, min(share, free))

    def apply(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.explicit or (not force and now - self._checked < RECHECK_SECONDS):
            return
        self._checked = now
        import torch

        busy = CpuClock.read(self.cpus)
        others = 0.0 if self._busy is None or busy is None else busy.others_since(self._busy)
        self._busy = busy
        wanted = self.threads(others)
        if wanted != torch.get_num_threads():
            torch.set_num_threads(wanted)


@dataclass(frozen=True)
class CpuClock:
    """Busy CPU time on some CPUs (``/proc/stat``) and this process's own, at a moment."""

    busy: float  # seconds the CPUs spent on anything but idle and iowait
    own: float  # this process's CPU seconds, all threads
    wall: float

    @classmethod
    def read(cls, cpus: frozenset[int], stat: Path = Path("/proc/stat")) -> CpuClock | None:
        """None where ``/proc/stat`` cannot be read (not Linux)."""
        try:
            lines = stat.read_text().splitlines()
        except OSError:
            return None
        jiffies = 0
        for line in lines:
            name, *counts = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                # user nice system idle iowait irq softirq steal
                values = [int(c) for c in counts[:8]]
                jiffies += sum(values) - values[3] - values[4]
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        return cls(jiffies / tick, time.process_time(), time.monotonic())

    def others_since(self, earlier: CpuClock) -> float:
        """CPUs' worth of work other processes did on these CPUs since ``earlier``."""
        wall = self.wall - earlier.wall
        if wall <= 0:
            return 0.0
        return max(0.0, (self.busy - earlier.busy) - (self.own - earlier.own)) / wall


def explicit_threads(environ: Mapping[str, str]) -> int | None:
    """The thread count the user chose through the environment, if any."""
    for name in EXPLICIT_VARIABLES:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return None


def affinity() -> frozenset[int]:
    """The CPUs this process may run on (all of ``os.cpu_count()`` where unknown)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def usable_cpus(
    cpus: Iterable[int] | None = None,
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
) -> int:
    """How many CPUs' worth of time this process may use: its affinity, capped by
    the tightest cgroup CPU quota on its cgroup's path."""
    count = len(frozenset(affinity() if cpus is None else cpus)) or 1
    quota = cgroup_quota(cgroup_root, proc_cgroup)
    return count if quota is None else max(1, min(count, int(quota)))


def cgroup_quota(root: Path, proc_cgroup: Path) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup path, v2 or v1;
    None when there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2, mounted at root or at root/unified (hybrid)
            for mount in (root, root / "unified"):
                quotas += _along(mount, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            for mount in {root / controllers, root / "cpu"}:
                quotas += _along(mount, path, _v1_quota)
    return min(quotas, default=None)


def _along(mount: Path, path: str, read) -> list[float]:
    """The quotas ``read`` finds in the cgroup at ``path`` and each of its parents."""
    found = []
    parts = [p for p in path.split("/") if p]
    for depth in range(len(parts), -1, -1):
        quota = read(mount.joinpath(*parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(directory: Path) -> float | None:
    try:
        limit, period = (directory / "cpu.max").read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(directory: Path) -> float | None:
    try:
        limit = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if limit <= 0 or period <= 0 else limit / period


def registry_dir() -> Path:
    """Per user: ``$XDG_RUNTIME_DIR/esper-trainers``, else ``$TMPDIR/esper-trainers-UID``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "esper-trainers"
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    return Path(tempfile.gettempdir()) / f"esper-trainers-{uid}"


@dataclass
class Registry:
    """The running trainers: one file per process, named by its pid, holding its
    start time and CPUs. An entry whose process is gone (or whose pid was reused,
    by a different start time) is stale: ignored and removed."""

    directory: Path
    pid: int = field(default_factory=os.getpid)

    def join(self, cpus: frozenset[int]) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            entry = self.directory / str(self.pid)
            scratch = entry.with_suffix(".tmp")
            scratch.write_text(f"{_start_time(self.pid)}\n{','.join(map(str, sorted(cpus)))}\n")
            scratch.replace(entry)
        except OSError:  # an unwritable temp dir: this process just counts itself alone
            pass

    def leave(self) -> None:
        with contextlib.suppress(OSError):
            (self.directory / str(self.pid)).unlink()

    def live(self, cpus: frozenset[int]) -> int:
        """Live trainers (this one included) whose CPUs overlap ``cpus``."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 1
        count = 0
        for name in names:
            if not name.isdigit():
                continue
            entry = self.directory / name
            try:
                started, listed = entry.read_text().split("\n")[:2]
            except (OSError, ValueError):
                continue
            pid = int(name)
            if not alive(pid, started):
                with contextlib.suppress(OSError):
                    entry.unlink()
                continue
            theirs = {int(c) for c in listed.split(",") if c}
            count += not theirs or bool(theirs & cpus)
        return max(count, 1)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or ``""``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int, started: str = "") -> bool:
    """Whether process ``pid`` runs (someone else's counts); with ``started`` (its
    start time as recorded), only if the pid was not reused since."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process holds the pid: alive, maybe reused
    except OSError:
        return False
    return not started or _start_time(pid) in ("", started)
