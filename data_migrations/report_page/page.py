"""The report page: one self-contained HTML file beside each JSON report (inline CSS and
SVG, no script, nothing fetched: it opens from a folder or a mail attachment alike).

Top first: the verdict and what to do next; the FAILED lines with the troubleshooting
entries they point to; rows left behind; the freeze window drawn (with the presyncs before
it and the verify after it, read from their reports in the same folder); predicted against
measured; rows per table; files per kind; the URLs verify fetched; the run itself
(times, revisions, machine, settings with secrets masked) and the commands that roll it
back. The words are REPORT_LANGUAGE's (words.py); the JSON is never rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from data_migrations.report_page import sections
from data_migrations.report_page.sections import Page

STYLE = """
body{font:14px/1.45 -apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
margin:24px auto;max-width:980px;color:#1d2430;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid
#d8dde6;padding-bottom:4px}.verdict{padding:14px 18px;border-radius:6px;margin:12px 0}
.verdict p{margin:4px 0 0}.ok{background:#e3f4ea;border:2px solid #2e9e6a}
.bad{background:#fde8ea;border:3px solid #c8283f}.bad .line{color:#a01828;font-size:20px;
font-weight:700}.ok .line{color:#1d6e47;font-size:20px;font-weight:700}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #d8dde6;padding:3px 8px;
text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f4f6f9;padding:8px 10px;overflow-x:auto;white-space:pre-wrap}
pre.failed{background:#fde8ea;color:#a01828}.entry{border-left:4px solid #e0a030;
padding:2px 10px;margin:8px 0}.fail{color:#a01828;font-weight:700}code{background:#f4f6f9;
padding:0 3px}.muted{color:#5a6474}th,td.n,td span{white-space:nowrap}
"""
# Nothing of the page may reach the network, whatever a value holds.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@dataclass
class Related:
    """The reports around a cutover in its folder: the presyncs before it, the verify
    after it."""

    presyncs: list[dict[str, Any]] = field(default_factory=list)
    verify: dict[str, Any] | None = None


def read_report(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "started_at" in document else None


def related(directory: Path, document: dict[str, Any]) -> Related:
    """For a cutover's report: the presyncs between the last cutover that succeeded before
    it and its start, and the last verify between its end and the next cutover."""
    if document.get("command") != "migrate":
        return Related()
    cutovers = [other for other in reports(directory, "cutover") if other != document]
    # A failed attempt before this one does not end the presyncs' part: they served it too.
    after_previous = max((c["ended_at"] for c in cutovers if c.get("outcome") == "succeeded"
                          and c["ended_at"] <= document["started_at"]), default="")
    before_next = min((c["started_at"] for c in cutovers
                       if c["started_at"] >= document["ended_at"]), default=None)
    verifies = [v for v in reports(directory, "verify")
                if document["ended_at"] <= v["started_at"]
                and (before_next is None or v["started_at"] < before_next)]
    return Related(
        presyncs=[p for p in reports(directory, "presync")
                  if after_previous <= p["started_at"] and p["ended_at"] <= document["started_at"]],
        verify=verifies[-1] if verifies else None)


def reports(directory: Path, name: str) -> list[dict[str, Any]]:
    """The readable reports of ``name`` runs in ``directory``, oldest first."""
    return [document for path in sorted(directory.glob(f"{name}-*.json"))
            if (document := read_report(path))]


def render(document: dict[str, Any], around: Related, language: str) -> str:
    page = Page(document, around, language)
    title = page.w(f"title.{document.get('command', 'migrate')}")
    body = "".join(part(page) for part in sections.ORDER)
    return (f'<!DOCTYPE html><html lang="{"zh-CN" if language == "zh" else "en"}"><head>'
            f'<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{POLICY}"><meta name="viewport" content="width=device-width">'
            f"<title>{escape(title)} {escape(document.get('started_at', ''))}</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}"
            "</body></html>\n")


def write(json_path: Path, document: dict[str, Any], language: str) -> Path:
    """The page of the report at ``json_path`` (holding ``document``), beside it."""
    path = json_path.with_suffix(".html")
    path.write_text(render(document, related(json_path.parent, document), language),
                    encoding="utf-8")
    return path


def rebuild(json_path: Path, language: str) -> Path | None:
    """The page of a report written earlier, built again (None: not a run's report)."""
    document = read_report(json_path)
    return None if document is None else write(json_path, document, language)


def rebuild_cutover_before(verify_path: Path, language: str) -> None:
    """A verify run puts itself on the page of the cutover it checked: the last one before
    it in the same folder."""
    verify = read_report(verify_path)
    if verify is None:
        return
    before = [path for path in sorted(verify_path.parent.glob("cutover-*.json"))
              if (cutover := read_report(path)) and cutover["ended_at"] <= verify["started_at"]]
    if before:
        rebuild(before[-1], language)
