"""RunHeader: which run this is, and how far it has got (the ``B:`` batch bar)."""

from __future__ import annotations

from rich.console import RenderableType
from rich.panel import Panel
from rich.text import Text

from esper.sanctum import format as fmt
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
    identity = Text()
    if s.status is RunStatus.WAITING:
        identity.append("waiting for TRAINING_STARTED", style="dim")
    else:
        identity.append(s.group_id or fmt.MISSING, style="bold")
        identity.append(f"  {s.task or fmt.MISSING} on {s.device or fmt.MISSING}")
        if s.world_size > 1:
            identity.append(f"  {s.world_size} ranks")
        identity.append(f"  seed {fmt.number(s.seed, 'd')}")
        identity.append(f"  {fmt.number(s.n_envs, 'd')} envs × {fmt.number(s.horizon, 'd')} steps")
        if s.start_batch > 0:
            identity.append(f"  resumed from batch {s.start_batch}", style="cyan")

    progress = Text()
    progress.append(render_batch_progress(s.current_batch, s.max_batches, bar_width), style="bold")
    progress.append(f"   elapsed {fmt.duration(s.elapsed_seconds)}")
    progress.append(f"   ETA {fmt.duration(s.eta_seconds)}")
    progress.append(f"   SPS {fmt.number(s.throughput.sps, ',.0f')}")
    progress.append(f"   steps {fmt.number(s.env_steps, ',d')}")
    return Panel(Text("\n").join([identity, progress]), title="Sanctum", title_align="left")
