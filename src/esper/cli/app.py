"""The ``esper`` application: the flag table, and every user error as one line.

Bad input never shows a traceback: it is one line naming the flag and the fix,
and a non-zero exit code. Each command module beside this one registers its
commands on ``app``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperGroup

from esper.config.schema import SETTING_FLAGS
from esper.config.text import EDGE_WORDS
from esper.runtime.errors import UserError
from esper.runtime.extras import install_hint
from esper.runtime.torchrun_env import is_main_process

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_TELEMETRY_INCOMPLETE = 3


class Invocation(NamedTuple):
    """An ``esper ppo`` option that is not a PPOConfig setting: how this run is shown,
    recorded or started, or another name for a setting (an edge word). The key is
    the API's keyword for it."""

    flag: str
    type: Any
    help: str
    default_text: str


INVOCATION_OPTIONS = {
    "config_file": Invocation(
        "--config",
        Path,
        "TOML file of PPOConfig keys (unknown keys are errors); --set and flags override it.",
        "none",
    ),
    "settings": Invocation(
        "--set",
        list[str],
        "KEY=VALUE for any PPOConfig key, e.g. --set learning_rate=3e-4 (repeatable; the "
        "value is read as in a TOML file). Precedence, lowest first: task defaults, "
        "--config, --set, flags.",
        "none",
    ),
    "total_timesteps": Invocation(
        "--total-timesteps",
        int,
        "The run's budget in env steps, as in CleanRL: the run ends at batch "
        "ceil(N / (envs x horizon)); instead of --episodes.",
        "none",
    ),
    "track": Invocation(
        "--track",
        str,
        "Log to Weights & Biases with CleanRL's metric names; --track offline needs no "
        f"network (wandb sync uploads later); a resume continues the W&B run "
        f"({install_hint('wandb')}).",
        "off",
    ),
    "resume": Invocation(
        "--resume",
        bool,
        "Continue from the newest intact checkpoint in the run dir; the run ends at "
        "that batch + --episodes.",
        "off",
    ),
    "sanctum": Invocation(
        "--sanctum/--no-sanctum",
        bool,
        "Show the Sanctum dashboard when stdout is a terminal, or a progress bar; "
        "plain lines when stdout is not a terminal.",
        "sanctum",
    ),
    "tensorboard": Invocation(
        "--tensorboard",
        bool,
        f"Also write TensorBoard scalars to RUN_DIR/tensorboard/ ({install_hint('tensorboard')}).",
        "off",
    ),
    "max_epochs": Invocation(
        "--max-epochs",
        int,
        "The same as --horizon, by the seed's name for it; given both, they must agree.",
        "that of --horizon",
    ),
    "nproc": Invocation(
        "--nproc",
        int,
        "Train over N processes on this machine: the same as torchrun --standalone "
        "--nproc-per-node N -m esper ppo ... (--envs is the total).",
        "one process",
    ),
}
# Options that are another name for a setting: config_text.EDGE_WORDS says which.
EDGE_ALIASES = tuple(key for key in INVOCATION_OPTIONS if key in EDGE_WORDS)
# Setting -> what the user typed: the one place a setting becomes a flag.
CLI_NAMES = {
    **SETTING_FLAGS,
    **{key: option.flag.split("/")[0] for key, option in INVOCATION_OPTIONS.items()},
    "checkpoint": "--checkpoint",  # esper eval's choice of checkpoint
    "episodes": "--episodes",  # esper eval's episode count
    "video": "--video",  # esper eval's video file
    "video_episodes": "--video-episodes",
    "scripted": "--scripted",  # esper eval's scripted policy
    "world_size": "--nproc",  # the ranks of a job (one process unless --nproc or torchrun)
    "seeds": "--seeds",  # esper seeds / esper tune
    "jobs": "--jobs",
    "timeout": "--timeout",
    "trials": "--trials",
    "space": "--space",
    "tune_dir": "--dir",
    "sweep_dir": "--dir",  # esper seeds' parent folder
    "format": "--format",  # esper export's file format
    "output": "--output",  # esper export's file
}


def set_names(pairs: list[str] | None, flagged: set[str]) -> dict[str, str]:
    """CLI_NAMES, with each setting given by ``--set KEY=VALUE`` (and by no flag,
    which would win) named ``--set KEY``: an error blames what the user typed."""
    names = dict(CLI_NAMES)
    for pair in pairs or ():
        key = pair.partition("=")[0].strip()
        field = EDGE_WORDS.get(key, key)
        if key and field not in flagged:
            names[field] = f"--set {key}"
    return names


class OneLineErrors(TyperGroup):
    """Every user error becomes one line on stderr and a non-zero exit, no traceback.

    Overriding ``main`` covers both the console script and Typer's CliRunner.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            if not args and "args" not in kwargs:
                kwargs["args"] = sys.argv[1:]
            if "args" in kwargs:
                kwargs["args"] = _bare_track(list(kwargs["args"] or ()))
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            code = _fail("aborted", 130)
        except typer.TyperException as exc:  # a usage error typer found
            code = _fail(f"error: {_one_line(exc.format_message())}", EXIT_BAD_INPUT)
        except UserError as exc:  # in the words a command chose, else the flags
            code = _fail(
                f"error: {exc.in_words(exc.names or CLI_NAMES).one_line()}", EXIT_BAD_INPUT
            )
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _bare_track(argv: list[str]) -> list[str]:
    """``--track`` alone (last, or before another option) means W&B's default mode
    (``WANDB_MODE``, else online): typer options always take a value, so a bare one
    is given ``default``."""
    out = []
    for at, word in enumerate(argv):
        out.append(word)
        given = at + 1 < len(argv) and not argv[at + 1].startswith("-")
        if word == "--track" and not given:
            out.append("default")
    return out


def _fail(line: str, code: int) -> int:
    if is_main_process():  # under torchrun every rank sees the same bad input: say it once
        print(f"esper: {line}", file=sys.stderr, flush=True)
    return code


app = typer.Typer(
    cls=OneLineErrors,
    name="esper",
    help=(
        "PPO on batched tensor environments, with built-in telemetry.\n\n"
        "A batch is one PPO round: every one of --envs environments steps --horizon "
        "times, then one PPO update. --episodes N runs N batches; --start-episode K "
        "resumes after batch K (--resume: after the newest checkpoint), so the run ends "
        "at batch max_batches = K + N."
    ),
    add_completion=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        from esper import version

        print(f"esper {version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print esper's version (the installed package's) and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """esper: PPO on batched tensor environments, with built-in telemetry."""
    if ctx.invoked_subcommand is None:  # bare `esper`: the help, exit 0
        print(ctx.get_help())


def _one_line(text: str) -> str:
    return " ".join(text.split())
