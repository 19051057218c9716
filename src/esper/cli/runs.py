"""Commands over one run directory: watch it, evaluate, export and plot it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esper.cli.app import app
from esper.runtime.errors import ConfigError
from esper.runtime.extras import install_hint

# RUN_DIR of the commands that read a run's checkpoints.
CHECKPOINTS_RUN_DIR = typer.Argument(
    metavar="RUN_DIR", help="A run's --run-dir (it holds checkpoints/).", show_default=False
)


def checkpoint_option(what: str) -> typer.models.OptionInfo:
    """``--checkpoint N|best`` of a command that does ``what`` with one checkpoint."""
    return typer.Option(
        "--checkpoint",
        help=f"{what} the checkpoint saved after batch N, or best (the best evaluation "
        "while training: checkpoints/best.pt). Default: the newest.",
        show_default=False,
    )


def chosen_checkpoint(text: str | None) -> int | str | None:
    """``--checkpoint``'s text as ``load_policy`` takes it: a batch number, or a word."""
    return int(text) if text is not None and text.isdigit() else text


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
        Path | None,
        typer.Argument(
            metavar="[RUN_DIR]",
            help="A run's --run-dir (it holds checkpoints/); with --scripted, where to "
            "record the result (optional).",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[str | None, checkpoint_option("Evaluate")] = None,
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
    scripted: Annotated[
        str | None,
        typer.Option(
            "--scripted",
            help="Run the task's scripted policy NAME instead of a trained one (a baseline: "
            "grow-mlp has never, all-at-start, plateau, random); needs --task.",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option("--task", help="The task a --scripted policy plays.", show_default=False),
    ] = None,
) -> None:
    """Run a trained policy for complete episodes; append the result to telemetry.jsonl."""
    from esper.workflows.evaluate import evaluate, print_report

    if scripted is not None or task is not None:
        _eval_scripted(scripted, task, episodes, seed, device, run_dir)
        return
    if run_dir is None:
        raise ConfigError("RUN_DIR", "name a run to evaluate, or give --scripted NAME --task TASK")

    chosen = chosen_checkpoint(checkpoint)
    watch = {"video": video, "video_episodes": video_episodes}
    result = evaluate(
        run_dir, chosen, episodes, deterministic=deterministic, seed=seed, device=device, **watch
    )
    print_report(result)
    if video is not None:
        print(f"esper: wrote {video}")


def _eval_scripted(
    name: str | None, task: str | None, episodes: int, seed: int, device: str, run_dir: Path | None
) -> None:
    from esper.workflows.scripted import evaluate_scripted

    if name is None or task is None:
        missing, given = ("scripted", "task") if name is None else ("task", "scripted")
        raise ConfigError(missing, f"{{{given}}} needs {{{missing}}}", mentions=(given, missing))
    event = evaluate_scripted(task, name, episodes, seed=seed, device=device, run_dir=run_dir)
    data = event.data
    print(
        f"{task}, scripted {name}: return {data.return_mean:.4f} ± {data.return_std:.4f} "
        f"(min {data.return_min:.4f}, max {data.return_max:.4f}) over {data.episodes} "
        f"episodes, seed {seed}"
    )
    for statistic, value in data.episode_statistics.items():
        print(f"  {statistic} (mean at episode end): {value:.4f}")


@app.command("export")
def export_(
    run_dir: Annotated[Path, CHECKPOINTS_RUN_DIR],
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="onnx (needs the export extra) or torchscript. Default: onnx when the "
            "export extra is installed, else torchscript.",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[str | None, checkpoint_option("Export")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write. Default: RUN_DIR/policy_batch_N.onnx (or .pt)."
        ),
    ] = None,
    stochastic: Annotated[
        bool,
        typer.Option(
            "--stochastic",
            help="Sample as in training instead of the most likely action; the file takes "
            "the noise as its second input (docs/using-a-policy.md).",
        ),
    ] = False,
) -> None:
    """Write the policy, its observation normaliser folded in, as one file: the
    deterministic one, or with --stochastic the sampling one."""
    from esper.workflows.export import export_policy

    chosen = chosen_checkpoint(checkpoint)
    written = export_policy(run_dir, format, chosen, output, stochastic=stochastic)
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
    from esper.workflows.plot import plot_runs

    style = {"smooth": smooth, "labels": label, "title": title, "stat": stat}
    written = plot_runs(run_dirs, output, dpi=dpi, normalize=normalize, **style)
    print(f"esper: wrote {written}")
