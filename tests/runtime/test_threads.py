"""esper.runtime.threads: the CPUs a process may use, the registry of running trainers,
and the thread count they add up to. Fake cgroup files and affinity sets; no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esper.runtime import threads


def _cgroup(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup tree holding ``files`` and a fake /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(membership)
    return root, proc


def test_affinity_alone_without_a_quota(tmp_path: Path) -> None:
    root, proc = _cgroup(tmp_path, {"cpu.max": "max 100000\n"}, "0::/\n")
    assert threads.usable_cpus({0, 1, 2, 3}, root, proc) == 4
    assert threads.usable_cpus({5}, root, proc) == 1


def test_cgroup_v2_quota_caps_the_affinity(tmp_path: Path) -> None:
    root, proc = _cgroup(tmp_path, {"job/cpu.max": "250000 100000\n"}, "0::/job\n")
    assert threads.cgroup_quota(root, proc) == 2.5
    assert threads.usable_cpus(range(8), root, proc) == 2  # rounded down
    assert threads.usable_cpus({0}, root, proc) == 1  # the affinity is tighter


def test_the_tightest_quota_on_the_path_wins(tmp_path: Path) -> None:
    files = {"a/cpu.max": "100000 100000\n", "a/b/cpu.max": "300000 100000\n"}
    root, proc = _cgroup(tmp_path, files, "0::/a/b\n")
    assert threads.usable_cpus(range(8), root, proc) == 1


def test_a_quota_under_one_cpu_still_gives_one(tmp_path: Path) -> None:
    root, proc = _cgroup(tmp_path, {"cpu.max": "50000 100000\n"}, "0::/\n")
    assert threads.usable_cpus(range(4), root, proc) == 1


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    files = {
        "cpu,cpuacct/box/cpu.cfs_quota_us": "300000\n",
        "cpu,cpuacct/box/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }
    membership = "4:memory:/box\n2:cpu,cpuacct:/box\n0::/\n"
    root, proc = _cgroup(tmp_path, files, membership)
    assert threads.usable_cpus(range(16), root, proc) == 3


def test_v1_without_a_quota_and_unreadable_files_mean_no_cap(tmp_path: Path) -> None:
    files = {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}
    root, proc = _cgroup(tmp_path, files, "1:cpu:/\n")
    assert threads.cgroup_quota(root, proc) is None
    assert threads.usable_cpus(range(2), root, tmp_path / "missing") == 2


@pytest.mark.parametrize(
    ("environ", "chosen"),
    [
        ({}, None),
        ({"OMP_NUM_THREADS": "3"}, 3),
        ({"MKL_NUM_THREADS": "2"}, 2),
        ({"OMP_NUM_THREADS": ""}, None),
        ({"OMP_NUM_THREADS": "0"}, None),
        ({"OMP_NUM_THREADS": "many"}, None),
    ],
)
def test_explicit_choice(environ: dict[str, str], chosen: int | None) -> None:
    assert threads.explicit_threads(environ) == chosen


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    return int(done.stdout)


def test_registry_counts_live_trainers_on_shared_cpus(tmp_path: Path) -> None:
    me = threads.Registry(tmp_path)
    me.join(frozenset({0, 1}))
    assert me.live(frozenset({0, 1})) == 1
    parent = threads.Registry(tmp_path, pid=os.getppid())  # alive, a second trainer
    parent.join(frozenset({1}))
    assert me.live(frozenset({0, 1})) == 2
    assert me.live(frozenset({0})) == 1  # the other trainer's CPUs do not overlap
    parent.leave()
    assert me.live(frozenset({0, 1})) == 1


def test_stale_entries_are_ignored_and_removed(tmp_path: Path) -> None:
    me = threads.Registry(tmp_path)
    me.join(frozenset({0, 1}))
    gone = _dead_pid()
    (tmp_path / str(gone)).write_text("123\n0,1\n")
    reused = tmp_path / str(os.getppid())  # a live pid whose start time differs
    reused.write_text("1\n0,1\n")
    (tmp_path / "notes.txt").write_text("not an entry")
    assert me.live(frozenset({0, 1})) == 1
    assert not (tmp_path / str(gone)).exists()
    assert not reused.exists()


def test_an_unreadable_registry_counts_this_process_alone(tmp_path: Path) -> None:
    assert threads.Registry(tmp_path / "missing").live(frozenset({0})) == 1


class _Counted:
    """A registry that reports a fixed number of live trainers."""

    def __init__(self, trainers: int) -> None:
        self.trainers = trainers

    def live(self, cpus: frozenset[int]) -> int:
        return self.trainers


@pytest.mark.parametrize(
    ("limit", "trainers", "expected"), [(2, 1, 2), (2, 2, 1), (2, 4, 1), (8, 2, 4), (8, 3, 2)]
)
def test_each_trainer_takes_its_share(limit: int, trainers: int, expected: int) -> None:
    share = threads.CpuShare(cpus=frozenset({0}), limit=limit, registry=_Counted(trainers))
    assert share.threads() == expected


@pytest.mark.parametrize(
    ("others_busy", "expected"), [(0.0, 2), (0.4, 2), (0.6, 1), (1.5, 1), (3.0, 1)]
)
def test_no_more_threads_than_the_cpus_others_leave(others_busy: float, expected: int) -> None:
    share = threads.CpuShare(cpus=frozenset({0, 1}), limit=2, registry=_Counted(1))
    assert share.threads(others_busy) == expected


def test_cpu_clock_counts_only_its_cpus_and_not_this_process(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    stat = tmp_path / "stat"
    stat.write_text(f"cpu  9 9 9 9 9 9 9 9\ncpu0 0 0 0 0 0 0 0 0\ncpu1 {tick} 0 0 0 0 0 0 0\n")
    earlier = threads.CpuClock.read(frozenset({0}), stat)
    assert earlier is not None and earlier.busy == 0
    # cpu0 busy for 3 s (user, system, steal) and idle/iowait ignored, over 2 s of wall
    stat.write_text(f"cpu0 {tick} 0 {tick} {5 * tick} {tick} 0 0 {tick}\ncpu1 {9 * tick} 0 0 0\n")
    later = threads.CpuClock(busy=3.0, own=earlier.own + 1.0, wall=earlier.wall + 2.0)
    assert threads.CpuClock.read(frozenset({0}), stat).busy == 3.0  # type: ignore[union-attr]
    # (3 s busy - 1 s its own) / 2 s; approx: earlier's clocks are this process's
    # real ones, and (own + 1) - own is 1 only to rounding
    assert later.others_since(earlier) == pytest.approx(1.0)
    assert threads.CpuClock.read(frozenset({0}), tmp_path / "missing") is None


def test_share_sets_torch_threads_unless_explicit(tmp_path: Path) -> None:
    import torch

    before = torch.get_num_threads()
    share = threads.CpuShare(cpus=frozenset({0}), limit=1, registry=threads.Registry(tmp_path))
    try:
        torch.set_num_threads(3)  # not the share's 1, even on a 1-CPU machine
        share.explicit = True
        share.apply(force=True)
        assert torch.get_num_threads() == 3
        share.explicit = False
        share.apply(force=True)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_esper_train_reports_the_count_and_leaves_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library call (in this process: only the ``esper`` command's entry point
    lets runs choose): torch_threads is in TRAINING_STARTED, torch's setting unchanged."""
    import torch

    import esper

    for name in threads.EXPLICIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not what esper would choose on a 1-CPU runner
    try:
        esper.train("cartpole", 1, n_envs=8, max_epochs=16, device="cpu", run_dir=str(tmp_path))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    first = json.loads((tmp_path / "telemetry.jsonl").read_text().splitlines()[0])
    assert (first["event_type"], first["data"]["torch_threads"], after) == (
        "TRAINING_STARTED",
        3,
        3,
    )


def test_the_esper_command_registers_and_chooses(tmp_path: Path) -> None:
    """``esper ppo``: the share of the usable CPUs, reported in TRAINING_STARTED."""
    env = {k: v for k, v in os.environ.items() if k not in threads.EXPLICIT_VARIABLES}
    env["XDG_RUNTIME_DIR"] = str(tmp_path)
    run = tmp_path / "run"
    command = [
        *(sys.executable, "-m", "esper.cli", "ppo", "--episodes", "1", "--envs", "8"),
        *("--max-epochs", "16", "--device", "cpu", "--no-sanctum", "--run-dir", str(run)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    first = json.loads((run / "telemetry.jsonl").read_text().splitlines()[0])
    assert first["data"]["torch_threads"] == threads.usable_cpus()
    assert list((tmp_path / "esper-trainers").iterdir()) == []  # it left at exit
