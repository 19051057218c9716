"""Every flag parses; every bad input is one line naming the flag, exit != 0."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import typer.main
from typer.testing import CliRunner

import esper
from esper import api
from esper.cli import CLI_NAMES, INVOCATION_OPTIONS, PPO_OPTIONS, app
from esper.config.layers import default_text
from esper.config.run import make_config
from esper.config.schema import FIELDS, SETTING_FLAGS
from esper.runtime.errors import ConfigError
from esper.training.distributed.launch import launcher

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.strip()]


def test_help_explains_the_words() -> None:
    result = run("ppo", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for flag in (
        "--episodes",
        "--start-episode",
        "--task",
        "--envs",
        "--max-epochs",
        "--ppo-epochs",
        "--device",
        "--seed",
        "--config",
        "--run-dir",
        "--checkpoint-every",
        "--overwrite",
        "--sanctum",
        "--no-sanctum",
    ):
        assert flag in text
    assert "rollout horizon" in text
    assert "batch_K.pt" in text
    assert "gym:ENV_ID, or package.module:Factory" in text  # every form --task takes
    assert "max_batches" in " ".join(run("--help").output.split())


def test_bare_esper_prints_the_help() -> None:
    result = run()
    assert result.exit_code == 0
    assert "Usage: esper" in result.output and "ppo" in result.output


def test_every_flag_parses_into_the_config(tmp_path: Path, monkeypatch) -> None:
    seen = {}

    def fake_train(config_file, overrides, sanctum, tensorboard=False, resume=False, **more):
        seen["config"] = make_config(config_file, overrides)
        seen["sanctum"] = sanctum
        seen["tensorboard"] = tensorboard
        return SimpleNamespace(status="completed", telemetry_failures=[])

    monkeypatch.setattr(api, "train_from_cli", fake_train)
    path = tmp_path / "c.toml"
    path.write_text("gamma = 0.98\n")
    result = run(
        "ppo",
        "--episodes", "7",
        "--task", "cartpole",
        "--envs", "16",
        "--max-epochs", "8",
        "--ppo-epochs", "3",
        "--device", "cpu",
        "--seed", "9",
        "--config", str(path),
        "--run-dir", str(tmp_path / "run"),
        "--checkpoint-every", "2",
        "--overwrite",
        "--no-sanctum",
        "--tensorboard",
        "--compile",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert (config.n_batches, config.n_envs, config.horizon) == (7, 16, 8)
    assert (config.update_epochs, config.device, config.seed) == (3, "cpu", 9)
    assert (config.gamma, config.checkpoint_every, config.overwrite) == (0.98, 2, True)
    assert config.run_dir == str(tmp_path / "run")
    assert config.compile is True
    assert seen["sanctum"] is False
    assert seen["tensorboard"] is True


BAD_INPUTS = [
    (["--episodes", "0"], "--episodes"),
    (["--episodes", "many"], "--episodes"),
    (["--start-episode", "-1"], "--start-episode"),
    (["--task", "no-such-task"], "--task"),
    (["--envs", "0"], "--envs"),
    (["--max-epochs", "0"], "--max-epochs"),
    (["--checkpoint-every", "0"], "--checkpoint-every"),
    (["--nonsense"], "--nonsense"),
    (["--keep-checkpoints", "0"], "--keep-checkpoints"),
    (["--resume", "--start-episode", "3"], "--resume"),
]


@pytest.mark.parametrize(("args", "flag"), BAD_INPUTS)
def test_bad_input_is_one_line_naming_the_flag(args: list[str], flag: str) -> None:
    result = run("ppo", *args)
    assert result.exit_code == 2
    lines = error_lines(result)
    assert len(lines) == 1, result.output
    assert flag in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["ppo", "--config", "{folder}"], "--config"),  # a folder
        (["ppo", "--config", "{binary}"], "--config"),  # not UTF-8
        (["tune", "--space", "{folder}", "--trials", "1"], "--space"),
        (["check-env", "cartpole", "--speed", "0"], "--speed"),
        (["plot", "{folder}", "--dpi", "0"], "--dpi"),
    ],
)
def test_unreadable_files_and_bad_sizes_are_one_line(
    tmp_path: Path, command: list[str], flag: str
) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    args = [word.format(folder=tmp_path, binary=binary) for word in command]
    result = run(*args)
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert flag in line and "Traceback" not in result.output


def test_unknown_config_key_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("entropy = 0.1\n")
    result = run("ppo", "--config", str(path), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--config" in line and "'entropy'" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_missing_cuda_is_one_line() -> None:
    result = run("ppo", "--device", "cuda")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--device" in line and "CUDA is not available" in line


def test_missing_checkpoint_lists_what_exists(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    result = run("ppo", "--run-dir", str(tmp_path), "--start-episode", "5")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--start-episode" in line and "no checkpoint for batch 5" in line


def test_fresh_run_into_a_used_run_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "batch_000003.pt").write_bytes(b"x")
    result = run("ppo", "--run-dir", str(tmp_path), "--device", "cpu")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--run-dir" in line and "already holds a run" in line and "--overwrite" in line
    assert "continue it with --resume (newest checkpoint: batch 3)" in line


def test_damaged_checkpoint_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "batch_000003.pt").write_bytes(b"not a checkpoint")
    result = run("ppo", "--run-dir", str(tmp_path), "--start-episode", "3", "--device", "cpu")
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "batch_000003.pt" in line and "damaged" in line


def test_config_keys_that_crashed_load_from_a_file(tmp_path: Path, monkeypatch) -> None:
    seen = {}
    monkeypatch.setattr(
        api,
        "train_from_cli",
        lambda config_file, overrides, **_: (
            seen.update(c=make_config(config_file, overrides))
            or SimpleNamespace(status="completed", telemetry_failures=[])
        ),
    )
    path = tmp_path / "c.toml"
    path.write_text("anneal_batches = 4\nkeep_checkpoints = 2\n")
    result = run("ppo", "--config", str(path), "--run-dir", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert (seen["c"].anneal_batches, seen["c"].keep_checkpoints) == (4, 2)


def test_a_foreign_config_key_is_one_line_pointing_to_ours(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("num_iterations = 500000\n")
    result = run("ppo", "--config", str(path))
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith("esper: error: --config:") and "did you mean n_batches" in line


def test_the_cli_names_flags_and_the_api_names_keywords(tmp_path: Path) -> None:
    [line] = error_lines(run("ppo", "--envs", "0"))
    assert "--envs: must be >= 1" in line
    with pytest.raises(ConfigError, match=r"^n_envs: must be >= 1"):
        esper.train(n_envs=0, run_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^episodes: must be >= 1"):
        esper.train(episodes=0, run_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^max_epochs: must be >= 1"):
        esper.train(max_epochs=0, run_dir=str(tmp_path))


def test_every_flag_comes_from_one_table() -> None:
    ppo = typer.main.get_command(app).commands["ppo"]
    flags = {p.name: p.opts[0] for p in ppo.params if p.opts[0] != "--help"}
    assert {name: flags[name] for name in SETTING_FLAGS} == SETTING_FLAGS
    assert set(flags) == set(SETTING_FLAGS) | set(INVOCATION_OPTIONS)
    assert [p.name for p in PPO_OPTIONS] == [p.name for p in ppo.params if p.name != "help"]
    assert CLI_NAMES["n_envs"] == "--envs" and CLI_NAMES["config_file"] == "--config"


def test_the_documented_flag_table_matches_the_source() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "runs.md").read_text()
    section = guide.split("## `esper ppo` flags", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`--"):
            rows[cells[0].strip("`").split()[0]] = cells[1].replace("`", "")
    expected = {flag: default_text(name) for name, flag in SETTING_FLAGS.items()}
    expected |= {o.flag: o.default_text for o in INVOCATION_OPTIONS.values()}
    assert rows == expected
    assert all(FIELDS[name].metadata["help"] for name in SETTING_FLAGS)


TINY = ["--envs", "8", "--max-epochs", "16", "--device", "cpu", "--checkpoint-every", "1"]


def started_events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [e["data"] for e in map(json.loads, lines) if e["event_type"] == "TRAINING_STARTED"]


def test_resume_picks_the_newest_intact_checkpoint(tmp_path: Path) -> None:
    assert run("ppo", "--episodes", "3", "--run-dir", str(tmp_path), *TINY).exit_code == 0
    (tmp_path / "checkpoints" / "batch_000003.pt").write_bytes(b"cut short by kill -9")
    result = run("ppo", "--resume", "--episodes", "2", "--run-dir", str(tmp_path), *TINY)
    assert result.exit_code == 0, result.output
    assert "batch_000003.pt does not load" in result.output
    last = started_events(tmp_path)[-1]
    assert (last["start_batch"], last["max_batches"]) == (2, 4)
    assert (tmp_path / "checkpoints" / "batch_000004.pt").is_file()


def test_resume_with_nothing_to_resume_is_one_line(tmp_path: Path) -> None:
    result = run("ppo", "--resume", "--run-dir", str(tmp_path), *TINY)
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith("esper: error: --resume: nothing to resume")


@pytest.mark.parametrize(
    ("uv", "as_module", "expected"),
    [
        (True, False, ["uv", "run", "esper"]),
        (True, True, ["uv", "run", "python", "-m", "esper"]),
        (False, False, ["esper"]),
    ],
)
def test_the_resume_command_is_spelled_as_esper_was_launched(
    uv: bool, as_module: bool, expected: list[str], monkeypatch
) -> None:
    monkeypatch.delenv("UV", raising=False)
    if uv:
        monkeypatch.setenv("UV", "/usr/bin/uv")
    main = SimpleNamespace(__spec__=SimpleNamespace(name="esper.__main__" if as_module else ""))
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["esper", "ppo"])
    assert launcher() == expected


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("launch", "printed"),
    [
        ([sys.executable, "-m", "esper"], None),  # None: the same python, -m esper
        (["uv", "run", "esper"], ["uv", "run", "esper"]),
    ],
    ids=["python-m", "uv-run"],
)
def test_the_printed_resume_command_runs_as_printed(
    launch: list[str], printed: list[str] | None, tmp_path: Path
) -> None:
    """Interrupted by SIGINT, esper checkpoints, exits 130 and prints a command that
    resumes it when run as printed (tests/training/test_failures.py: SIGTERM)."""
    if launch[0] == "uv" and shutil.which("uv") is None:
        pytest.skip("needs uv")
    env = {k: v for k, v in os.environ.items() if k not in ("UV", "VIRTUAL_ENV")}
    env |= {"OMP_NUM_THREADS": "1", "UV_OFFLINE": "1", "UV_NO_SYNC": "1"}
    run_dir = tmp_path / "run"
    args = ["ppo", "--episodes", "500", "--run-dir", str(run_dir), "--no-sanctum", *TINY]
    process = subprocess.Popen(
        [*launch, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any((run_dir / "checkpoints").glob("*.pt")) and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        assert any((run_dir / "checkpoints").glob("*.pt")), "no checkpoint within 120 s"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    interrupted = json.loads(lines[-1])
    assert interrupted["event_type"] == "TRAINING_INTERRUPTED"
    resume = interrupted["data"]["resume_batch"]
    assert resume >= 1 and (run_dir / "checkpoints" / f"batch_{resume:06d}.pt").exists()
    command = shlex.split(re.search(r"resume with: (.*)", stderr).group(1))
    if printed is None:
        assert command[1:3] == ["-m", "esper"]
    else:
        assert command[: len(printed)] == printed
    assert "--resume" in command
    command[command.index("--episodes") + 1] = "1"  # one more batch is proof enough
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert started_events(run_dir)[-1]["start_batch"] >= 1


def test_train_prints_progress_unless_told_not_to(tmp_path: Path, capsys) -> None:
    settings = dict(n_envs=8, max_epochs=16, device="cpu")
    esper.train(episodes=2, run_dir=str(tmp_path / "loud"), **settings)
    loud = capsys.readouterr().out
    assert loud.count("\n") >= 2 and "batch" in loud
    esper.train(episodes=2, run_dir=str(tmp_path / "quiet"), progress=False, **settings)
    assert capsys.readouterr().out == ""
