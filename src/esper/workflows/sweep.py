"""``esper seeds``: one config trained on many seeds, in parallel processes, summarised
in one table.

A trainer earns trust when its result holds on any seed. Each seed is a whole
``esper ppo`` run (the same command line, so the same layers: task defaults,
``--config``, ``--set``) in its own process and its own run dir,
``PARENT/seed-S``; ``esper plot PARENT`` draws them as one line with a band.
``jobs`` seeds run at once, each pinned to its own slice of the CPUs this
process may use and given that many threads, so
the sweep never oversubscribes the machine (``OMP_NUM_THREADS`` is its share
unless the caller set it). Every child has a deadline: past
``timeout`` seconds it is asked to stop (SIGTERM: it checkpoints), then killed;
a child that dies is reported as failed, and the others go on.

The table (``PARENT/seeds.md`` and ``seeds.json``) has per seed the mean of the
last 5 batch means ("last-5"), the best batch mean and its batch, the final
batch mean, env steps, wall and CPU seconds; then the mean ± std over the seeds.
A *batch mean* is the mean return of the episodes that finished in that batch.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from esper.runs.curves import read_curves
from esper.runs.directory import RunDir
from esper.runtime.errors import ConfigError
from esper.runtime.threads import affinity

LAST = 5  # batches averaged for the "last-5" column
TABLE_FILES = ("seeds.md", "seeds.json")
STOP_GRACE_SECONDS = 30.0  # after SIGTERM, before SIGKILL
POLL_SECONDS = 0.2


@dataclass
class SeedRun:
    """One seed's run and what its telemetry says."""

    seed: int
    run_dir: str
    status: str = "not started"  # completed, interrupted, failed (exit N / signal), timed out
    exit_code: int | None = None
    batch_means: list[float | None] = field(default_factory=list)
    env_steps: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0  # the child's user + system time: steadier on a busy machine

    @property
    def last5(self) -> float | None:
        tail = [m for m in self.batch_means[-LAST:] if m is not None]
        return statistics.fmean(tail) if tail else None

    @property
    def best(self) -> tuple[float, int] | None:
        """The best batch mean and its batch (1-based)."""
        scored = [(m, b) for b, m in enumerate(self.batch_means, start=1) if m is not None]
        return max(scored, key=lambda pair: pair[0]) if scored else None

    @property
    def final(self) -> float | None:
        return self.batch_means[-1] if self.batch_means else None

    def first_reaching(self, target: float) -> int | None:
        return next(
            (b for b, m in enumerate(self.batch_means, 1) if m is not None and m >= target),
            None,
        )


@dataclass
class Sweep:
    """What to run: the ``esper ppo`` arguments every seed shares, and the seeds."""

    seeds: list[int]
    parent: Path
    task: str | None = None
    episodes: int | None = None
    config_file: Path | None = None
    settings: list[str] = field(default_factory=list)  # KEY=VALUE, as --set takes them
    device: str | None = None
    jobs: int = 1
    timeout: float = 6 * 3600.0
    overwrite: bool = False

    def seed_dir(self, seed: int) -> Path:
        return self.parent / f"seed-{seed}"

    def command(self, seed: int) -> list[str]:
        """``esper ppo`` for one seed: every setting as ``--set``, the seed's last."""
        words = [sys.executable, "-m", "esper", "ppo", "--no-sanctum"]
        if self.config_file is not None:
            words += ["--config", str(self.config_file)]
        chosen = {"task": self.task, "n_batches": self.episodes, "device": self.device}
        pairs = [*self.settings, *(f"{k}={v}" for k, v in chosen.items() if v is not None)]
        pairs += [f"seed={seed}", f"run_dir={self.seed_dir(seed)}"]
        if self.overwrite:
            pairs.append("overwrite=true")
        return words + [word for pair in pairs for word in ("--set", pair)]


def parse_seeds(text: str) -> list[int]:
    """``1-5``, ``1,3,7`` or a mix (``1-5,9``); each seed once, in order."""
    seeds: list[int] = []
    try:
        for part in text.replace(" ", "").split(","):
            first, dash, last = part.partition("-")
            low, high = int(first), int(last) if dash else int(first)
            if high < low:
                raise ValueError
            seeds += [s for s in range(low, high + 1) if s not in seeds]
    except ValueError:
        raise ConfigError("seeds", f"expects seeds like 1-5 or 1,3,7 (got {text!r})") from None
    return seeds


