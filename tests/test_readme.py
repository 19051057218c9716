"""Every code block in README.md and the guide's pages runs as written, in order, as a
reader would run them (the README first, then the guide in the site's order).

Blocks are found by their fences, wherever they are: shell blocks (no language,
``sh``, ``bash``) run each ``esper`` command in one empty folder, with small sizes
so the whole README costs a few small runs; ``python`` blocks are executed there; ``json``
and ``toml`` blocks must parse; ``text`` blocks are listings and are not run.
A command that is neither run nor in ``NOT_RUN`` (with its reason) fails the test.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
# The pages that hold what the README held before the site: each block runs.
GUIDE = [
    ROOT / "docs" / name
    for name in (
        "getting-started.md",
        "tasks.md",
        "policies.md",
        "evaluation.md",
        "sweeps.md",
        "python-api.md",
        "runs.md",
        "scaling.md",
        "reading-telemetry.md",
        "ppo.md",
        "development.md",
    )
]

# Commands a reader may run but this test does not, each with why (keep it short).
NOT_RUN = {
    r"uv run pytest.*": "the test suite itself",
    r"uv run ruff .*": "CI's lint step, over the repository",
    r"uv run --group docs mkdocs .*": "CI builds the site (.ci/run)",
    r"uv run python scripts/bench\.py.*": "a benchmark of minutes",
    r"(uv )?pip install .*": "installs from the package registry",
    r"torchrun .*": "several ranks; tests/training/test_distributed.py launches torchrun",
    r"esper ppo --nproc .*": (
        "several ranks; tests/training/test_distributed.py runs esper ppo --nproc 2"
    ),
    r"uv run esper seeds .*": "a sweep of whole runs; tests/test_sweep.py runs a small one",
    r"uv run esper tune .*": "a search of whole runs; tests/test_tune.py runs a small one",
    r"uv run esper (plot runs/cp-seeds|ppo --config runs/tune-).*": "needs the sweep or study",
    r"uv run esper sanctum runs/cartpole": (
        "follows the run until q; tests/sanctum/test_attach.py and test_e2e_tmux.py drive it"
    ),
}
# Small sizes: these flag values replace the README's in each command, and every
# `esper ppo` also gets FAST_PPO (the last of a repeated flag wins).
SMALL = {
    "ppo": {"--episodes": "2", "--start-episode": "2"},
    "eval": {"--episodes": "3", "--checkpoint": "2"},
}
FAST_PPO = ["--envs", "8", "--max-epochs", "16", "--ppo-epochs", "1", "--device", "cpu"]
SHELL = {"", "sh", "bash", "shell"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int  # where the block starts in its file, for messages
    file: str = "README.md"


def readme_blocks(markdown: str, file: str = "README.md") -> list[Block]:
    return [
        Block(match[1], match[2], markdown.count("\n", 0, match.start()) + 1, file)
        for match in FENCE.finditer(markdown)
    ]


@dataclass
class Ran:
    skipped: list[str]  # the commands not run, with why
    python: list[dict]  # each python block's namespace after it ran


def run_blocks(blocks: list[Block]) -> Ran:
    """Run each block in the current folder."""
    ran = Ran([], [])
    for block in blocks:
        where = f"{block.file}:{block.line}"
        if block.language in SHELL:
            for command in shell_commands(block.text):
                reason = not_run_reason(command)
                if reason is None:
                    run_esper(command, where)
                else:
                    ran.skipped.append(f"{command}  ({reason})")
        elif block.language == "python":
            namespace = {"__name__": "__readme__"}
            exec(compile(block.text, where, "exec"), namespace)
            ran.python.append(namespace)
        elif block.language == "json":
            json.loads(block.text)
        elif block.language == "toml":
            tomllib.loads(block.text)
        else:
            assert block.language == "text", f"{where}: no rule for a {block.language!r} block"
    return ran


def shell_commands(text: str) -> list[str]:
    """Each command of a shell block: comments dropped, `a && b` as two commands."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            end = words.index("&&") if "&&" in words else len(words)
            commands.append(shlex.join(words[:end]))
            words = words[end + 1 :]
    return commands


def not_run_reason(command: str) -> str | None:
    for pattern, reason in NOT_RUN.items():
        if re.fullmatch(pattern, command):
            return reason
    return None


def run_esper(command: str, where: str) -> None:
    words = shlex.split(command)
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    assert words[:1] == ["esper"], f"{where}: `{command}` is neither run nor listed in NOT_RUN"
    args = small(words[1:])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (
        f"{where}: `{command}` (run as esper {shlex.join(args)}) exited {result.exit_code}\n"
        f"{result.stdout}\n{result.stderr}"
    )


def small(args: list[str]) -> list[str]:
    """``args`` with SMALL's values (``--flag N`` and ``--flag=N``), and FAST_PPO for ppo."""
    values = SMALL.get(args[0], {}) if args else {}
    out = []
    for before, word in zip(["", *args], args, strict=False):
        flag = word.split("=", 1)[0]
        if before in values:
            word = values[before]
        elif "=" in word and flag in values:
            word = f"{flag}={values[flag]}"
        out.append(word)
    return [*out, *FAST_PPO] if args[:1] == ["ppo"] else out


def test_every_readme_block_runs_in_order(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # the README's run dirs are relative
    ran = run_blocks(readme_blocks(README.read_text()))
    with capsys.disabled():
        print("\nREADME commands not run:", *ran.skipped, sep="\n  ")
    assert (tmp_path / "runs/cartpole/telemetry.jsonl").is_file()
    [example] = ran.python
    assert example["result"].status == "completed"
    assert example["policy"].obs_dim == 4


def test_every_guide_block_runs_in_order(tmp_path: Path, monkeypatch, capsys) -> None:
    """The guide's pages, one reader going through them in the site's order."""
    monkeypatch.chdir(tmp_path)
    blocks = [block for page in GUIDE for block in readme_blocks(page.read_text(), page.name)]
    ran = run_blocks(blocks)
    with capsys.disabled():
        print("\nguide commands not run:", *ran.skipped, sep="\n  ")
    assert (tmp_path / "runs/cartpole/telemetry.jsonl").is_file()
    # The Python API example did what its comments say, not just ran.
    [api] = [namespace for namespace in ran.python if "outcome" in namespace]
    assert api["outcome"].status == "completed"
    assert api["actions"].shape == (5,)
    assert (tmp_path / "runs/api-demo/telemetry.jsonl").is_file()
    assert "completed 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("```python\nfrom esper import no_such_name\n```\n", ImportError),
        ('```json\n{"batch": 1,}\n```\n', json.JSONDecodeError),
        ("```\nuv run esper ppo --task no-such-task\n```\n", AssertionError),  # exits 2
        ("```\nmake demo   # not esper, not listed\n```\n", AssertionError),
        ("```yaml\na: 1\n```\n", AssertionError),
    ],
)
def test_a_broken_block_fails(markdown: str, error: type[Exception], tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error):
        run_blocks(readme_blocks(f"# A README\n\nSome prose.\n\n{markdown}"))


def test_commands_run_small():
    assert small(["ppo", "--episodes", "50", "--start-episode=50"]) == [
        "ppo", "--episodes", "2", "--start-episode=2", *FAST_PPO,
    ]  # fmt: skip
    assert small(["eval", "r", "--checkpoint", "30"]) == ["eval", "r", "--checkpoint", "2"]
