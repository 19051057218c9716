"""--track: W&B offline holds every batch under CleanRL's names, the config, and a
resume continues the same W&B run. Skipped without the wandb extra."""

from __future__ import annotations

import glob
import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("wandb")
from typer.testing import CliRunner
from wandb.proto import wandb_internal_pb2

from esper.cli import app
from esper.telemetry.metrics import TENSORBOARD_TAGS
from esper.telemetry.wandb import RUN_ID_FILE, sync_command

TINY = ["--envs", "4", "--horizon", "16", "--set", "n_minibatches=1", "--device", "cpu"]


def wandb_records(path: Path) -> list[wandb_internal_pb2.Record]:
    """The records of an offline ``run-ID.wandb`` file. wandb ships no Python reader
    for it any more; the layout is LevelDB's log: a 7-byte header, then 32 KiB
    blocks of chunks (crc32, length, type), a record split over FIRST/MIDDLE/LAST."""
    data, block, at = path.read_bytes(), 32 * 1024, 7
    assert data[:4] == b":W&B"
    records, pending = [], b""
    while at + 7 <= len(data):
        if block - at % block < 7:  # a block's tail too short for a chunk header
            at += block - at % block
            continue
        _, length, kind = struct.unpack("<IHB", data[at : at + 7])
        if kind == 0:
            break
        pending += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def history(records: list[wandb_internal_pb2.Record]) -> list[dict[str, float]]:
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = record.history.item
            rows.append({_key(item): json.loads(item.value_json) for item in items})
    return rows


def _key(item: wandb_internal_pb2.HistoryItem) -> str:
    return item.key or "/".join(item.nested_key)  # newer wandb: the name in nested_key


def run_config(records: list[wandb_internal_pb2.Record]) -> dict[str, object]:
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    return {_key(item): json.loads(item.value_json) for item in run.config.update}


def offline_file(run_dir: Path, run_id: str) -> list[Path]:
    return sorted((run_dir / "wandb").glob(f"offline-run-*/run-{run_id}.wandb"))


def test_track_offline_logs_cleanrl_names_and_a_resume_continues_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tmp_path / "run"
    common = ["ppo", *TINY, "--run-dir", str(run_dir), "--no-sanctum"]
    first = CliRunner().invoke(app, [*common, "--episodes", "2", "--track", "offline"])
    assert first.exit_code == 0, first.output
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    (written,) = offline_file(run_dir, run_id)
    records = wandb_records(written)
    rows = history(records)
    assert [row["global_step"] for row in rows] == [64, 128]
    assert [row["_step"] for row in rows] == [64, 128]  # offline, W&B's step is global_step
    assert set(TENSORBOARD_TAGS) <= set(rows[-1]) | {"charts/episodic_return"}
    assert "losses/approx_kl" in rows[0] and "charts/SPS" in rows[0]
    assert run_config(records)["n_envs"] == 4

    # WANDB_MODE=offline with a bare --track: the same W&B run goes on.
    monkeypatch.setenv("WANDB_MODE", "offline")
    resumed = CliRunner().invoke(app, [*common, "--resume", "--episodes", "1", "--track"])
    assert resumed.exit_code == 0, resumed.output
    assert (run_dir / RUN_ID_FILE).read_text().strip() == run_id
    files = offline_file(run_dir, run_id)
    assert len(files) == 2, files
    later = next(f for f in files if f != written)
    # W&B cannot resume offline (a second folder, the same id): its step continues
    # from the first folder's, so a sync of both with --id is one run, in order.
    later_rows = history(wandb_records(later))
    assert [(row["global_step"], row["_step"]) for row in later_rows] == [(192, 192)]
    assert f"`{sync_command(run_dir, run_id)}`" in resumed.output
    pattern = sync_command(run_dir, run_id).split()[-1]  # the folders the command names
    assert sorted(glob.glob(pattern)) == [str(f.parent) for f in files]


def test_a_bad_track_mode_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["ppo", *TINY, "--run-dir", str(tmp_path / "r"), "--track", "sometimes"]
    )
    assert result.exit_code == 2
    assert "--track: must be online or offline (got 'sometimes')" in result.output
    assert not (tmp_path / "r").exists()


def test_online_tracking_without_a_login_is_refused_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["ppo", *TINY, "--run-dir", str(run_dir), "--track"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("esper: error: --track: W&B online needs a login")
    assert "`wandb login`" in line and "--track offline" in line
    assert not run_dir.exists()  # refused before the run dir, let alone a batch


def test_evaluations_go_to_wandb_under_eval_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    args = ["ppo", *TINY, "--run-dir", str(run_dir), "--no-sanctum", "--episodes", "2"]
    args += ["--track", "offline", "--eval-every", "1", "--eval-episodes", "1"]
    assert CliRunner().invoke(app, args).exit_code == 0
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    rows = history(wandb_records(offline_file(run_dir, run_id)[0]))
    evaluations = [row for row in rows if "eval/mean_reward" in row]
    assert [row["global_step"] for row in evaluations] == [64, 128]
    assert {"eval/std_reward", "eval/mean_ep_length"} <= set(evaluations[0])


def test_videos_go_to_wandb_as_videos_at_their_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    args = ["ppo", *TINY, "--run-dir", str(run_dir), "--no-sanctum", "--episodes", "2"]
    result = CliRunner().invoke(app, [*args, "--track", "offline", "--video-every", "1"])
    assert result.exit_code == 0, result.output
    run_id = (run_dir / RUN_ID_FILE).read_text().strip()
    (written,) = offline_file(run_dir, run_id)
    rows = history(wandb_records(written))  # a media value's fields: videos/episode/...
    videos = [row for row in rows if "videos/episode/_type" in row]
    assert [row["global_step"] for row in videos] == [64, 128]
    assert videos[-1]["videos/episode/_type"] == "video-file"
    assert "losses/approx_kl" in videos[-1]  # the batch's own row, at its steps
    # The MP4 itself goes up with the run: its copy among the W&B run's files.
    uploaded = written.parent / "files" / videos[-1]["videos/episode/path"]
    assert uploaded.read_bytes() == (run_dir / "videos" / "batch_000002.mp4").read_bytes()
