"""The site's command-line page is generated from the Typer app, so it cannot drift."""

from __future__ import annotations

import typer

from esper.cli import app
from esper.cli.reference import cli_reference_markdown


def test_every_command_and_every_flag_is_on_the_page() -> None:
    page = cli_reference_markdown()
    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="esper")
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert f"## `esper {name}`" in page
        for param in command.get_params(context):
            if param.name == "help" or param.param_type_name == "argument":
                continue
            assert f"`{param.opts[0]}`" in page, f"esper {name} {param.opts[0]}"


def test_a_flag_s_help_is_the_page_s_text() -> None:
    """What ``esper ppo --help`` says of --episodes is what the page says."""
    page = cli_reference_markdown()
    ppo = typer.main.get_command(app).commands["ppo"]
    [episodes] = [param for param in ppo.params if param.opts[0] == "--episodes"]
    assert f"| `--episodes` | {' '.join(episodes.help.split())} |" in page
