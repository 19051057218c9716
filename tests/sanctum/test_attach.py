"""``esper sanctum RUN_DIR``: attach to a run's telemetry file, once or following it."""

from __future__ import annotations

import io
import os
import threading
import time
from contextlib import contextmanager

from rich.console import Console
from typer.testing import CliRunner

from esper.cli import app
from esper.sanctum.attach import attach
from esper.sanctum.layout import LAYOUT_WIDTH
from esper.telemetry.jsonl import JsonlSink


def write(run_dir, events_to_write) -> None:
    """Append events the way the trainer does (JsonlSink: whole lines, flushed)."""
    sink = JsonlSink(run_dir / "telemetry.jsonl")
    for event in events_to_write:
        sink.handle(event)
    sink.close()


def once(run_dir) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["sanctum", str(run_dir), "--once"], env={"COLUMNS": "120"})
    return result.exit_code, result.stdout


def test_once_shows_a_finished_run(tmp_path, events):
    write(tmp_path, [*events.run(3, 3), events.checkpoint(3), events.completed(3)])
    code, text = once(tmp_path)
    assert code == 0
    assert "COMPLETED" in text and "Batch:3/3" in text and "B:████████ 3/3" in text
    assert "saved batch_000003.pt" in text and "cartpole on cpu" in text


def test_once_skips_a_partial_last_line(tmp_path, events):
    write(tmp_path, events.run(3, 1))
    with (tmp_path / "telemetry.jsonl").open("a") as fh:
        fh.write(events.batch(2).to_json()[:50])
    code, text = once(tmp_path)
    assert code == 0 and "B:██░░░░░░ 1/3" in text and "RUNNING" in text
    assert "anomaly" not in text


def test_once_on_a_resumed_run_shows_25_of_75_then_26(tmp_path, events):
    write(tmp_path, [*events.run(50, 25), events.interrupted(25)])
    write(tmp_path, [events.started(max_batches=75, start_batch=25)])
    code, text = once(tmp_path)
    assert code == 0 and "B:██░░░░░░ 25/75" in text and "Batch:25/75" in text
    write(tmp_path, [events.batch(26)])
    code, text = once(tmp_path)
    assert "B:██░░░░░░ 26/75" in text and "Batch:26/75" in text


def test_once_on_a_missing_run_dir_or_telemetry_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "a-file").write_text("")
    for target, options, why in [
        (tmp_path / "nope", ["--once"], "is not a directory"),
        (tmp_path, ["--once"], "no telemetry.jsonl"),
        (tmp_path / "a-file", [], "is not a directory"),  # nothing to wait for either
        (tmp_path, ["--width", "10"], "--width"),
    ]:
        result = CliRunner().invoke(app, ["sanctum", str(target), *options])
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith("esper: error: ") and why in result.stderr


def test_once_in_a_pipe_draws_the_full_layout_not_80_columns(tmp_path, events):
    write(tmp_path, [*events.run(3, 3), events.completed(3)])
    for options, width in [([], LAYOUT_WIDTH), (["--width", "150"], 150)]:
        result = CliRunner().invoke(
            app, ["sanctum", str(tmp_path), "--once", *options], env={"COLUMNS": None}
        )
        assert result.exit_code == 0
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) == width  # the header spans it
        [banner] = [line for line in lines if "COMPLETED" in line]
        assert "Grad" in banner  # every health metric on the banner's one line


def test_follows_appended_lines_until_q(tmp_path, events):
    write(tmp_path, events.run(3, 1))
    with following(tmp_path) as (console, exit_codes, follower):
        assert wait_for_text(console, "B:██░░░░░░ 1/3")
        write(tmp_path, [events.batch(2), events.batch(3), events.completed(3)])
        assert wait_for_text(console, "COMPLETED")
        assert "B:████████ 3/3" in console.export_text(clear=False)
        time.sleep(0.3)
        assert follower.is_alive()  # a finished run stays on screen until the user quits
    assert not follower.is_alive() and exit_codes == [0]


def test_waits_for_a_run_that_has_not_started(tmp_path, events):
    run_dir = tmp_path / "not-yet"
    with following(run_dir) as (console, exit_codes, follower):
        assert wait_for_text(console, f"waiting for {run_dir / 'telemetry.jsonl'}")
        assert "waiting for TRAINING_STARTED" in console.export_text(clear=False)
        run_dir.mkdir()
        write(run_dir, events.run(3, 1))
        assert wait_for_text(console, "B:██░░░░░░ 1/3")
        assert wait_for_text(console, f"following {run_dir / 'telemetry.jsonl'}")
    assert not follower.is_alive() and exit_codes == [0]


@contextmanager
def following(run_dir):
    """``attach`` in a thread, on a real terminal for keys; q is pressed on leaving."""
    # Wide enough that the footer's path is never wrapped.
    console = Console(record=True, width=250, file=io.StringIO(), force_terminal=True)
    controller, terminal = os.openpty()
    keys = os.fdopen(terminal, "r")
    exit_codes: list[int] = []
    follower = threading.Thread(
        target=lambda: exit_codes.append(attach(run_dir, console=console, keys=keys)),
        daemon=True,  # an attach that ignores q fails the test, not pytest's exit
    )
    follower.start()
    try:
        yield console, exit_codes, follower
    finally:
        os.write(controller, b"q")
        follower.join(timeout=30)
        keys.close()
        os.close(controller)


def wait_for_text(console: Console, text: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in console.export_text(clear=False):
            return True
        time.sleep(0.05)
    return False
