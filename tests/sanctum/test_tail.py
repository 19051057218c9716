"""JsonlTail: complete lines only, each once, across appends and a replaced file."""

from __future__ import annotations

from esper.sanctum.tail import JsonlTail


def test_missing_file_gives_no_events(tmp_path):
    assert JsonlTail(tmp_path / "telemetry.jsonl").poll() == []


def test_partial_last_line_waits_for_its_newline(tmp_path, events):
    path = tmp_path / "telemetry.jsonl"
    first, second = events.started(10).to_json(), events.batch(1).to_json()
    path.write_text(first + "\n" + second[:30])
    tail = JsonlTail(path)
    assert [e.batch for e in tail.poll()] == [0]
    assert tail.poll() == []
    with path.open("a") as fh:
        fh.write(second[30:] + "\n")
    assert [e.batch for e in tail.poll()] == [1]
    assert tail.poll() == []


def test_unreadable_line_is_reported_and_skipped(tmp_path, events):
    path = tmp_path / "telemetry.jsonl"
    path.write_text('{"event_type": "BATCH_COMP\n' + events.started(10).to_json() + "\n")
    problems: list[str] = []
    assert len(JsonlTail(path, on_problem=problems.append).poll()) == 1
    assert len(problems) == 1 and "telemetry.jsonl:1: skipped an unreadable line" in problems[0]


def test_replaced_file_is_read_again_from_the_start(tmp_path, events):
    path = tmp_path / "telemetry.jsonl"
    path.write_text(events.started(10).to_json() + "\n" + events.batch(1).to_json() + "\n")
    problems: list[str] = []
    tail = JsonlTail(path, on_problem=problems.append)
    assert len(tail.poll()) == 2
    path.unlink()  # what --overwrite does before a fresh run writes again
    path.write_text(events.started(5).to_json() + "\n")
    assert [e.data.max_batches for e in tail.poll()] == [5]
    assert problems == ["telemetry.jsonl was replaced; reading it from the start"]
