"""The entries of docs/troubleshooting.md that a run's ``FAILED:`` lines point to, so that
the page carries what each line means and what to do (a page sent as a mail attachment
has no docs folder beside it).

Each entry is a table row: its first cell quotes the lines (``…`` where the run fills in a
path, a count, a reason), its second says what to do. A line points to the row one of
whose quoted pieces it holds, the longest piece winning; the anchor is its section's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"
SHORTEST_PIECE = 12  # shorter quoted pieces ("FAILED: ", a setting's name) match too much
_QUOTED = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Entry:
    anchor: str  # docs/troubleshooting.md#<anchor>
    section: str
    message: str  # the first cell, as written
    advice: str  # the second cell, as written


def anchor_of(heading: str) -> str:
    """The anchor a Markdown renderer gives ``heading`` (GitHub's rule)."""
    lowered = heading.strip().lower()
    return re.sub(r"[^\w\- ]", "", lowered).replace(" ", "-")


def entries(document: Path = DOCUMENT) -> list[Entry]:
    """Every table row of the document; none when it is not there (an installed copy)."""
    if not document.is_file():
        return []
    found, section = [], ""
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            if len(cells) >= 2:
                found.append(Entry(anchor_of(section), section, cells[0], cells[1]))
    return found


def pieces(entry: Entry) -> list[str]:
    """The literal parts of the quoted lines, without ``FAILED:`` and split at ``…``."""
    return [piece.strip() for quoted in _QUOTED.findall(entry.message)
            for piece in quoted.removeprefix("FAILED:").split("…")
            if len(piece.strip()) >= SHORTEST_PIECE]


def pointed_to(line: str, known: list[Entry]) -> Entry | None:
    """The entry a ``FAILED:`` line points to, if any."""
    best: tuple[int, Entry] | None = None
    for entry in known:
        for piece in pieces(entry):
            if piece in line and (best is None or len(piece) > best[0]):
                best = (len(piece), entry)
    return best[1] if best else None


def for_lines(lines: list[str], known: list[Entry] | None = None) -> list[Entry]:
    """The entries the lines point to, each once, in the lines' order."""
    known = entries() if known is None else known
    chosen = [entry for line in lines if (entry := pointed_to(line, known))]
    return list(dict.fromkeys(chosen))
