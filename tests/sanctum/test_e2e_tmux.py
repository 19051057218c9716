"""End to end in a real terminal: ``esper ppo`` shows the dashboard and leaves its final state.

tmux gives the trainer a real 200x50 terminal (so stdout is a tty and the
dashboard turns on by default); the pane is read back as text.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 180  # importing torch on a busy 2-core machine dominates


pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def test_ppo_run_shows_the_dashboard_to_completion(tmp_path):
    socket = f"esper-test-{uuid.uuid4().hex[:8]}"  # a private tmux server, not the user's
    session = "sanctum"
    run_dir = tmp_path / "run"
    command = (
        f"uv run esper ppo --episodes 3 --envs 8 --max-epochs 16 --run-dir {run_dir} --device cpu"
    )

    # os.environ, not the process's inherited C environment: under pytest that one
    # can hold COLUMNS=80/LINES=24, which rich would prefer to the pane's real size.
    env = dict(os.environ)

    def tmux(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", socket, *args], capture_output=True, text=True, env=env
        )
        return done.stdout

    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "200",
        "-y",
        "50",
        "-c",
        str(REPO),
        # The shell records esper's own exit code: when the pane runs the command
        # directly, tmux 3.3a sometimes reports an empty #{pane_dead_status}.
        f"{command}; echo esper-exit=$? > {run_dir.parent / 'exit'}",
        ";",
        "set-option",
        "-t",
        session,
        "remain-on-exit",
        "on",
    )
    socket_path = Path(tmux("display-message", "-p", "#{socket_path}").strip())
    try:
        screen, deadline = "", time.monotonic() + TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            screen = tmux("capture-pane", "-p", "-t", session)
            dead = tmux("display-message", "-p", "-t", session, "#{pane_dead}").strip() == "1"
            if dead or ("COMPLETED" in screen and "3/3" in screen):
                break
            time.sleep(0.5)
        while tmux("display-message", "-p", "-t", session, "#{pane_dead}").strip() != "1":
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        screen = tmux("capture-pane", "-p", "-t", session)
        status = tmux("display-message", "-p", "-t", session, "#{pane_dead_status}").strip()
        died = tmux(
            "display-message", "-p", "-t", session, "dead=#{pane_dead} signal=#{pane_dead_signal}"
        ).strip()
    finally:
        tmux("kill-server")
        if socket_path.name == socket:
            socket_path.unlink(missing_ok=True)
    print(screen)
    assert "COMPLETED" in screen, screen
    assert "B:████████ 3/3" in screen and "Batch:3/3" in screen, screen
    assert "completed at 3/3" in screen, screen  # the event log's last word
    exit_file = run_dir.parent / "exit"
    recorded = exit_file.read_text() if exit_file.exists() else "none"
    assert recorded.strip() == "esper-exit=0", f"{recorded} ({status!r}, {died})\n{screen}"
    assert (run_dir / "telemetry.jsonl").is_file()
