"""The sections of the report page, top first (``ORDER``); each returns its HTML, or
nothing when the run has nothing of that kind to tell."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from data_migrations.report_page import troubleshooting
from data_migrations.report_page.timeline import Bar, svg
from data_migrations.report_page.words import word
from data_migrations.run.report import size_text

if TYPE_CHECKING:
    from data_migrations.report_page.page import Related

FREEZE_PARTS = ("rows", "files", "paths")


@dataclass
class Page:
    document: dict[str, Any]
    around: Related
    language: str

    def t(self, key: str) -> str:
        """The words of ``key``, for a table cell (which escapes them)."""
        return word(key, self.language)

    def w(self, key: str) -> str:
        """The words of ``key`` as HTML."""
        return escape(word(key, self.language))

    @property
    def command(self) -> str:
        return self.document.get("command", "migrate")

    def step(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.document.get("steps", []) if s.get("step") == name), None)

    @property
    def verify(self) -> dict[str, Any] | None:
        """The verify this page tells of: the run itself, or the one after the cutover."""
        return self.document if self.command == "verify" else self.around.verify

    def failing_checks(self) -> list[dict[str, Any]]:
        return [c for c in self.document.get("checks", []) if not c.get("passed")]

    def failed_lines(self) -> list[str]:
        return list(self.document.get("failed", [])) + [
            f"FAIL {c['kind']} {c['subject']}: {c['detail']}" for c in self.failing_checks()]

    def left_behind(self) -> dict[str, int]:
        """The rows per table the app wrote after the snapshot and the target lacks
        (``left_behind``: ``{"<table>": {"new": n, "changed": n}}``), the tables with none
        left out."""
        left = self.document.get("left_behind") or {}
        counts = {str(table): int(rows.get("new", 0)) + int(rows.get("changed", 0))
                  for table, rows in left.items() if isinstance(rows, dict)}
        return {table: rows for table, rows in counts.items() if rows}


def section(key: str, body: str, page: Page, name: str = "") -> str:
    return (f'<section id="{escape(name or key)}"><h2>{page.w(key)}</h2>{body}</section>')


def grid(headers: Sequence[str], rows: Sequence[Sequence[Any]], name: str = "") -> str:
    """A table; numbers right-aligned with thousands separators."""
    def cell(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"<td>{value if isinstance(value, Markup) else escape(str(value))}</td>"
        return f'<td class="n">{value:,}</td>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    head = f"<tr>{head}</tr>" if any(headers) else ""
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<table class="{name}">{head}{body}</table>'


class Markup(str):
    """HTML already escaped, put into a cell as it is."""


def inline_markdown(text: str) -> str:
    """The troubleshooting table's `code` and [links](…) as the page shows them."""
    shown = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", escape(text))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", shown)


def verdict_keys(page: Page) -> tuple[str, str, bool]:
    """The verdict's words, the next step's words, and whether all is well."""
    if page.failed_lines():
        return "failed", "failed" if page.document.get("failed") else "failed.checks", False
    if page.left_behind():
        return "left_behind", "left_behind", False
    if page.command == "migrate" and page.verify:
        if failing(page.verify):
            return "migrate.unverified", "failed.checks", False
        return "migrate.verified", "migrate.verified", True
    return page.command, page.command, True


def verdict(page: Page) -> str:
    key, after, well = verdict_keys(page)
    return (f'<div id="verdict" class="verdict {"ok" if well else "bad"}"><div class="line">'
            f'{page.w("verdict." + key)}</div><p class="next">{page.w("next." + after)}</p></div>')


def failing(report: dict[str, Any]) -> bool:
    return bool(report.get("failed")) or any(not c.get("passed")
                                             for c in report.get("checks", []))


