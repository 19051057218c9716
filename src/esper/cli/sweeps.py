"""Commands over many runs: a seed sweep and a hyperparameter search."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from esper.cli.app import (
    EXIT_FAILED,
    app,
    set_names,
)

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
            "Default: the CPUs this process may use (its affinity, capped by a cgroup quota).",
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
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the runs and tables already in --dir. Without it, new seeds "
            "join an earlier sweep's table there (same settings).",
        ),
    ] = False,
) -> None:
    """Train one config on many seeds in parallel processes; write a table of them
    (esper plot DIR draws them as one line with a band). Exit 1 if a seed failed."""
    from esper.config.run import make_config
    from esper.config.schema import task_slug
    from esper.config.text import parse_assignments
    from esper.runs.lock import one_process
    from esper.runtime.errors import UserError
    from esper.runtime.threads import usable_cpus
    from esper.workflows.sweep import Sweep, all_runs, check, parse_seeds, run_sweep
    from esper.workflows.sweep_tables import markdown_table, write_tables

    pairs = list(settings or ())
    flags = {"task": task, "n_batches": episodes, "device": device}
    layers = {**parse_assignments(pairs), **{k: v for k, v in flags.items() if v is not None}}
    try:  # one line for a bad setting, before any run
        config = make_config(config_file, layers)
    except UserError as exc:
        given = {key for key, value in flags.items() if value is not None}
        raise exc.in_words(set_names(pairs, given)) from None
    sweep = Sweep(
        parse_seeds(seeds),
        parent or Path("runs") / f"{task_slug(config.task)}-seeds",
        task=task,
        episodes=episodes,
        config_file=config_file,
        settings=pairs,
        device=device,
        jobs=usable_cpus() if jobs is None else jobs,
        timeout=timeout,
        overwrite=overwrite,
    )
    check(sweep)  # bad input: one line before the folder is made
    with one_process(sweep.parent, "sweep_dir", "esper seeds"):  # its tables: one writer
        ran = run_sweep(sweep)
        runs = all_runs(sweep, ran)  # beside the seeds an earlier sweep here ran
        written = write_tables(sweep, runs, target)
    print(f"\n{markdown_table(runs, target)}\n\nesper: wrote {', '.join(map(str, written))}")
    failed = any(r.status != "completed" for r in ran)
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
    from esper.config.schema import task_slug
    from esper.config.text import parse_assignments
    from esper.runtime.errors import UserError
    from esper.workflows.tune import Study
    from esper.workflows.tune import tune as run_study

    name = task_slug(task or "cartpole")
    pairs = list(settings or ())
    try:
        result = run_study(
            Study(
                tune_dir or Path("runs") / f"tune-{name}",
                trials,
                task=task,
                episodes=episodes,
                config_file=config_file,
                settings=parse_assignments(pairs),
                seed=seed,
                device=device,
                space_file=space,
                name=study,
            )
        )
    except UserError as exc:  # a setting given by --set is blamed on --set KEY
        flags = {"task": task, "n_batches": episodes, "device": device}
        raise exc.in_words(set_names(pairs, {k for k, v in flags.items() if v})) from None
    best = "-" if result.best_value is None else f"{result.best_value:.2f}"
    baseline = "-" if result.baseline_value is None else f"{result.baseline_value:.2f}"
    print(
        f"esper: study {result.study_name}: {result.trials} trials ({result.completed} "
        f"completed, {result.pruned} pruned) in {result.seconds:.0f} s; best last-5 mean "
        f"{best} (trial {result.best_trial}), the base config's {baseline}"
    )
    if result.best_file is not None:
        print(f"esper: wrote {result.best_file} (esper ppo --config {result.best_file})")
