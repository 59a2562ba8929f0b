"""What other commands add to a cutover's report, as its page shows them: the freeze the
plan predicted against the one measured, and rows the app wrote after the snapshot
(``left_behind``), which make the verdict a loud not-ready."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from data_migrations.report_page import page
from tests.report_page.browser import CHROMIUM, opened

# Starts a browser: not in make test-fast.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]

PREDICTED = {"rows_seconds": 40.0, "files_seconds": 120.0, "paths_seconds": 5.0,
             "total_seconds": 170.0, "basis": "the plan's row counts and the presync's rate"}


def cutover_report(**more: Any) -> dict[str, Any]:
    """A cutover's report as make migrate writes it: 10 s of preflight, then the steps."""
    shares = [("preflight", 10.0), ("rows", 50.0), ("files", 100.0), ("paths", 4.0),
              ("between steps", 6.0)]
    return {
        "command": "migrate", "outcome": "succeeded", "failed": [],
        "started_at": "2026-12-05T02:00:00.000+00:00",
        "ended_at": "2026-12-05T02:02:50.000+00:00", "preflight_seconds": 10.0,
        "freeze_window": {"started_at": "2026-12-05T02:00:00.000+00:00",
                          "ended_at": "2026-12-05T02:02:50.000+00:00", "seconds": 170.0,
                          "shares": [{"step": step, "seconds": seconds,
                                      "percent": 100 * seconds / 170}
                                     for step, seconds in shares]},
        "steps": [{"step": "rows", "seconds": 50.0, "rejects_file": None, "tables": [
            {"table": "users", "read": 1200, "written": 1200, "rejected": 0,
             "verified": "ok"}]}],
        "settings": {"STORAGE_SECRET_KEY": "***"}, "machine": {"host": "cutover-01"},
        **more}


def written(tmp_path: Path, document: dict[str, Any]) -> Path:
    report = tmp_path / "reports" / "cutover-20261205T020250Z.json"
    report.parent.mkdir()
    report.write_text(json.dumps(document))
    shown = page.rebuild(report, "en")
    assert shown is not None
    return shown


def test_the_predicted_freeze_is_shown_against_the_measured_one(tmp_path: Path) -> None:
    shown = written(tmp_path, cutover_report(predicted_freeze=PREDICTED))
    with opened(shown, tmp_path / "profile") as reader:
        assert reader.rows("#predicted") == [
            ["rows", "40.0 s", "50.0 s"], ["files", "120.0 s", "100.0 s"],
            ["paths", "5.0 s", "4.0 s"], ["total", "170.0 s", "170.0 s"]]
        assert PREDICTED["basis"] in reader.text("#predicted")
        assert reader.text("#verdict").startswith("Cutover finished")
        assert reader.requests == [shown.as_uri()]


def test_rows_left_behind_make_the_verdict_not_ready(tmp_path: Path) -> None:
    shown = written(tmp_path, cutover_report(
        left_behind={"tasks": {"new": 2, "changed": 1}, "users": {"new": 0, "changed": 0}}))
    with opened(shown, tmp_path / "profile") as reader:
        assert reader.text("#verdict").startswith("NOT READY: rows were left behind")
        assert "make catch-up" in reader.text("#verdict")
        assert reader.rows("#left_behind") == [["tasks", "3"]]
        assert reader.requests == [shown.as_uri()]
