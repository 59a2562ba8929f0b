"""What the steps print: tables that stay aligned whatever script their cells are in."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from wcwidth import wcswidth

from data_migrations.errors import DataMigrationError
from data_migrations.report import Progress, record_step, table, write_cutover_report


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
