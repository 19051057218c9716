"""The command-line reference as Markdown, read from the Typer app itself.

Typer builds on its own copy of click, so parameters are read by their
attributes (``opts``, ``help``, ``default``), not by click's classes.

The documentation site's CLI page is this function's output at build time, so
a flag added, renamed or re-documented in ``cli/`` shows there with no second
copy to keep in step.
"""

from __future__ import annotations

from typing import Any

import typer

from esper.cli import app


def _names(param: Any) -> str:
    if param.param_type_name == "argument":
        return f"`{(param.metavar or param.name).upper()}`"
    return " / ".join(f"`{name}`" for name in [*param.opts, *param.secondary_opts])


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def command_markdown(name: str, command: Any) -> str:
    """One command: its usage line, its help, and a table of its parameters."""
    context = command.context_class(command, info_name=f"esper {name}")
    usage = " ".join(command.collect_usage_pieces(context))
    rows = [
        f"| {_names(param)} | {_cell(getattr(param, 'help', None) or '')} |"
        for param in command.get_params(context)
        if not getattr(param, "hidden", False) and param.name != "help"
    ]
    table = ["| parameter | what it does |", "|---|---|", *rows]
    return "\n".join(
        [
            f"## `esper {name}`",
            "",
            f"```text\nesper {name} {usage}\n```",
            "",
            (command.help or "").strip(),
            "",
            *table,
        ]
    )


def cli_reference_markdown() -> str:
    """Every ``esper`` command, in the order ``esper --help`` lists them."""
    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="esper")
    sections = [
        command_markdown(name, group.get_command(context, name))
        for name in group.list_commands(context)
    ]
    return "\n\n".join([(group.help or "").strip(), *sections]) + "\n"
