"""``esper plot``: learning curves of one or more runs, drawn from their telemetry.jsonl.

A run that was resumed has several TRAINING_STARTED events in one file; it is
drawn as one line, because ``env_steps`` counts the steps before a resume. A
resume from batch K supersedes whatever an earlier invocation logged after K
(a crash past the last checkpoint, or an ``--overwrite`` resume), so each batch
is drawn once, as the surviving run saw it.

Runs that differ only by their seed are one experiment, drawn as one line in a
confidence band (``esper.runs.seed_groups``).

Matplotlib is an optional extra (``esper-rl[plot]``) and is used through its Agg
canvas directly, so plotting never touches pyplot's global state or a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from esper.envs.gym_ids import gym_id_of
from esper.envs.registry import TASKS
from esper.runs.curves import (
    TASK_STATISTIC,
    RunCurves,
    expand_run_dirs,
    read_curves,
    run_name,
)
from esper.runs.seed_groups import STATISTICS, RunGroup, group_runs
from esper.runtime.errors import ConfigError
from esper.runtime.extras import import_extra
from esper.runtime.outputs import check_output_file
from esper.telemetry.events import EvaluationCompletedPayload

# The smaller panels: (BATCH_COMPLETED field, title, y-axis label).
SMALL_PANELS = (
    ("policy_loss", "Policy loss", "clipped surrogate loss"),
    ("value_loss", "Value loss", "value loss"),
    ("approx_kl", "Approximate KL", "KL(old ‖ new)"),
    ("sps", "Throughput", "env steps / s"),
)
# Drawn on a log axis when they are positive and span more than this factor.
LOG_SCALE = {"value_loss": 20.0}
# Worst and best episode return each task allows, by gymnasium id: evaluation
# bars stay inside it, and --normalize maps it onto [0, 1].
RETURN_RANGES = {
    "CartPole-v1": (0.0, 500.0),
    "Acrobot-v1": (-500.0, 0.0),
    "MountainCar-v0": (-200.0, 0.0),
    "MountainCarContinuous-v0": (-99.9, 100.0),  # action cost 0.1 a^2 for 999 steps; the goal +100
    "Pendulum-v1": (-200 * (math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2), 0.0),  # 200 worst steps
}


def return_range(task: str) -> tuple[float, float] | None:
    """The task's worst and best episode return, if esper knows them."""
    gym_id = TASKS[task].spec.gym_id if task in TASKS else gym_id_of(task)
    return RETURN_RANGES.get(gym_id or "")


def check_scales(groups: Sequence[RunGroup], normalize: bool) -> None:
    """Returns of tasks with different scales share an axis only when normalised."""
    tasks = sorted({group.task for group in groups})
    ranges = {task: return_range(task) for task in tasks}
    if normalize:
        unknown = [task for task, bounds in ranges.items() if bounds is None]
        if unknown:
            raise ConfigError(
                "--normalize", f"no known return range for {', '.join(unknown)} to normalise by"
            )
    elif len(set(ranges.values())) > 1 or (len(tasks) > 1 and None in ranges.values()):
        raise ConfigError(
            "RUN_DIR",
            f"tasks {', '.join(tasks)} have different return scales; "
            "plot them separately or pass --normalize",
        )


def _labels(run_dirs: Sequence[Path]) -> list[str]:
    """Run dir names; the whole path where two runs share a name."""
    names = [run_name(d) for d in run_dirs]
    return [str(d) if names.count(n) > 1 else n for d, n in zip(run_dirs, names, strict=True)]


