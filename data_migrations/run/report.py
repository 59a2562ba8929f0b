"""What the data steps tell the operator: progress while they run, a table at the end,
and the rejects file that holds every row that was not copied as it was.

Every step writes through ``logging``, one logger per step under ``cutover``
(``cutover.rows``, ``cutover.files``, ``cutover.paths``, ``cutover.verify``,
``cutover.report``, ``cutover.adopt``, ``cutover.run``), so an Alembic run prints them
as ``alembic.ini``'s ``[logger_cutover]`` says: bare lines on stderr at INFO.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from wcwidth import wcswidth

from data_migrations.run.errors import DataMigrationError

PROGRESS_EVERY_SECONDS = 2.0
LISTED = 50  # items a message lists before "... and N more"


log = logging.getLogger("cutover.report")


class StderrHandler(logging.StreamHandler):
    """Writes each line to ``sys.stderr`` as it is at that moment, so a caller that
    redirects stderr (``contextlib.redirect_stderr``, a test's capture) gets the lines."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def log_to_stderr() -> None:
    """Print the cutover's log lines as alembic.ini's ``[logger_cutover]`` does (bare
    lines on stderr, INFO and above), for the commands that do not start from alembic.ini:
    the commands in data_migrations/commands/ (``python -m data_migrations.commands.verify``
    ...), the benchmarks."""
    logger = logging.getLogger("cutover")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


def bulleted(lines: list[str], total: int | None = None) -> str:
    """The first lines as a bulleted list, then how many more there are of ``total``
    (default: all of ``lines``)."""
    shown = lines[:LISTED]
    more = (len(lines) if total is None else total) - len(shown)
    return "\n".join(f"  - {line}" for line in shown) + (
        f"\n  ... and {more:,} more" if more > 0 else "")


def shorten(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Progress:
    """Prints ``done / total unit (rate)`` for a long step at most every ``every_seconds`` (just
    ``done unit`` while the total is unknown, ``total=None``); given ``total_bytes`` it also
    prints the bytes done and the byte rate, counting the bytes ``bytes_in_flight()`` says
    the unfinished items have already done (the stored parts of a large file); ``detail()``
    adds what only the step knows (a backfill's rows updated and its cursor)."""

    def __init__(self, log: logging.Logger, label: str, total: int | None, unit: str = "rows",
                 total_bytes: int | None = None,
                 bytes_in_flight: Callable[[], int] = lambda: 0,
                 every_seconds: float = PROGRESS_EVERY_SECONDS,
                 detail: Callable[[], str] = lambda: "") -> None:
        self.log = log
        self.every_seconds = every_seconds
        self.label, self.total, self.unit = label, total, unit
        self.total_bytes = total_bytes
        self.bytes_in_flight = bytes_in_flight
        self.detail = detail
        self.started = self.last = time.monotonic()
        self.done = 0
        self.bytes_done = 0

    def advance(self, count: int = 1, size: int = 0) -> None:
        """Count finished work; ``advance(0)`` just prints if a line is due, so that a step
        waiting on slow work still shows it is alive."""
        self.done += count
        self.bytes_done += size
        now = time.monotonic()
        if now - self.last >= self.every_seconds:
            self.last = now
            self.log.info(self._line(now - self.started))

    def _line(self, elapsed: float) -> str:
        done = f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"
        line = f"  {self.label}: {done} {self.unit} ({self.done / elapsed:,.0f}/s)"
        if self.total_bytes is not None:
            bytes_done = self.bytes_done + self.bytes_in_flight()
            line += (f", {size_text(bytes_done)}/{size_text(self.total_bytes)} "
                     f"({size_text(bytes_done / elapsed)}/s)")
        detail = self.detail()
        return line + (f", {detail}" if detail else "")

    def summary(self) -> str:
        """The line as it stands, unindented: the step's last word on its progress."""
        return self._line(max(self.seconds, 0.001)).strip()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


def size_text(size: float) -> str:
    """A byte count for people: ``512 B``, ``1.5 MiB``."""
    units = ("B", "KiB", "MiB", "GiB")
    power = 0
    while size >= 1024 and power < len(units) - 1:
        size /= 1024
        power += 1
    return f"{size:,.0f} B" if power == 0 else f"{size:,.1f} {units[power]}"


def display_width(text: str) -> int:
    """The terminal columns ``text`` takes: two for a CJK character or most emoji, none
    for a combining mark (a Meeting Agent title or path is mostly Chinese)."""
    width = wcswidth(text)
    # wcswidth cannot measure control characters (-1); they have no width to align by.
    return len(text) if width < 0 else width


def padded(text: str, width: int, right: bool = False) -> str:
    """``text`` filled with spaces to ``width`` terminal columns."""
    fill = " " * (width - display_width(text))
    return fill + text if right else text + fill


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain text table, numbers right-aligned, columns measured in terminal columns."""
    cells = [[str(h) for h in headers]] + [
        [f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows
    ]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            padded(c, w, right=bool(i) and c[:1].isdigit())
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
        opened = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = directory.resolve() / "rejects" / f"{step}-{opened}.jsonl"
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


@dataclass(frozen=True)
class RecordedStep:
    """What a data step did, and when (``time.time()``), for the cutover report."""

    figures: dict[str, Any]
    started: float
    ended: float

    @property
    def name(self) -> str:
        return self.figures["step"]

    @property
    def seconds(self) -> float:
        return self.figures.get("seconds", 0.0)

    def as_json(self) -> dict[str, Any]:
        return {**self.figures, "started_at": stamp(self.started),
                "ended_at": stamp(self.ended)}


# What each data step did in this process, for the cutover report written at the end.
_steps: list[RecordedStep] = []
BETWEEN_STEPS = "between steps"
PREFLIGHT = "preflight"


def record_step(step: str, **figures: Any) -> None:
    """Keep what ``step`` did; its ``seconds`` ended now, which places it in the freeze
    window."""
    ended = time.time()
    _steps.append(RecordedStep({"step": step, **figures}, ended - figures.get("seconds", 0),
                               ended))


def stamp(moment: float) -> str:
    """A moment (``time.time()``) as the reports write it: ISO 8601 in UTC."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def freeze_window(steps: list[RecordedStep], command_started: float | None = None,
                  preflight_seconds: float | None = None) -> dict[str, Any]:
    """The app's freeze as the operator lives it: from the command's start
    (``command_started``, preflight included; else the first step's start) to the end of the
    last step, and each step's share. ``preflight_seconds`` is the preflight's own share.
    What the steps' own times leave (commits, schema revisions, connecting) is the share
    "between steps", so that the shares add up to the window."""
    started = min(step.started for step in steps)
    if command_started is not None:
        started = min(started, command_started)
    ended = max(step.ended for step in steps)
    window = ended - started
    shares = [] if preflight_seconds is None else [(PREFLIGHT, preflight_seconds)]
    shares += [(step.name, step.seconds) for step in steps]
    shares.append((BETWEEN_STEPS, max(window - sum(seconds for _, seconds in shares), 0.0)))
    return {"started_at": stamp(started), "ended_at": stamp(ended), "seconds": window,
            "shares": [{"step": name, "seconds": seconds,
                        "percent": 100 * seconds / window if window else 0.0}
                       for name, seconds in shares]}


def report_table(steps: list[RecordedStep], window: dict[str, Any]) -> str:
    """One line per step with its time and share of the freeze window, then the window."""
    summaries = {step.name: step.figures.get("summary", "") for step in steps}
    summaries[BETWEEN_STEPS] = "commits, schema revisions, checks"
    summaries[PREFLIGHT] = "every check before anything is written"
    rows = [(share["step"], summaries[share["step"]], f"{share['seconds']:.1f}s",
             f"{share['percent']:.1f}%") for share in window["shares"]]
    rows.append(("freeze window", f"{window['started_at']} to {window['ended_at']}",
                 f"{window['seconds']:.1f}s", "100.0%"))
    return table(("step", "result", "time", "share"), rows)


def recorded_steps(forget: bool = False) -> list[RecordedStep]:
    """The steps recorded in this process so far; ``forget`` drops them (a dry run's,
    which no cutover report takes)."""
    steps = list(_steps)
    if forget:
        _steps.clear()
    return steps


def cutover_document(command_started: float | None = None,
                     preflight_seconds: float | None = None) -> dict[str, Any] | None:
    """The steps recorded in this run and the freeze window they made (None when no data
    step ran), with a one-line-per-step summary printed; the record starts afresh."""
    if not _steps:
        return None
    window = freeze_window(_steps, command_started, preflight_seconds)
    log.info("Cutover report:\n" + report_table(_steps, window))
    steps = [step.as_json() for step in _steps]
    _steps.clear()
    return {"finished_at": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
            "freeze_window": window, "steps": steps}


def report_path(directory: Path, name: str) -> Path:
    """Where the report of a ``name`` run (cutover, plan, presync, verify) ending now goes."""
    ended = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return directory.resolve() / f"{name}-{ended}.json"


def write_json(path: Path, document: dict[str, Any], committed: str) -> None:
    """Write a report; a folder that takes no writes is a failure saying what ``committed``
    (what the run left done), so nobody rolls back for a report."""
    text = json.dumps(document, indent=2, ensure_ascii=False, default=_json_safe) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataMigrationError(
            f"cannot write the cutover report to REPORTS_DIR ({path.parent}): "
            f"{exc.strerror or exc}; {committed} and the report is printed "
            f"above; make the folder writable for the next run") from None
    log.info(f"Written to {path}")


def write_cutover_report(directory: Path) -> Path | None:
    """Write the steps recorded in this run and the freeze window they made as JSON, and
    print a one-line-per-step summary."""
    document = cutover_document()
    if document is None:
        return None
    path = report_path(directory, "cutover")
    write_json(path, document, "the migrations are committed")
    return path
