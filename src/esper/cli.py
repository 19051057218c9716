"""The ``esper`` command line: a thin layer over ``esper.api``.

Bad input never shows a traceback: it is one line naming the flag and the fix,
and a non-zero exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from esper.errors import UserError

# Commands import what they need when they run: `esper sanctum` and `esper --help`
# should not pay for importing torch.

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_TELEMETRY_INCOMPLETE = 3


class OneLineErrors(TyperGroup):
    """Every user error becomes one line on stderr and a non-zero exit, no traceback.

    Overriding ``main`` covers both the console script and Typer's CliRunner.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            code = _fail("aborted", 130)
        except NoArgsIsHelpError as exc:
            print(exc.format_message())
            code = 0
        except ClickException as exc:
            code = _fail(f"error: {_one_line(exc.format_message())}", EXIT_BAD_INPUT)
        except UserError as exc:
            code = _fail(f"error: {exc.one_line()}", EXIT_BAD_INPUT)
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(line: str, code: int) -> int:
    if _is_main_rank():  # under torchrun every rank sees the same bad input: say it once
        print(f"esper: {line}", file=sys.stderr, flush=True)
    return code


def _is_main_rank() -> bool:
    return os.environ.get("RANK", "0") == "0"


app = typer.Typer(
    cls=OneLineErrors,
    name="esper",
    help=(
        "PPO on batched tensor environments, with built-in telemetry.\n\n"
        "A batch is one PPO round: every one of --envs environments steps --max-epochs "
        "times, then one PPO update. --episodes N runs N batches; --start-episode K "
        "resumes after batch K, so the run ends at batch max_batches = K + N."
    ),
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root() -> None:
    """esper: PPO on batched tensor environments, with built-in telemetry."""


@app.command()
def ppo(
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes",
            help="Batches to run in this invocation (>= 1). Default 50.",
            show_default=False,
        ),
    ] = None,
    start_episode: Annotated[
        int | None,
        typer.Option(
            "--start-episode",
            help=(
                "Resume offset: batches already completed (>= 0). K > 0 loads "
                "RUN_DIR/checkpoints/batch_K.pt and the run ends at batch K + --episodes."
            ),
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="Built-in task to train on. Default cartpole.", show_default=False
        ),
    ] = None,
    envs: Annotated[
        int | None,
        typer.Option("--envs", help="Environments stepped together (n_envs).", show_default=False),
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(
            "--max-epochs",
            help="Environment steps per env in one batch (the rollout horizon).",
            show_default=False,
        ),
    ] = None,
    ppo_epochs: Annotated[
        int | None,
        typer.Option(
            "--ppo-epochs", help="Passes of the PPO update over each batch.", show_default=False
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed.", show_default=False)
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file of PPOConfig keys (unknown keys are errors); flags override it.",
            show_default=False,
        ),
    ] = None,
    run_dir: Annotated[
        str | None,
        typer.Option(
            "--run-dir",
            help="Where telemetry.jsonl and checkpoints/ go. Default runs/<task>, "
            "which a resume finds again.",
            show_default=False,
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            "--checkpoint-every",
            help="Batches between checkpoints (the last batch always saves). Default 10.",
            show_default=False,
        ),
    ] = None,
    keep_checkpoints: Annotated[
        int | None,
        typer.Option(
            "--keep-checkpoints",
            help="Keep only the newest N checkpoints (the newest is never deleted). "
            "Default: keep all.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Allow a fresh run to replace the run dir's checkpoints and telemetry "
            "(or a resume to replace later checkpoints).",
        ),
    ] = False,
    compile_loss: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the PPO loss: ~30 s of compilation first, faster "
            "updates after; for long runs with thousands of envs.",
        ),
    ] = False,
    sanctum: Annotated[
        bool | None,
        typer.Option(
            "--sanctum/--no-sanctum",
            help="Show the Sanctum dashboard when stdout is a terminal (default), "
            "or print one plain line per batch.",
            show_default=False,
        ),
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also write TensorBoard scalars to RUN_DIR/tensorboard/ "
            "(pip install 'esper[tensorboard]').",
        ),
    ] = False,
    nproc: Annotated[
        int | None,
        typer.Option(
            "--nproc",
            help="Train over N processes on this machine: the same as torchrun "
            "--standalone --nproc-per-node N -m esper ppo ... (--envs is the total).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train PPO: --episodes batches, resumable with --start-episode."""
    if nproc is not None:
        raise typer.Exit(_launch_ranks(nproc))
    from esper import api

    overrides = {
        "n_batches": episodes,
        "start_batch": start_episode,
        "task": task,
        "n_envs": envs,
        "horizon": max_epochs,
        "update_epochs": ppo_epochs,
        "device": device,
        "seed": seed,
        "run_dir": run_dir,
        "checkpoint_every": checkpoint_every,
        "keep_checkpoints": keep_checkpoints,
        "overwrite": overwrite or None,
        "compile": compile_loss or None,
    }
    result = api.train_from_cli(config, overrides, sanctum=sanctum, tensorboard=tensorboard)
    if result.status == "interrupted":
        if _is_main_rank():
            print(f"esper: interrupted; resume with: {result.resume_command}", file=sys.stderr)
        raise typer.Exit(143 if result.exit_signal == "SIGTERM" else 130)
    if result.status == "failed":
        where = "" if _is_main_rank() else f" (rank {os.environ['RANK']})"
        print(f"esper: training failed{where}: {result.reason}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED)
    if result.telemetry_failures:
        names = ", ".join(f"{f.name} ({f.first_error})" for f in result.telemetry_failures)
        print(f"esper: training completed but telemetry is incomplete: {names}", file=sys.stderr)
        raise typer.Exit(EXIT_TELEMETRY_INCOMPLETE)


def _launch_ranks(nproc: int) -> int:
    """``--nproc N``: this command line again, minus --nproc, under torch's launcher."""
    from esper.config import ConfigError
    from esper.training.distributed import launch_local

    if nproc < 1:
        raise ConfigError("--nproc", f"must be >= 1 (got {nproc})")
    argv = sys.argv[sys.argv.index("ppo") + 1 :]
    rest = [a for a in argv if not a.startswith("--nproc=")]
    if "--nproc" in rest:
        at = rest.index("--nproc")
        del rest[at : at + 2]
    return launch_local(nproc, rest)


@app.command()
def sanctum(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR",
            help="A run's --run-dir (it holds telemetry.jsonl).",
            show_default=False,
        ),
    ],
    once: Annotated[
        bool,
        typer.Option("--once", help="Print one snapshot of the dashboard and exit."),
    ] = False,
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            min=40,
            help="Columns to draw in. Default: the terminal's; 120 in a pipe.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Show the Sanctum dashboard of a running, finished or not yet started run
    (q or Ctrl-C quits)."""
    from esper.sanctum.attach import attach

    raise typer.Exit(attach(run_dir, once=once, width=width))


@app.command("eval")
def eval_(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR", help="A run's --run-dir (it holds checkpoints/).", show_default=False
        ),
    ],
    checkpoint: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            help="Evaluate the checkpoint saved after batch N. Default: the newest.",
            show_default=False,
        ),
    ] = None,
    episodes: Annotated[
        int, typer.Option("--episodes", help="Complete episodes to run (>= 1).")
    ] = 100,
    deterministic: Annotated[
        bool,
        typer.Option(
            "--deterministic/--stochastic",
            help="Take the most likely action, or sample actions as in training.",
        ),
    ] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the evaluation episodes.")] = 0,
    device: Annotated[
        str, typer.Option("--device", help="auto (CUDA when available, else CPU), cpu, cuda:N.")
    ] = "auto",
) -> None:
    """Run a trained policy for complete episodes; append the result to telemetry.jsonl."""
    from esper.evaluate import evaluate, print_report

    result = evaluate(
        run_dir, checkpoint, episodes, deterministic=deterministic, seed=seed, device=device
    )
    print_report(result)


@app.command()
def plot(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="RUN_DIR",
            help="Runs to draw, overlaid (each holds telemetry.jsonl).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Image to write; the suffix picks the format."),
    ] = Path("curves.png"),
    dpi: Annotated[int, typer.Option("--dpi", help="Resolution of the image.")] = 150,
) -> None:
    """Draw learning curves (pip install 'esper[plot]'): return, losses, KL, throughput."""
    from esper.plot import plot_runs

    print(f"esper: wrote {plot_runs(run_dirs, output, dpi=dpi)}")


@app.command()
def tasks(
    gym: Annotated[
        list[str] | None,
        typer.Option("--gym", help="Also describe gymnasium ids, e.g. --gym LunarLander-v3."),
    ] = None,
) -> None:
    """List the built-in tasks: spaces, time limit, and whether they step on the device."""
    from rich.console import Console
    from rich.table import Table

    from esper.envs import describe_tasks

    table = Table(title="esper tasks (--task NAME, or --task gym:ENV_ID)")
    for column in ("task", "gymnasium id", "obs", "actions", "steps", "on device"):
        table.add_column(column, no_wrap=True)
    for row in describe_tasks(tuple(f"gym:{gym_id}" for gym_id in gym or ())):
        table.add_row(
            row.name,
            row.gym_id,
            str(row.obs_dim),
            row.action_space,
            str(row.max_episode_steps or "-"),
            "yes" if row.on_device else "no (CPU)",
        )
    console = Console()
    console.width = max(console.width, 100)  # whole task names, even in a pipe
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="esper")


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    main()
