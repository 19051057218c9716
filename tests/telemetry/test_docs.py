"""docs/telemetry.md and the event rows of docs/reading-telemetry.md are generated from the
metrics table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from esper.workflows.telemetry_docs import (
    EVENTS,
    event_row,
    main,
    render_document,
    update_event_rows,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telemetry.md"
GUIDE = ROOT / "docs" / "reading-telemetry.md"

REGENERATE = "run `uv run python -m esper.workflows.telemetry_docs` and commit the result"


@pytest.mark.parametrize(
    "field", [f"{event}.{f.name}" for event, fields in EVENTS.items() for f in fields]
)
def test_every_field_has_a_record(field: str) -> None:
    headings = re.findall(r"^## TELE-\d+: .* \(`(\w+\.\w+)`\)$", DOC.read_text(), re.MULTILINE)
    assert field in headings, f"no record for {field} in {DOC.name}: {REGENERATE}"


def test_the_document_is_not_stale() -> None:
    assert DOC.read_text(encoding="utf-8") == render_document(), (
        f"{DOC.name} is stale: {REGENERATE}"
    )


@pytest.mark.parametrize("event", list(EVENTS))
def test_the_guide_s_row_lists_every_field(event: str) -> None:
    assert event_row(event) in GUIDE.read_text().splitlines(), (
        f"{GUIDE.name} is stale: {REGENERATE}"
    )


def test_a_record_follows_the_record_form() -> None:
    text = DOC.read_text()
    record = text[text.index("## TELE-014: ") :].split("\n## ")[0]
    for section in ("1. Identity", "2. Purpose", "3. Data specification", "Health thresholds"):
        assert f"### {section}" in record or f"#### {section}" in record
    for row in ("**Type** | `int`", "**Units** | batches", "**Range** | [1, ∞)", "**Default**"):
        assert row in record
    assert "run_vectorized_ppo" in record and "snapshot.max_batches" in record


def test_generator_rewrites_the_rows_and_the_doc(tmp_path: Path) -> None:
    guide = tmp_path / "reading-telemetry.md"
    guide.write_text("intro\n| `BATCH_COMPLETED` | old | `sps` |\nafter\n")
    doc = tmp_path / "docs" / "telemetry.md"
    assert main(["--doc", str(doc), "--guide", str(guide)]) == 0
    assert guide.read_text() == update_event_rows(
        "intro\n" + event_row("BATCH_COMPLETED") + "\nafter\n"
    )
    assert doc.read_text() == render_document()


def test_generator_outside_the_repository_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["--guide", str(tmp_path / "reading-telemetry.md")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_each_statistic_a_builtin_task_declares_has_a_record_after_the_table() -> None:
    """probe-mask declares paid_fraction: a TELE-3xx record, with its tag and panel."""
    from esper.envs.registry import TASKS
    from esper.workflows.telemetry_docs import task_statistic_fields

    declared = [s.name for env in TASKS.values() for s in env.statistics]
    assert "paid_fraction" in declared
    rows = task_statistic_fields()
    # then the per-agent returns every task with several agents reports (envs/agents.py)
    names = [r.name.removeprefix("task_statistics.") for r in rows]
    assert names == [*declared, "agent_<i>_return"]
    text = DOC.read_text()
    for row in rows:
        assert int(row.id.removeprefix("TELE-")) >= 300
        record = text[text.index(f"## {row.id}: ") :].split("\n## ")[0]
        assert f"`BATCH_COMPLETED.{row.name}`" in record and "task/" in record
        assert "the task panel" in record
