"""An output that cannot be written is refused in one line before any work:
the run dirs named here do not even exist, so the output check came first."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from esper.cli import app
from esper.runtime.outputs import check_output_file

TORCHSCRIPT = ("--format", "torchscript")  # ONNX needs an extra, refused first without it
needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")


def refused(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_export_to_a_directory(tmp_path: Path) -> None:
    line = refused("export", str(tmp_path / "no-run"), *TORCHSCRIPT, "-o", str(tmp_path))
    assert line == f"esper: error: --output: {tmp_path} is a directory; name a file to write"


@needs_proc
def test_export_where_no_file_can_be_made(tmp_path: Path) -> None:
    line = refused("export", str(tmp_path / "no-run"), *TORCHSCRIPT, "-o", "/proc/x.pt")
    assert line.startswith("esper: error: --output: cannot write /proc/x.pt")


@needs_proc
def test_a_video_where_no_file_can_be_made(tmp_path: Path) -> None:
    line = refused("eval", str(tmp_path / "no-run"), "--video", "/proc/x.mp4")
    assert line.startswith("esper: error: --video: cannot write /proc/x.mp4")


def test_a_video_named_like_a_directory(tmp_path: Path) -> None:
    (tmp_path / "clips.mp4").mkdir()
    line = refused("eval", str(tmp_path / "no-run"), "--video", str(tmp_path / "clips.mp4"))
    assert line.endswith("clips.mp4 is a directory; name a file to write")


@needs_proc
def test_a_plot_where_no_file_can_be_made(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    line = refused("plot", str(tmp_path / "no-run"), "-o", "/proc/x.png")
    assert line.startswith("esper: error: --output: cannot write /proc/x.png")


def test_the_probe_changes_nothing(tmp_path: Path) -> None:
    kept = tmp_path / "kept.png"
    kept.write_bytes(b"an old plot")
    check_output_file(kept, "output")
    assert kept.read_bytes() == b"an old plot"
    check_output_file(tmp_path / "new.png", "output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.png"]
    with pytest.raises(Exception, match="does not exist"):
        check_output_file(tmp_path / "missing" / "x.png", "output")
