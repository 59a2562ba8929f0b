"""What the steps print: tables that stay aligned whatever script their cells are in."""

from __future__ import annotations

from wcwidth import wcswidth

from data_migrations.report import table


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
