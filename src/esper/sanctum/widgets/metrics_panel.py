"""Metrics panel: episode returns (with a sparkline) and the latest PPO statistics."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.health import HEALTH_STYLE, assess
from esper.sanctum.schema import EvaluationStats, ReturnStats, SanctumSnapshot
from esper.sanctum.sparkline import sparkline

# (label, PPOStats field, format spec), two per row.
PPO_ROWS: tuple[tuple[tuple[str, str, str], tuple[str, str, str]], ...] = (
    (("Policy loss", "policy_loss", ".4f"), ("Value loss", "value_loss", ".4g")),
    (("Entropy", "entropy", ".4f"), ("Approx KL", "approx_kl", ".4f")),
    (("Clip frac", "clip_fraction", ".3f"), ("Expl var", "explained_variance", ".3f")),
    (("LR", "learning_rate", ".2e"), ("Grad norm", "grad_norm", ".3g")),
)
SPARKLINE_WIDTH = 32


def _returns(r: ReturnStats, n_agents: int = 1) -> Text:
    """The batch's returns: with several agents, the team's (per copy's episode)."""
    label = "Team return  " if n_agents > 1 else "Return  "
    if r.mean is None:
        return Text.assemble(label, ("waiting (no episode finished yet)", "dim"))
    return Text.assemble(
        label,
        (
            f"mean {fmt.number(r.mean, '.1f')}  min {fmt.number(r.min, '.1f')}  "
            f"max {fmt.number(r.max, '.1f')}",
            "bold",
        ),
        "\n        ",
        (sparkline(r.history, SPARKLINE_WIDTH), "cyan"),
        f"  length {fmt.number(r.length_mean, '.1f')}",
        (f"  (batch {r.batch}: {r.episodes_finished} episodes)", "dim"),
    )


def _evaluation(e: EvaluationStats) -> Text:
    """The latest evaluation while training and the best so far (best.pt's)."""
    return Text.assemble(
        "Eval    ",
        (f"{fmt.number(e.return_mean, '.1f')} ± {fmt.number(e.return_std, '.1f')}", "bold"),
        (f" (B{e.batch})", "dim"),
        "  best ",
        (fmt.number(e.best_return_mean, ".1f"), "bold green"),
    )


def render_metrics_panel(snapshot: SanctumSnapshot) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    for _ in range(4):
        table.add_column(no_wrap=True)
    for pair in PPO_ROWS:
        cells: list[RenderableType] = []
        for label, metric, spec in pair:
            value = getattr(snapshot.ppo, metric)
            style = HEALTH_STYLE[assess(metric, value)]
            cells += [label, Text(fmt.number(value, spec), style=style)]
        table.add_row(*cells)
    parts: list[RenderableType] = [_returns(snapshot.returns, snapshot.n_agents)]
    if snapshot.evaluation.batch is not None:  # only runs that evaluate while training
        parts.append(_evaluation(snapshot.evaluation))
    return Panel(Group(*parts, table), title="Metrics", title_align="left")
