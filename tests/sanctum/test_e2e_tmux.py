"""End to end in a real terminal: ``esper ppo`` shows the dashboard and leaves its final state.

tmux gives the trainer a real 200x50 terminal (so stdout is a tty and the
dashboard turns on by default); the pane is read back as text, scrollback included.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 180  # importing torch on a busy 2-core machine dominates
TINY = "--envs 8 --max-epochs 16 --device cpu"


pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """One command in a private tmux server's 200x50 pane (not the user's server)."""

    def __init__(self, socket: str, exit_file: Path) -> None:
        self.socket = socket
        self.exit_file = exit_file
        # os.environ, not the process's inherited C environment: under pytest that one
        # can hold COLUMNS=80/LINES=24, which rich would prefer to the pane's real size.
        self.env = dict(os.environ)

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )
        return done.stdout

    def screen(self) -> str:
        """Everything the pane shows and has scrolled away."""
        return self.tmux("capture-pane", "-p", "-S", "-", "-t", "esper")

    def wait_until(self, done: Callable[[str], bool], deadline: float) -> str:
        screen = self.screen()
        while not done(screen) and time.monotonic() < deadline:
            time.sleep(0.5)
            screen = self.screen()
        return screen

    def exit_code(self, deadline: float) -> str:
        """``esper-exit=N`` once the command has ended (the shell records it)."""
        while not self.exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.exit_file.read_text().strip() if self.exit_file.exists() else "none"


@contextmanager
def pane(command: str, tmp_path: Path) -> Iterator[Pane]:
    term = Pane(f"esper-test-{uuid.uuid4().hex[:8]}", tmp_path / "exit")
    term.tmux(
        "new-session", "-d", "-s", "esper", "-x", "200", "-y", "50", "-c", str(REPO),
        # The shell records esper's own exit code: when the pane runs the command
        # directly, tmux 3.3a sometimes reports an empty #{pane_dead_status}.
        f"{command}; echo esper-exit=$? > {term.exit_file}",
        ";", "set-option", "-t", "esper", "remain-on-exit", "on",
    )  # fmt: skip
    socket_path = Path(term.tmux("display-message", "-p", "#{socket_path}").strip())
    try:
        yield term
    finally:
        term.tmux("kill-server")
        if socket_path.name == term.socket:
            socket_path.unlink(missing_ok=True)


def test_ppo_run_shows_the_dashboard_to_completion(tmp_path):
    run_dir = tmp_path / "run"
    with pane(f"uv run esper ppo --episodes 3 {TINY} --run-dir {run_dir}", tmp_path) as term:
        recorded = term.exit_code(time.monotonic() + TIMEOUT_SECONDS)
        screen = term.screen()
    print(screen)
    assert "COMPLETED" in screen, screen
    assert "B:████████ 3/3" in screen and "Batch:3/3" in screen, screen
    assert "completed at 3/3" in screen, screen  # the event log's last word
    assert recorded == "esper-exit=0", f"{recorded}\n{screen}"
    assert (run_dir / "telemetry.jsonl").is_file()


def test_ctrl_c_leaves_one_final_frame_and_the_resume_line_below_it(tmp_path):
    run_dir = tmp_path / "run"
    command = f"uv run esper ppo --episodes 100000 {TINY} --run-dir {run_dir}"
    with pane(command, tmp_path) as term:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        running = term.wait_until(lambda s: re.search(r"Batch:[1-9]\d*/100000", s), deadline)
        assert "RUNNING" in running, running
        term.tmux("send-keys", "-t", "esper", "C-c")
        recorded = term.exit_code(time.monotonic() + TIMEOUT_SECONDS)
        screen = term.screen().rstrip()
    print(screen)
    assert recorded == "esper-exit=130", f"{recorded}\n{screen}"
    lines = screen.splitlines()
    assert screen.count("╭─ Sanctum") == 1, screen  # one frame, redrawn in place
    assert screen.count("╭─ Events") == 1, screen
    # The frame ends with the event log, then why the run ended; the command's
    # resume line comes after the whole frame, not inside it.
    events_bottom = max(i for i, line in enumerate(lines) if line.startswith("╰"))
    assert lines[events_bottom + 1].startswith("interrupted: SIGINT received"), screen
    assert lines[events_bottom + 2].startswith("esper: interrupted; resume with: "), screen
    assert "^C" not in screen, screen
