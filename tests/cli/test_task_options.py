"""A task's own settings from a config file's [task_options] table (grow-mlp's
slots, blueprints, episode length...): used by training and by esper eval of the
run, and a bad one is one line, exit 2, before anything is written."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app
from esper.telemetry.events import TelemetryEventType
from esper.telemetry.jsonl import read_events

runner = CliRunner()

SMALL = 'task = "grow-mlp"\nn_envs = 4\nhorizon = 6\nn_minibatches = 2\nupdate_epochs = 1\n'


def config(tmp_path: Path, table: str, head: str = SMALL) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f"{head}\n[task_options]\n{table}\n")
    return path


def test_task_options_shape_the_hosts_in_training_and_in_eval(tmp_path: Path) -> None:
    path = config(tmp_path, 'slots = 2\nblueprints = ["block-8"]\nmax_epochs = 3')
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["ppo", "--config", str(path), "--episodes", "1", "--no-sanctum",
                                 "--device", "cpu", "--run-dir", str(run_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    started = next(iter(read_events(run_dir / "telemetry.jsonl")))
    assert started.event_type is TelemetryEventType.TRAINING_STARTED
    assert started.data.task_facts["slot_ids"] == ["slot0", "slot1"]
    # The policy was built for 2 slots of one blueprint: 1 + 2 * 3 actions.
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    evaluated = list(read_events(run_dir / "telemetry.jsonl"))[-1].data
    assert evaluated.length_mean == 3.0  # the episodes are the options' max_epochs long
    # block-8 is the only blueprint: a host is the bare 212 or grows in steps of 280.
    assert (evaluated.episode_statistics["final_params"] - 212) % 280 == 0


@pytest.mark.parametrize(
    ("table", "head", "line"),
    [
        ('blueprints = ["adapter", "block-64"]', SMALL,
         "blueprints: unknown blueprint 'block-64' (known: adapter, block-8, block-32)"),
        ("slots = 9", SMALL, "slots: must be 1 to 8 (got 9)"),
        ("slots = 0", SMALL, "slots: must be 1 to 8 (got 0)"),
        ("slot = 2", SMALL, "task_options: unknown key 'slot' (known: blend_epochs, "),
        ("slots = 2", 'task = "cartpole"',
         "task_options: task cartpole takes no options (got ['slots'])"),
    ],
)  # fmt: skip
def test_a_bad_task_option_is_one_line_before_anything_is_written(
    tmp_path: Path, table: str, head: str, line: str
) -> None:
    run_dir = tmp_path / "run"
    path = config(tmp_path, table, head)
    result = runner.invoke(app, ["ppo", "--config", str(path), "--episodes", "1",
                                 "--no-sanctum", "--run-dir", str(run_dir)])  # fmt: skip
    lines = [text for text in result.output.splitlines() if text.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0].startswith(f"esper: error: {line}")
    assert not run_dir.exists()