def failures(page: Page) -> str:
    lines = page.failed_lines()
    if not lines:
        return ""
    entries = troubleshooting.for_lines(lines)
    shown = "".join(
        f'<div class="entry"><div><a href="{escape(troubleshooting.DOCUMENT.as_uri())}'
        f'#{entry.anchor}">docs/troubleshooting.md#{escape(entry.anchor)}</a> '
        f'<span class="muted">{escape(entry.section)}</span></div>'
        f"<div>{inline_markdown(entry.message)}</div><div>{inline_markdown(entry.advice)}</div>"
        "</div>" for entry in entries)
    advice = f"<h3>{page.w('troubleshooting')}</h3>{shown}" if entries else ""
    return section("failures", f'<pre class="failed">{escape(chr(10).join(lines))}</pre>'
                   + advice, page)


def left_behind(page: Page) -> str:
    left = page.left_behind()
    if not left:
        return ""
    return section("left_behind", grid((page.w("table.table"), page.w("table.dev")),
                                       sorted(left.items())), page)


def freeze_bars(page: Page) -> list[Bar]:
    document = page.document
    bars = [Bar("presync", duration(p), f"({p['started_at'][:16].replace('T', ' ')})",
                chained=False) for p in page.around.presyncs]
    window = document.get("freeze_window")
    if window:
        bars += [Bar(share["step"], share["seconds"]) for share in window["shares"]]
    else:
        preflight = document.get("preflight_seconds") or 0.0
        if preflight:
            bars.append(Bar("preflight", preflight))
        bars.append(Bar("run", max(duration(document) - preflight, 0.0)))
    if page.command == "migrate" and page.around.verify:
        bars.append(Bar("verify", duration(page.around.verify)))
    return bars


def duration(report: dict[str, Any]) -> float:
    started, ended = (datetime.fromisoformat(report[k]) for k in ("started_at", "ended_at"))
    return (ended - started).total_seconds()


def timeline(page: Page) -> str:
    window = page.document.get("freeze_window")
    if page.command == "migrate":
        total = window["seconds"] if window else duration(page.document)
        preflight = page.document.get("preflight_seconds") or 0.0
        caption = (f'<p id="freeze-total">{page.w("freeze.total")}: <b>{total:,.1f} s</b>'
                   f' ({page.w("freeze.preflight")} {preflight:,.1f} s)</p>')
        key = "timeline"
    else:
        caption, key = "", "timeline.run"
    return section(key, caption + svg(freeze_bars(page), page.language), page, "timeline")


def predicted(page: Page) -> str:
    forecast = page.document.get("predicted_freeze")
    if not forecast:
        return ""
    window = page.document.get("freeze_window")
    measured = {s["step"]: s["seconds"] for s in window["shares"]} if window else {}
    rows = [(page.t(f"step.{part}"), f"{forecast.get(f'{part}_seconds', 0.0):,.1f} s",
             f"{measured[part]:,.1f} s" if part in measured else "-") for part in FREEZE_PARTS]
    rows.append((page.t("predicted.total"), f"{forecast.get('total_seconds', 0.0):,.1f} s",
                 f"{window['seconds']:,.1f} s" if window else "-"))
    headers = [page.w("predicted.part"), page.w("predicted.predicted")]
    if window:
        headers.append(page.w("predicted.measured"))
    else:
        rows = [row[:2] for row in rows]
    basis = (f'<p class="muted">{page.w("predicted.basis")}: '
             f'{escape(str(forecast.get("basis", "")))}</p>')
    return section("predicted" if window else "predicted.only", grid(headers, rows) + basis,
                   page, "predicted")


def tables(page: Page) -> str:
    rows_step = page.step("rows")
    if not rows_step:
        return ""
    rows = [(t["table"], t["read"], t["written"], t["rejected"],
             page.t("yes") if t.get("verified") == "ok" else Markup(
                 f'<span class="fail">{page.w("no")}</span>')) for t in rows_step["tables"]]
    body = grid([page.w(k) for k in ("table.table", "table.dev", "table.copied",
                                     "table.rejected", "table.checksum")], rows, "tables")
    if rows_step.get("rejects_file"):
        body += (f'<p>{page.w("rejects_file")} <code>'
                 f'{escape(str(rows_step["rejects_file"]))}</code></p>')
    return section("tables", body, page)


