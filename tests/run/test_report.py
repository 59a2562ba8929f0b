"""What the steps print: tables that stay aligned whatever script their cells are in."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from wcwidth import wcswidth

from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import Progress, record_step, table, write_cutover_report
from tests.runs import cutover_environment, upgrade_head


def character_columns(line: str) -> dict[int, str]:
    """The terminal column each character of ``line`` starts at."""
    starts: dict[int, str] = {}
    column = 0
    for character in line:
        starts[column] = character
        column += wcswidth(character)
    return starts


def test_a_table_of_cjk_emoji_and_ascii_cells_stays_aligned() -> None:
    rendered = table(("title", "path", "files"), [
        ("周会纪要", "uploads/会议/录音 1.m4a", 12),
        ("🎉 launch", "a.txt", 3),
        ("plain ascii title", "uploads/plain.wav", 1234),
        ("产品评审第二轮", "uploads/导出/纪要 v2.docx", 56),
    ])
    lines = rendered.splitlines()
    rule = lines[1]
    assert set(rule) == {"-", " "}
    # The last column holds numbers, right-aligned: every line ends at the rule's end.
    assert {wcswidth(line) for line in lines} == {wcswidth(rule)}, rendered
    separators = [column for column in range(1, len(rule)) if rule[column - 1:column + 1] == "  "]
    assert len(separators) == 2
    for line in lines:
        starts = character_columns(line)
        for column in separators:
            # Both columns of each separator are spaces of their own, not half a wide character.
            assert starts.get(column - 1) == starts.get(column) == " ", (line, rendered)
        # The paths are left-aligned: each starts right after the first separator.
        assert starts.get(separators[0] + 1, " ") != " ", (line, rendered)


def test_a_report_that_cannot_be_written_says_the_migrations_are_committed(
        tmp_path: Path) -> None:
    """The preflight finds an unwritable REPORTS_DIR first; this is the folder that turns
    unwritable while the migrations run."""
    (tmp_path / "a-file").write_text("not a folder")
    record_step("rows", summary="1 row", seconds=0.1)
    with pytest.raises(DataMigrationError) as failure:
        write_cutover_report(tmp_path / "a-file" / "reports")
    assert str(failure.value).startswith(
        f"cannot write the cutover report to REPORTS_DIR ({tmp_path / 'a-file' / 'reports'}): "
        "Not a directory; the migrations are committed")


def test_progress_without_a_total_counts_what_is_done(
        caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(logging.getLogger("cutover.test"), "scanning", None, "entries",
                        every_seconds=0.0)
    with caplog.at_level(logging.INFO, logger="cutover.test"):
        progress.advance(1234)
    [line] = caplog.messages
    assert line.startswith("  scanning: 1,234 entries (")


def test_the_byte_progress_counts_the_bytes_in_flight(
        caplog: pytest.LogCaptureFixture) -> None:
    in_flight = [0]
    progress = Progress(logging.getLogger("cutover.test"), "uploading", 2, "files",
                        total_bytes=30 * 1024 * 1024, bytes_in_flight=lambda: in_flight[0],
                        every_seconds=0.0)
    with caplog.at_level(logging.INFO, logger="cutover.test"):
        progress.advance(0)
        in_flight[0] = 16 * 1024 * 1024  # a part of the large file is stored
        progress.advance(0)
        in_flight[0] = 0
        progress.advance(1, 20 * 1024 * 1024)  # the large file is done
    assert [line.split(", ")[1].split(" (")[0] for line in caplog.messages] == [
        "0 B/30.0 MiB", "16.0 MiB/30.0 MiB", "20.0 MiB/30.0 MiB"]


def test_a_cutover_reports_its_freeze_window_and_each_steps_share(
        tmp_path: Path, pg_url: str) -> None:
    result = upgrade_head(cutover_environment(tmp_path, pg_url), tmp_path)
    assert result.returncode == 0, result.stderr
    [path] = (tmp_path / "reports").glob("cutover-*.json")
    document = json.loads(path.read_text())
    window, steps = document["freeze_window"], document["steps"]

    assert [step["step"] for step in steps] == ["rows", "files", "paths"]
    # The freeze is counted from the command's start, the preflight inside it.
    assert (window["started_at"], window["ended_at"]) == (document["started_at"],
                                                          steps[-1]["ended_at"])
    moments = [window["started_at"], *(moment for step in steps
                                       for moment in (step["started_at"], step["ended_at"]))]
    assert moments == sorted(moments)
    shares = window["shares"]
    assert [share["step"] for share in shares] == [
        "preflight", "rows", "files", "paths", "between steps"]
    assert math.isclose(shares[0]["seconds"], document["preflight_seconds"])
    assert window["seconds"] > 0
    assert math.isclose(sum(share["seconds"] for share in shares), window["seconds"])
    assert math.isclose(sum(share["percent"] for share in shares), 100)
    for share, step in zip(shares[1:], steps, strict=False):
        assert math.isclose(share["seconds"], step["seconds"])
        assert math.isclose(share["percent"], 100 * step["seconds"] / window["seconds"])

    lines = result.stderr.splitlines()
    header = lines.index("Cutover report:") + 1
    assert lines[header].split() == ["step", "result", "time", "share"]
    printed = [line.split() for line in lines[header + 2:header + 8]]
    assert [(row[0], *row[-2:]) for row in printed] == [
        *((share["step"].split()[0], f"{share['seconds']:.1f}s", f"{share['percent']:.1f}%")
          for share in shares),
        ("freeze", f"{window['seconds']:.1f}s", "100.0%")]
