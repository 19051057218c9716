"""``esper ppo``: options generated from PPOConfig's fields and the invocation
table, so each flag is declared once.
"""

from __future__ import annotations

import inspect
import sys
from typing import Annotated, Any, get_args, get_type_hints

import typer

from esper.cli.app import (
    CLI_NAMES,
    EDGE_ALIASES,
    EXIT_FAILED,
    EXIT_TELEMETRY_INCOMPLETE,
    INVOCATION_OPTIONS,
    app,
    set_names,
)
from esper.config.layers import default_text
from esper.config.schema import CLEARABLE, FIELDS, SETTING_FLAGS, PPOConfig
from esper.config.text import EDGE_WORDS
from esper.runtime.errors import UserError
from esper.runtime.torchrun_env import is_main_process, rank


def _option(name: str, flag: str, kind: Any, help: str, default: str) -> inspect.Parameter:
    """One generated keyword parameter: a switch (off unless given) or a value (None:
    not given, so the config's layers decide)."""
    switch = kind is bool and "/" not in flag
    option = typer.Option(flag, help=f"{help} Default: {default}.", show_default=False)
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=False if switch else None,
        annotation=Annotated[kind if switch else kind | None, option],
    )


def _value_type(name: str) -> Any:
    if name in CLEARABLE:  # a number, or "none" (config.run reads it)
        return str
    hint = get_type_hints(PPOConfig)[name]
    return next((a for a in get_args(hint) if a is not type(None)), hint)


PPO_OPTIONS = [
    *(
        _option(name, flag, _value_type(name), FIELDS[name].metadata["help"], default_text(name))
        for name, flag in SETTING_FLAGS.items()
    ),
    *(_option(name, *option) for name, option in INVOCATION_OPTIONS.items()),
]


def ppo(**options: Any) -> None:
    """Train PPO: --episodes batches, resumable with --resume or --start-episode K."""
    invocation = {key: options.pop(key) for key in INVOCATION_OPTIONS}
    nproc = invocation.pop("nproc")
    if nproc is not None:
        raise typer.Exit(_launch_ranks(nproc))
    from esper import api
    from esper.config import text as config_text

    overrides = {key: value or None if value is False else value for key, value in options.items()}
    spoken = _typed_names(overrides, invocation)
    overrides |= {alias: invocation.pop(alias) for alias in EDGE_ALIASES}
    try:
        fields = config_text.field_names(overrides)
        result = api.train_from_cli(invocation.pop("config_file"), fields, **invocation)
    except UserError as exc:
        raise exc.in_words(spoken) from None
    if result.status == "interrupted":
        if is_main_process():
            print(f"esper: interrupted; resume with: {result.resume_command}", file=sys.stderr)
        raise typer.Exit(143 if result.exit_signal == "SIGTERM" else 130)
    if result.status == "failed":
        where = "" if is_main_process() else f" (rank {rank()})"
        print(f"esper: training failed{where}: {result.reason}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED)
    if result.telemetry_failures:
        names = ", ".join(f"{f.name} ({f.first_error})" for f in result.telemetry_failures)
        print(f"esper: training completed but telemetry is incomplete: {names}", file=sys.stderr)
        raise typer.Exit(EXIT_TELEMETRY_INCOMPLETE)


ppo.__signature__ = inspect.Signature(PPO_OPTIONS)  # type: ignore[attr-defined]
ppo.__annotations__ = {p.name: p.annotation for p in PPO_OPTIONS}
app.command()(ppo)


def _typed_names(settings: dict[str, Any], invocation: dict[str, Any]) -> dict[str, str]:
    """CLI_NAMES, with each setting given by its other flag (``--max-epochs``) or by
    ``--set`` named so."""
    typed = {
        EDGE_WORDS[alias]: CLI_NAMES[alias]
        for alias in EDGE_ALIASES
        if invocation[alias] is not None and settings[EDGE_WORDS[alias]] is None
    }
    flagged = {key for key, value in settings.items() if value is not None} | set(typed)
    return {**set_names(invocation["settings"], flagged), **typed}


def _launch_ranks(nproc: int) -> int:
    """``--nproc N``: this command line again, minus --nproc, under torch's launcher."""
    from esper.runtime.errors import ConfigError
    from esper.training.distributed.launch import launch_local

    if nproc < 1:
        raise ConfigError("nproc", f"must be >= 1 (got {nproc})")
    argv = sys.argv[sys.argv.index("ppo") + 1 :]
    rest = [a for a in argv if not a.startswith("--nproc=")]
    if "--nproc" in rest:
        at = rest.index("--nproc")
        del rest[at : at + 2]
    return launch_local(nproc, rest)
