"""The ``esper`` command line: a thin layer over ``esper.api``.

Bad input never shows a traceback: it is one line naming the flag and the fix,
and a non-zero exit code.
"""

from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path
from typing import Annotated, Any, NamedTuple, get_args, get_type_hints

import typer
from typer.core import TyperGroup

from esper.config import EDGE_WORDS, FIELDS, SETTING_FLAGS, PPOConfig
from esper.config_layers import default_text
from esper.errors import UserError
from esper.extras import install_hint
from esper.process import apply_process_settings
from esper.torchrun_env import is_main_process, rank

# Commands import what they need when they run: `esper sanctum` and `esper --help`
# should not pay for importing torch.

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
# Options that are another name for a setting: config.EDGE_WORDS says which.
EDGE_ALIASES = tuple(key for key in INVOCATION_OPTIONS if key in EDGE_WORDS)
# Setting -> what the user typed: the one place a setting becomes a flag.
CLI_NAMES = {
    **SETTING_FLAGS,
    **{key: option.flag.split("/")[0] for key, option in INVOCATION_OPTIONS.items()},
    "checkpoint": "--checkpoint",  # esper eval's choice of checkpoint
    "episodes": "--episodes",  # esper eval's episode count
    "video": "--video",  # esper eval's video file
    "video_episodes": "--video-episodes",
    "world_size": "--nproc",  # the ranks of a job (one process unless --nproc or torchrun)
    "seeds": "--seeds",  # esper seeds / esper tune
    "jobs": "--jobs",
    "timeout": "--timeout",
    "trials": "--trials",
    "space": "--space",
    "tune_dir": "--dir",
    "format": "--format",  # esper export's file format
    "output": "--output",  # esper export's file
}


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

    overrides = {key: value or None if value is False else value for key, value in options.items()}
    spoken = _typed_names(overrides, invocation)
    overrides |= {alias: invocation.pop(alias) for alias in EDGE_ALIASES}
    try:
        fields = api.field_names(overrides)
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
    """CLI_NAMES, with each setting given by its other flag (``--max-epochs``) named so."""
    typed = {
        EDGE_WORDS[alias]: CLI_NAMES[alias]
        for alias in EDGE_ALIASES
        if invocation[alias] is not None and settings[EDGE_WORDS[alias]] is None
    }
    return {**CLI_NAMES, **typed}


def _launch_ranks(nproc: int) -> int:
    """``--nproc N``: this command line again, minus --nproc, under torch's launcher."""
    from esper.errors import ConfigError
    from esper.training.launch import launch_local

    if nproc < 1:
        raise ConfigError("nproc", f"must be >= 1 (got {nproc})")
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
        str | None,
        typer.Option(
            "--checkpoint",
            help="Evaluate the checkpoint saved after batch N, or best (the best evaluation "
            "while training: checkpoints/best.pt). Default: the newest.",
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
    video: Annotated[
        Path | None,
        typer.Option(
            "--video",
            help=f"Also record episodes to this MP4 file ({install_hint('video')}).",
            show_default=False,
        ),
    ] = None,
    video_episodes: Annotated[
        int, typer.Option("--video-episodes", help="Episodes the --video file shows.")
    ] = 1,
) -> None:
    """Run a trained policy for complete episodes; append the result to telemetry.jsonl."""
    from esper.evaluate import evaluate, print_report

    chosen = int(checkpoint) if checkpoint is not None and checkpoint.isdigit() else checkpoint
    watch = {"video": video, "video_episodes": video_episodes}
    result = evaluate(
        run_dir, chosen, episodes, deterministic=deterministic, seed=seed, device=device, **watch
    )
    print_report(result)
    if video is not None:
        print(f"esper: wrote {video}")


@app.command("export")
def export_(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR", help="A run's --run-dir (it holds checkpoints/).", show_default=False
        ),
    ],
    format: Annotated[
        str, typer.Option("--format", help="onnx (needs the export extra) or torchscript.")
    ] = "onnx",
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Export the checkpoint saved after batch N, or best. Default: the newest.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write. Default: RUN_DIR/policy_batch_N.onnx (or .pt)."
        ),
    ] = None,
) -> None:
    """Write the deterministic policy, its observation normaliser folded in, as one file."""
    from esper.policy_export import export_policy

    chosen = int(checkpoint) if checkpoint is not None and checkpoint.isdigit() else checkpoint
    written = export_policy(run_dir, format, chosen, output)
    print(f"esper: wrote {written}")


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
    smooth: Annotated[
        int, typer.Option("--smooth", help="Average each run over this many batches.")
    ] = 1,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Name of each line, in order (repeat the option)."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of the return panel.")] = None,
    normalize: Annotated[
        bool,
        typer.Option("--normalize", help="Map each task's return range onto [0, 1]."),
    ] = False,
    stat: Annotated[
        str, typer.Option("--stat", help="Line through seeds: mean or iqm (interquartile mean).")
    ] = "mean",
) -> None:
    """Draw learning curves (needs the plot extra): return, losses, KL, throughput.

    Runs that differ only by seed are one line in a bootstrap 95% confidence band.
    """
    from esper.plot import plot_runs

    style = {"smooth": smooth, "labels": label, "title": title, "stat": stat}
    written = plot_runs(run_dirs, output, dpi=dpi, normalize=normalize, **style)
    print(f"esper: wrote {written}")


SET_OPTION = typer.Option(
    "--set", help="KEY=VALUE for any PPOConfig key, as esper ppo --set (repeatable)."
)
CONFIG_OPTION = typer.Option(
    "--config", help="TOML file of PPOConfig keys, as esper ppo --config.", show_default=False
)