def cpu_slices(cpus: Sequence[int], jobs: int) -> list[frozenset[int]]:
    """One slice of ``cpus`` per job: contiguous and disjoint while there are enough
    CPUs (sizes differ by at most one), else one CPU each, dealt round-robin."""
    if jobs <= len(cpus):
        bounds = [len(cpus) * i // jobs for i in range(jobs + 1)]
        return [frozenset(cpus[a:b]) for a, b in itertools.pairwise(bounds)]
    return [frozenset({cpus[i % len(cpus)]}) for i in range(jobs)]


def check(sweep: Sweep) -> None:
    """Refuse before any child starts: bad counts, or a parent dir that already
    holds a sweep's runs or tables (unless ``overwrite``)."""
    if sweep.jobs < 1:
        raise ConfigError("jobs", f"must be >= 1 (got {sweep.jobs})")
    if sweep.timeout <= 0:
        raise ConfigError("timeout", f"must be > 0 seconds (got {sweep.timeout:g})")
    if not sweep.seeds:
        raise ConfigError("seeds", "name at least one seed")
    if sweep.overwrite:
        return
    taken = [str(sweep.seed_dir(s)) for s in sweep.seeds if RunDir(sweep.seed_dir(s)).holds_a_run()]
    if taken:
        raise ConfigError(
            "overwrite",
            f"{sweep.parent} already holds a sweep with these seeds ({', '.join(taken[:3])}"
            f"{', ...' if len(taken) > 3 else ''}): choose other seeds or another dir, or give "
            "{overwrite} to replace it",
            mentions=("overwrite",),
        )
    earlier_runs(sweep)  # a table of another experiment is refused before any run


def _experiment(settings: dict[str, Any]) -> dict[str, Any]:
    """What makes two sweeps' seeds one experiment: every setting but ``jobs``."""
    return {key: value for key, value in settings.items() if key != "jobs"}


def earlier_runs(sweep: Sweep) -> list[SeedRun]:
    """The seeds an earlier sweep in this parent dir recorded (``seeds.json``), so
    new seeds join its table; [] for a fresh dir or ``overwrite``. A table of other
    settings is another experiment: refused, naming the setting that differs."""
    md, js = (sweep.parent / name for name in TABLE_FILES)
    if sweep.overwrite or not (md.exists() or js.exists()):
        return []
    refuse = f"choose another dir, or give {{overwrite}} to replace {js.parent}'s sweep"
    try:
        record = json.loads(js.read_text(encoding="utf-8"))
        earlier, seeds = _experiment(record["settings"]), record["seeds"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(
            "overwrite", f"{js} is missing or unreadable: {refuse}", mentions=("overwrite",)
        ) from None
    now = _experiment(sweep_settings(sweep))
    differ = [key for key in now if now[key] != earlier.get(key)]
    if differ:
        key = differ[0]
        raise ConfigError(
            "overwrite",
            f"{js.parent} holds a sweep with {key} {earlier.get(key)!r}, not {now[key]!r}: "
            f"{refuse}",
            mentions=("overwrite",),
        )
    names = {f.name for f in fields(SeedRun)}
    return [SeedRun(**{k: v for k, v in seed.items() if k in names}) for seed in seeds]


def all_runs(sweep: Sweep, runs: list[SeedRun]) -> list[SeedRun]:
    """``runs`` beside the earlier seeds of this parent dir's table, by seed."""
    by_seed = {run.seed: run for run in earlier_runs(sweep)} | {run.seed: run for run in runs}
    return [by_seed[seed] for seed in sorted(by_seed)]


def run_sweep(sweep: Sweep, progress: bool = True) -> list[SeedRun]:
    """Run every seed, ``jobs`` at a time; return one ``SeedRun`` per seed, in order.
    Ctrl-C stops the running children gracefully (they checkpoint) and re-raises."""
    check(sweep)
    (sweep.parent / "logs").mkdir(parents=True, exist_ok=True)
    free = cpu_slices(sorted(affinity()), sweep.jobs)
    share = max(1, len(affinity()) // sweep.jobs)
    results = {seed: SeedRun(seed, str(sweep.seed_dir(seed))) for seed in sweep.seeds}
    waiting = list(sweep.seeds)
    running: dict[int, _Child] = {}
    try:
        while waiting or running:
            while waiting and free:
                seed = waiting.pop(0)
                running[seed] = _Child.start(sweep, seed, free.pop(0), share)
            time.sleep(POLL_SECONDS)
            for seed, child in list(running.items()):
                if child.poll():
                    free.append(child.cpus)
                    del running[seed]
                    _finish(results[seed], child, sweep)
                    if progress:
                        print(f"esper: {describe(results[seed])}", flush=True)
    except KeyboardInterrupt:
        for child in running.values():
            child.stop(signal.SIGTERM)
        for child in running.values():
            child.wait_or_kill(STOP_GRACE_SECONDS)
        raise
    return [results[seed] for seed in sweep.seeds]


@dataclass
class _Child:
    """One seed's ``esper ppo`` process, its CPUs and its deadline."""

    process: subprocess.Popen[bytes]
    cpus: frozenset[int]
    started: float
    deadline: float
    log: Any
    rusage: Any = None
    timed_out: bool = False
    _terminated_at: float | None = None

    @classmethod
    def start(cls, sweep: Sweep, seed: int, cpus: frozenset[int], share: int) -> _Child:
        env = dict(os.environ)
        if "OMP_NUM_THREADS" not in env:  # the caller's choice wins
            env["OMP_NUM_THREADS"] = str(min(share, len(cpus)))
        log = (sweep.parent / "logs" / f"seed-{seed}.log").open("wb")

        def pin() -> None:  # runs in the child before exec: its threads inherit the slice
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, cpus)

        process = subprocess.Popen(
            sweep.command(seed),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=pin,  # safe: the sweep's own process starts no threads
        )
        now = time.monotonic()
        return cls(process, cpus, now, now + sweep.timeout, log)

    def poll(self) -> bool:
        """True once the process has ended (reaped here, with its CPU time)."""
        pid, status, rusage = os.wait4(self.process.pid, os.WNOHANG)
        if pid == 0:
            self._enforce_deadline()
            return False
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.rusage = rusage
        self.log.close()
        return True

    def _enforce_deadline(self) -> None:
        now = time.monotonic()
        if now > self.deadline and self._terminated_at is None:
            self.timed_out = True
            self.stop(signal.SIGTERM)
        elif self._terminated_at is not None and now > self._terminated_at + STOP_GRACE_SECONDS:
            self.stop(signal.SIGKILL)

    def stop(self, how: signal.Signals) -> None:
        if self.process.returncode is None:
            self._terminated_at = self._terminated_at or time.monotonic()
            self.process.send_signal(how)

    def wait_or_kill(self, grace: float) -> None:
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def _finish(result: SeedRun, child: _Child, sweep: Sweep) -> None:
    code = child.process.returncode
    result.exit_code = code
    result.wall_seconds = time.monotonic() - child.started
    result.cpu_seconds = child.rusage.ru_utime + child.rusage.ru_stime
    if child.timed_out:
        result.status = f"timed out after {sweep.timeout:g} s"
    elif code == 0:
        result.status = "completed"
    elif code in (130, 143):
        result.status = "interrupted"
    elif code is not None and code < 0:
        result.status = f"failed ({signal.Signals(-code).name})"
    else:
        result.status = f"failed (exit {code}; see logs/seed-{result.seed}.log)"
    try:
        curves = read_curves(Path(result.run_dir))
    except ConfigError:  # no batch on record
        return
    result.batch_means = [b.episode_return_mean for b in curves.batches.values()]
    result.env_steps = max(curves.env_steps)


def sweep_settings(sweep: Sweep) -> dict[str, Any]:
    """The command's settings, recorded with the tables: a later sweep in the same
    PARENT must match them."""
    return {
        "task": sweep.task,
        "episodes": sweep.episodes,
        "config_file": str(sweep.config_file) if sweep.config_file else None,
        "set": sweep.settings,
        "device": sweep.device,
        "jobs": sweep.jobs,
    }


def describe(run: SeedRun) -> str:
    last5 = "-" if run.last5 is None else f"{run.last5:.1f}"
    return (
        f"seed {run.seed} {run.status}: last-5 {last5}, {run.env_steps:,} env steps "
        f"in {run.wall_seconds:.1f} s"
    )
