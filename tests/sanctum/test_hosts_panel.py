"""The Hosts panel of a growth run: accuracy, budget bar, stage row, moves; 80 columns."""

import dataclasses
import io

from rich.console import Console

from esper.sanctum.layout import render_dashboard
from esper.sanctum.schema import SanctumSnapshot, TaskStats
from esper.sanctum.widgets import render_hosts_panel

HOSTS = SanctumSnapshot(
    task="grow-mlp",
    task_stats=TaskStats(
        facts={"host_params": 212, "param_budget": 2000, "slot_ids": ["slot0", "slot1", "slot2"],
               "reward_mode": "score-difference"},
        statistics={
            "final_val_accuracy": 0.8125, "params_vs_budget": 0.5,
            "seeds_training": 0.25, "seeds_blending": 1.0, "seeds_holding": 0.0,
            "seeds_fossilized": 2.0, "seeds_embargoed": 0.5,
            "germinations": 96.0, "fossilizations": 64.0, "prunes": 12.0,
            "seed_contribution": None,
        },
        history={"final_val_accuracy": (0.6, 0.7, 0.8125)},
        batch=3,
    ),
)  # fmt: skip


def text_of(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None, legacy_windows=False).print(renderable)
    return out.getvalue()


def test_a_growth_run_shows_its_hosts() -> None:
    text = text_of(render_dashboard(HOSTS))
    assert "Hosts" in text and "Task: grow-mlp" not in text  # in place of the generic panel
    line = {row.split()[1]: row for row in text.splitlines() if len(row.split()) > 2}
    assert "0.812" in line["accuracy"] and "▁" in line["accuracy"] and "█" in line["accuracy"]
    assert "█" * 15 + "░" * 15 in line["params"] and "50% of 2000" in line["params"]
    assert "T0.2 B1.0 H0.0 F2.0 P0.5" in line["seeds"]
    assert "germinated 96  fossilized 64  pruned 12" in text
    assert "contribution  -" in text  # nothing to report this batch
    assert all(len(row) <= 80 for row in text.splitlines())


def test_other_tasks_have_no_hosts_panel() -> None:
    other = dataclasses.replace(HOSTS, task_stats=TaskStats(statistics={"paid_fraction": 0.5}))
    assert render_hosts_panel(other) is None
    assert render_hosts_panel(SanctumSnapshot()) is None