def _format_count(value: float, _position: int) -> str:
    """Axis ticks such as 0, 250k, 1.5M (env steps, steps per second)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def plot_runs(
    run_dirs: Sequence[Path | str],
    output: Path | str,
    *,
    dpi: int = 150,
    figsize: tuple[float, float] = (12.0, 7.5),
    smooth: int = 1,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    normalize: bool = False,
    stat: str = "mean",
) -> Path:
    """Draw the runs' curves to ``output`` (its suffix picks the format); return the path.

    Runs that differ only by seed are one line with a bootstrap 95% band;
    ``smooth`` averages each run over that many batches first; ``labels`` name
    the lines in order; ``normalize`` maps each task's return range onto [0, 1].
    """
    import_extra("matplotlib", "plot", "plot")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

    if not run_dirs:
        raise ConfigError("RUN_DIR", "name at least one run directory")
    if smooth < 1:
        raise ConfigError("--smooth", f"must be a number of batches >= 1 (got {smooth})")
    if dpi < 1:
        raise ConfigError("--dpi", f"must be >= 1 (got {dpi})")
    if stat not in STATISTICS:
        raise ConfigError("--stat", f"must be one of {', '.join(STATISTICS)} (got {stat!r})")
    output = check_output_file(output, "--output", makes_parents=True)  # before any reading
    paths = expand_run_dirs([Path(d) for d in run_dirs])  # a sweep's parent: its runs
    runs = [read_curves(d, label) for d, label in zip(paths, _labels(paths), strict=True)]
    groups = group_runs(runs, labels)
    check_scales(groups, normalize)

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    formats = canvas.get_supported_filetypes()
    if output.suffix.lstrip(".").lower() not in formats:
        raise ConfigError(
            "--output", f"cannot write '{output.suffix}' files; use one of .{', .'.join(formats)}"
        )
    panels = [*SMALL_PANELS, *task_panels(runs)]
    columns = len(SMALL_PANELS)
    rows = math.ceil(len(panels) / columns)
    if rows > 1:  # a task's statistics: the figure grows a row per four
        fig.set_figheight(figsize[1] * (2.3 + rows) / 3.3)
    grid = fig.add_gridspec(1 + rows, columns, height_ratios=(2.3, *[1.0] * rows))
    main = fig.add_subplot(grid[0, :])
    small = [fig.add_subplot(grid[1 + i // columns, i % columns]) for i in range(len(panels))]
    palette = colormaps["tab10"]

    for index, group in enumerate(groups):
        color = palette(index % palette.N)
        _draw_returns(main, group, color, smooth=smooth, stat=stat, normalize=normalize)
        for ax, (name, _, _) in zip(small, panels, strict=True):
            steps, centre, _, _ = group.band(name, smooth=smooth, stat=stat)
            ax.plot(steps, centre, color=color, linewidth=1.2)

    tasks = sorted({group.task for group in groups})
    team = any(run.n_agents > 1 for run in runs)  # several agents: a copy's episode, the team's
    heading = "Team return" if team else "Episodic return"
    main.set_title(title or f"{heading}: {', '.join(tasks)}", loc="left", fontweight="bold")
    ylabel = f"mean {'team ' if team else ''}return of episodes finished in the batch"
    if normalize:
        ylabel = "return, normalised (0 worst, 1 best possible)"
    main.set_ylabel(ylabel)
    _legend(main, groups, stat)
    for ax, (name, title_, ylabel_) in zip(small, panels, strict=True):
        ax.set_title(title_, loc="left", fontsize="medium", fontweight="bold")
        ax.set_ylabel(ylabel_, fontsize="small")
        ax.tick_params(labelsize="small")
        if name == "sps":
            ax.yaxis.set_major_formatter(FuncFormatter(_format_count))
        if _wants_log_axis(runs, name):
            ax.set_yscale("log")
            ax.set_ylabel(f"{ylabel_} (log scale)", fontsize="small")
            ax.yaxis.set_major_formatter(LogFormatter())  # 10, 100 rather than 10^1, 10^2
            ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    # One x range for every panel (not sharex, which would also share the tick
    # locator, and the narrow panels need fewer ticks than the wide one).
    main.margins(x=0.02)
    main.set_xlim(left=0)  # training starts at step 0
    for ax in small:
        ax.set_xlim(main.get_xlim())
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    for ax in (main, *small):
        ax.xaxis.set_major_formatter(FuncFormatter(_format_count))
        ax.set_xlabel("environment steps", fontsize="small" if ax is not main else None)
        ax.grid(True, which="major", alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)

    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=dpi)
    return output


def task_panels(runs: Sequence[RunCurves]) -> list[tuple[str, str, str]]:
    """A small panel per task statistic the runs reported (TELE-120), in the
    order first seen: (series name, title, y-axis label)."""
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.task_statistic_names()))
    return [(TASK_STATISTIC + name, name, "task statistic") for name in names]


def _legend(ax: Any, groups: Sequence[RunGroup], stat: str) -> None:
    """The lines by name, then one grey key each for the band, evaluations and resumes."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    runs = [run for group in groups for run in group.runs]
    if any(len(group.runs) > 1 for group in groups):
        centre = "interquartile mean" if stat == "iqm" else "mean"
        handles.append(
            Patch(color="grey", alpha=0.25, label=f"{centre} over seeds, bootstrap 95% CI")
        )
    if any(run.evaluation_points() for run in runs):
        handles.append(
            Line2D([], [], color="grey", marker="D", ls="none", label="evaluation: mean ± std")
        )
    if any(run.resumes for run in runs):
        handles.append(
            Line2D([], [], color="grey", linestyle=":", label="resumed from a checkpoint")
        )
    ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.9)


def _draw_returns(
    ax: Any, group: RunGroup, color: Any, *, smooth: int, stat: str, normalize: bool
) -> None:
    """One line on the main panel: its returns and band, resume marks and evaluations."""
    bounds = return_range(group.task)
    lo, hi = bounds if bounds else (-math.inf, math.inf)

    def scaled(values: Sequence[float]) -> list[float]:
        if not normalize:
            return list(values)
        return [(v - lo) / (hi - lo) for v in values]

    steps, centre, low, high = group.band("episode_return_mean", smooth=smooth, stat=stat)
    ax.plot(steps, scaled(centre), color=color, linewidth=1.8, label=group.label)
    if len(group.runs) > 1:
        ax.fill_between(steps, scaled(low), scaled(high), color=color, alpha=0.25, linewidth=0)
    for run in group.runs:
        for resumed_at in run.resumes:
            ax.axvline(resumed_at, color=color, linestyle=":", linewidth=1.0, alpha=0.7)
        points = run.evaluation_points()
        if not points:
            continue
        means = [e.return_mean for _, e in points]
        bars = [clipped_bar(e, bounds) for _, e in points]
        bottoms, tops = [b for b, _ in bars], [t for _, t in bars]
        ax.errorbar(
            [x for x, _ in points],
            scaled(means),
            yerr=[
                [m - b for m, b in zip(scaled(means), scaled(bottoms), strict=True)],
                [t - m for m, t in zip(scaled(means), scaled(tops), strict=True)],
            ],
            fmt="D",
            color=color,
            markersize=6,
            markeredgecolor="white",
            capsize=4,
            linestyle="none",
            zorder=3,
        )


def clipped_bar(
    evaluation: EvaluationCompletedPayload, bounds: tuple[float, float] | None
) -> tuple[float, float]:
    """Mean ± std of an evaluation, cut where it would leave the returns the task allows."""
    lo, hi = bounds if bounds else (-math.inf, math.inf)
    mean, std = evaluation.return_mean, evaluation.return_std
    return max(mean - std, lo), min(mean + std, hi)


def _wants_log_axis(runs: Sequence[RunCurves], name: str) -> bool:
    """A log axis for a positive series that spans orders of magnitude."""
    if name not in LOG_SCALE:
        return False
    values = [v for run in runs for v in run.series(name)[1]]
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SCALE[name]