def files(page: Page) -> str:
    figures = page.step("files") or page.document.get("files")
    if not figures:
        return ""
    counts, sizes = figures.get("files", {}), figures.get("bytes", {})
    rows = [(page.t(f"kind.{kind}"), count, size_text(sizes.get(kind, 0)))
            for kind, count in counts.items() if count]
    rows.append((page.t("files.excluded"), figures.get("excluded", 0), "-"))
    refused = figures.get("refused", [])
    rows.append((page.t("files.refused"), len(refused), "-"))
    body = grid((page.w("files.kind"), page.w("files.count"), page.w("files.bytes")), rows,
                "files")
    if refused:
        body += f'<pre class="failed">{escape(chr(10).join(refused))}</pre>'
    return section("files", body, page)


def urls(page: Page) -> str:
    if page.command not in ("migrate", "verify"):
        return ""
    verify = page.verify
    if verify is None and page.document.get("failed"):
        return ""  # a cutover that failed has nothing to fetch yet
    if verify is None:
        return section("urls", f'<p class="muted">{page.w("urls.none")}</p>', page)
    fetched = [c for c in verify.get("checks", []) if c.get("kind") == "fetch"]
    rows = [(c["subject"], Markup(f'<span class="{"" if c["passed"] else "fail"}">'
                                  f'{page.w("pass" if c["passed"] else "FAIL")}</span>'),
             c["detail"]) for c in fetched]
    return section("urls", grid((page.w("check.subject"), page.w("check.result"),
                                 page.w("check.detail")), rows, "urls"), page)


def checks(page: Page) -> str:
    """A verify's checks; on a cutover's page, those of the verify after it that failed."""
    verify = page.verify
    if verify is None:
        return ""
    listed = [c for c in verify.get("checks", [])
              if page.command == "verify" or not c.get("passed")]
    if not listed:
        return ""
    rows = [(c["kind"], c["subject"], Markup(
        f'<span class="{"" if c["passed"] else "fail"}">'
        f'{page.w("pass" if c["passed"] else "FAIL")}</span>'), c["detail"]) for c in listed]
    notes = verify.get("notes") or []
    shown = f"<pre>{escape(chr(10).join(notes))}</pre>" if notes else ""
    return section("checks", grid([page.w(f"check.{k}") for k in ("kind", "subject", "result",
                                                                   "detail")], rows) + shown,
                   page)


def run(page: Page) -> str:
    document = page.document
    revisions = document.get("revisions") or {}
    machine = document.get("machine") or {}
    rows = [(page.t("run.started"), document.get("started_at", "")),
            (page.t("run.ended"), document.get("ended_at", ""))]
    if revisions:
        rows += [(page.t("run.revisions_from"), ", ".join(revisions.get("from", []))),
                 (page.t("run.revisions_ran"), ", ".join(revisions.get("ran", [])) or "-")]
    rows += [(f'{page.t("run.machine")}: {k}', v) for k, v in machine.items()]
    settings = sorted((document.get("settings") or {}).items())
    return section("run", grid(("", ""), rows, "run") + f"<h3>{page.w('settings')}</h3>"
                   + grid(("", ""), settings, "settings"), page)


def rollback(page: Page) -> str:
    commands = page.document.get("rollback")
    if not commands:
        return ""
    return section("rollback", f"<p>{page.w('rollback.intro')}</p><pre>"
                   f"{escape(chr(10).join(commands))}</pre>", page)


ORDER: tuple[Callable[[Page], str], ...] = (
    verdict, failures, left_behind, timeline, predicted, tables, files, urls, checks, run,
    rollback)
