"""RunHeader: which run this is, and how far it has got (the ``B:`` batch bar)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from esper.sanctum import format as fmt
from esper.sanctum.flow import Flow
from esper.sanctum.schema import RunStatus, SanctumSnapshot

FULL, EMPTY = "█", "░"


def render_batch_progress(current: int, max_batches: int, width: int = 8) -> str:
    """``B:██░░░░░░ 25/100``; just ``B:25`` while ``max_batches`` is unknown (<= 0)."""
    if max_batches <= 0:
        return f"B:{current}"
    progress = min(max(current / max_batches, 0.0), 1.0)
    filled = int(progress * width)
    return f"B:{FULL * filled}{EMPTY * (width - filled)} {current}/{max_batches}"


def render_run_header(snapshot: SanctumSnapshot, bar_width: int = 8) -> RenderableType:
    s = snapshot
    # Each field is one item of a Flow: a narrow terminal breaks lines between
    # fields, never inside one (``SPS 76,612`` stays whole).
    if s.status is RunStatus.WAITING:
        identity = [Text("waiting for TRAINING_STARTED", style="dim")]
    else:
        identity = [
            Text(s.group_id or fmt.MISSING, style="bold"),
            Text(f"{s.task or fmt.MISSING} on {s.device or fmt.MISSING}"),
            Text(f"{s.world_size} ranks" if s.world_size > 1 else ""),
            Text(f"agents: {s.n_agents} ({s.critic} critic)" if s.n_agents > 1 else ""),
            Text(f"seed {fmt.number(s.seed, 'd')}"),
            Text(f"{fmt.number(s.n_envs, 'd')} envs × {fmt.number(s.horizon, 'd')} steps"),
            Text(f"resumed from batch {s.start_batch}" if s.start_batch > 0 else "", style="cyan"),
        ]
    progress = [
        Text(render_batch_progress(s.current_batch, s.max_batches, bar_width), style="bold"),
        Text(f"elapsed {fmt.duration(s.elapsed_seconds)}"),
        Text(f"ETA {fmt.duration(s.eta_seconds)}"),
        Text(f"SPS {fmt.number(s.throughput.sps, ',.0f')}"),
        Text(f"steps {fmt.number(s.env_steps, ',d')}"),
    ]
    return Panel(Group(Flow(identity, gap=2), Flow(progress)), title="Sanctum", title_align="left")
