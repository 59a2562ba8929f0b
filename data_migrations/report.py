"""What the data steps tell the operator: progress while they run, a table at the end,
and the rejects file that holds every row that was not copied as it was."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

PROGRESS_EVERY_SECONDS = 2.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def shorten(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Progress:
    """Prints ``rows done / total (rate)`` for a long step at most every two seconds."""

    def __init__(self, label: str, total: int, unit: str = "rows") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.started = self.last = time.monotonic()
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = now
            rate = self.done / (now - self.started)
            say(f"  {self.label}: {self.done:,}/{self.total:,} {self.unit} ({rate:,.0f}/s)")

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [
        [f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i and c[:1].isdigit() else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _json_safe(value: object) -> object:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return str(value)


class RejectsFile:
    """JSON lines, one per rejected or altered row, opened only when the first one comes."""

    def __init__(self, directory: Path, step: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = directory.resolve() / "rejects" / f"{step}-{stamp}.jsonl"
        self.count = 0
        self._file: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(json.dumps(record, ensure_ascii=False, default=_json_safe) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


# What each data step did in this process, for the cutover report written at the end.
_steps: list[dict[str, Any]] = []


def record_step(step: str, **figures: Any) -> None:
    _steps.append({"step": step, **figures})


def write_cutover_report(directory: Path) -> Path | None:
    """Write the steps recorded in this run as JSON and print a one-line-per-step summary."""
    if not _steps:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory.resolve() / f"cutover-{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"finished_at": stamp, "steps": _steps}, indent=2,
                               ensure_ascii=False, default=_json_safe) + "\n", encoding="utf-8")
    rows = [(s["step"], s.get("summary", ""), f"{s.get('seconds', 0):.1f}s") for s in _steps]
    say("Cutover report:\n" + table(("step", "result", "time"), rows) + f"\nWritten to {path}")
    _steps.clear()
    return path