@app.command()
def seeds(
    seeds: Annotated[
        str, typer.Option("--seeds", help="Seeds to train: 1-5, 1,3,7 or a mix (1-5,9).")
    ] = "1-5",
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="Seeds run at once, each pinned to its own slice of the CPUs. "
            "Default: the CPUs this process may use.",
            show_default=False,
        ),
    ] = None,
    parent: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Parent dir: each seed's run in DIR/seed-S, the table in DIR/seeds.md and "
            "DIR/seeds.json. Default: runs/<task>-seeds.",
            show_default=False,
        ),
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="As esper ppo --task.")] = None,
    episodes: Annotated[
        int | None, typer.Option("--episodes", help="Batches per seed, as esper ppo --episodes.")
    ] = None,
    config_file: Annotated[Path | None, CONFIG_OPTION] = None,
    settings: Annotated[list[str] | None, SET_OPTION] = None,
    device: Annotated[str | None, typer.Option("--device", help="As esper ppo --device.")] = None,
    target: Annotated[
        float | None,
        typer.Option("--target", help="Add a column: the first batch whose mean reaches this."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Exit 1 unless every seed's last-5 mean reaches this."),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds a seed may run before it is stopped.")
    ] = 6 * 3600.0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the runs and tables already in --dir.")
    ] = False,
) -> None:
    """Train one config on many seeds in parallel processes; write a table of them
    (esper plot DIR draws them as one line with a band). Exit 1 if a seed failed."""
    from esper import api
    from esper.config import parse_assignments
    from esper.sweep import Sweep, affinity, markdown_table, parse_seeds, run_sweep, write_tables

    pairs = list(settings or ())
    layers = {**parse_assignments(pairs), "task": task, "n_batches": episodes, "device": device}
    config = api.make_config(config_file, layers)  # one line for a bad setting, before any run
    sweep = Sweep(
        parse_seeds(seeds),
        parent or Path("runs") / f"{config.task.replace(':', '_')}-seeds",
        task=task,
        episodes=episodes,
        config_file=config_file,
        settings=pairs,
        device=device,
        jobs=len(affinity()) if jobs is None else jobs,
        timeout=timeout,
        overwrite=overwrite,
    )
    runs = run_sweep(sweep)
    written = write_tables(sweep, runs, target)
    print(f"\n{markdown_table(runs, target)}\n\nesper: wrote {', '.join(map(str, written))}")
    failed = any(r.status != "completed" for r in runs)
    short = threshold is not None and any((r.last5 or -math.inf) < threshold for r in runs)
    if failed or short:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def tune(
    trials: Annotated[
        int, typer.Option("--trials", help="Finished trials the study should hold.")
    ] = 20,
    tune_dir: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="The study (study.db), each trial's run and best.toml; the same dir and "
            "study name continue the study. Default: runs/tune-<task>.",
            show_default=False,
        ),
    ] = None,
    space: Annotated[
        Path | None,
        typer.Option(
            "--space",
            help="TOML search space: [KEY] type = float|int|categorical, low/high/log or "
            "choices. Default: learning rate, entropy, clipping, GAE, discount, epochs, "
            "minibatches, value coefficient, gradient clipping.",
            show_default=False,
        ),
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="As esper ppo --task.")] = None,
    episodes: Annotated[
        int | None, typer.Option("--episodes", help="Batches per trial, as esper ppo --episodes.")
    ] = None,
    config_file: Annotated[Path | None, CONFIG_OPTION] = None,
    settings: Annotated[list[str] | None, SET_OPTION] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every trial and the sampler.")] = 1,
    device: Annotated[str | None, typer.Option("--device", help="As esper ppo --device.")] = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="Study name. Default: esper-<task>.", show_default=False),
    ] = None,
) -> None:
    """Search hyperparameters with Optuna (the tune extra): TPE sampling, median pruning
    on each batch's mean return; the best config goes to DIR/best.toml for --config."""
    from esper.config import parse_assignments
    from esper.tune import Study
    from esper.tune import tune as run_study

    name = (task or "cartpole").replace(":", "_")
    result = run_study(
        Study(
            tune_dir or Path("runs") / f"tune-{name}",
            trials,
            task=task,
            episodes=episodes,
            config_file=config_file,
            settings=parse_assignments(list(settings or ())),
            seed=seed,
            device=device,
            space_file=space,
            name=study,
        )
    )
    best = "-" if result.best_value is None else f"{result.best_value:.2f}"
    baseline = "-" if result.baseline_value is None else f"{result.baseline_value:.2f}"
    print(
        f"esper: study {result.study_name}: {result.trials} trials ({result.completed} "
        f"completed, {result.pruned} pruned) in {result.seconds:.0f} s; best last-5 mean "
        f"{best} (trial {result.best_trial}), the base config's {baseline}"
    )
    if result.best_file is not None:
        print(f"esper: wrote {result.best_file} (esper ppo --config {result.best_file})")


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
            str(row.obs_dim),
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
    from esper.device import resolve_device
    from esper.envs.check import SPEED_SIZES
    from esper.envs.check import check_env as run_rules

    if envs < 1:
        raise typer.BadParameter(f"must be >= 1 (got {envs})", param_hint="--envs")
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


def main() -> None:
    """Console-script entry point."""
    apply_process_settings()  # process-wide, so the command's own, never esper.train()'s
    app(prog_name="esper")


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    main()
