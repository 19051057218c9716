"""Commands about tasks: list them, and check one against the environment contract."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from esper.cli.app import (
    EXIT_FAILED,
    app,
)


@app.command()
def tasks(
    gym: Annotated[
        list[str] | None,
        typer.Option("--gym", help="Also describe gymnasium ids, e.g. --gym LunarLander-v3."),
    ] = None,
) -> None:
    """List the known tasks (built-in, registered, installed): spaces, time limit, device."""
    from rich.console import Console
    from rich.table import Table

    from esper.envs import describe_tasks

    table = Table(title="esper tasks (--task NAME, --task gym:ENV_ID or --task module:Factory)")
    for column in ("task", "gymnasium id", "obs", "actions", "steps", "on device", "from"):
        table.add_column(column, no_wrap=True)
    for row in describe_tasks(tuple(f"gym:{gym_id}" for gym_id in gym or ())):
        table.add_row(
            row.name,
            row.gym_id,
            row.obs or "-",
            row.action_space,
            str(row.max_episode_steps or "-"),
            "yes" if row.on_device else "no (CPU)",
            row.origin,
        )
    console = Console()
    console.width = max(console.width, 160)  # whole task names, even in a pipe
    console.print(table)


@app.command("check-env")
def check_env(
    task: Annotated[
        str,
        typer.Argument(
            metavar="TASK", help="Any --task name: built-in, gym:ID, registered or module:Factory."
        ),
    ],
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
    envs: Annotated[int, typer.Option("--envs", help="Copies the rules step.")] = 8,
    speed: Annotated[
        list[int] | None,
        typer.Option("--speed", help="Batch sizes to time (repeatable). Default 1, 64, 1024."),
    ] = None,
) -> None:
    """Check a task against the environment contract; exit 1 if a rule breaks."""
    from esper.envs.check import SPEED_SIZES
    from esper.envs.check import check_env as run_rules
    from esper.runtime.device import resolve_device

    if envs < 1:
        raise typer.BadParameter(f"must be >= 1 (got {envs})", param_hint="--envs")
    if speed and min(speed) < 1:
        raise typer.BadParameter(
            f"batch sizes must be >= 1 (got {min(speed)})", param_hint="--speed"
        )
    sizes = tuple(speed) if speed else SPEED_SIZES
    report = run_rules(task, resolve_device(device), num_envs=envs, speed_sizes=sizes)
    _print_check_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_FAILED)


def _print_check_report(report: Any) -> None:
    """A ``CheckReport`` as rich tables: facts, one row per rule, throughput."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from esper.envs.check import FAIL, PASS, SKIP

    console = Console()
    console.width = max(console.width, 120)  # whole lines of detail, even in a pipe
    facts = Table(
        title=f"esper check-env {report.task} (device {report.device})", show_header=False
    )
    for key, value in report.facts.items():
        facts.add_row(key, escape(value))
    console.print(facts)
    rules = Table("rule", "result", "detail")
    style = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for r in report.results:
        rules.add_row(escape(r.rule), f"[{style[r.status]}]{r.status}[/]", escape(r.detail))
    console.print(rules)
    if report.steps_per_second:
        speed = Table("num_envs", "env steps / s")
        for size, sps in report.steps_per_second.items():
            speed.add_row(str(size), f"{sps:,.0f}")
        console.print(speed)
    if report.ok:
        console.print(f"[green]{escape(report.task)}: every rule holds[/]")
    else:
        broken = escape(", ".join(report.failed()))
        console.print(f"[bold red]{escape(report.task)}: broken rules: {broken}[/]")
