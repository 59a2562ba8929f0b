"""The report pages of a cutover day, each opened in headless Chromium as the operator
opens it: a plan, a presync, the cutover and a verify whose URL fetch fails, on the real
PostgreSQL and the local TOS server through the real SDK; and a cutover that fails. What
is checked is what a reader sees: the verdict, a table's counts, the failing URL, the
timeline drawn, no secret, and no request leaving the page."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.postgres_server import PASSWORD
from tests.commands.test_verify_urls import local_tos
from tests.conftest import ROOT, SECRET_KEY, tos_env
from tests.report_page.browser import CHROMIUM, Opened, opened
from tests.runs import cutover_environment, failed_lines, one_failure

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]

ALEMBIC = (sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"))


def run(command: tuple[str, ...], env: dict[str, str], cwd: Path
        ) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def module(name: str) -> tuple[str, ...]:
    return (sys.executable, "-m", f"data_migrations.commands.{name}")


def page_of(reports: Path, name: str) -> Path:
    """The one page of a ``name`` run in REPORTS_DIR, beside its JSON report."""
    [report] = reports.glob(f"{name}-*.json")
    page = report.with_suffix(".html")
    assert page.is_file()
    return page


def seen(page_file: Path, profile: Path, reader: Callable[[Opened], None]) -> None:
    """Open the page, check that it holds no secret and asks for nothing but itself, and
    let ``reader`` check what it shows."""
    with opened(page_file, profile) as shown:
        html = shown.page.content()
        for secret in (SECRET_KEY, PASSWORD):
            assert secret not in html
        reader(shown)
        assert shown.requests == [page_file.as_uri()]


def dev_counts(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'")]
        return {name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                for name in names}


def test_the_pages_of_a_cutover_day_with_a_failing_url(tmp_path: Path, pg_url: str) -> None:
    reports = tmp_path / "reports"
    with local_tos(tmp_path / "tos") as server:
        # The objects are private (the bucket's default): the app's fetch of a URL fails.
        base_url = f"http://127.0.0.1:{server.port}"
        env = {**cutover_environment(tmp_path, pg_url), **tos_env(server),
               "STORAGE_PUBLIC_BASE_URL": base_url}
        assert not failed_lines(run((*ALEMBIC, "-x", "dry_run=true", "upgrade", "head"),
                                    env, tmp_path))
        assert not failed_lines(run(module("presync"), env, tmp_path))
        assert not failed_lines(run((*ALEMBIC, "upgrade", "head"), env, tmp_path))
        verify = run(module("verify"), env, tmp_path)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    verified = json.loads(next(reports.glob("verify-*.json")).read_text())
    [fetch] = [check for check in verified["checks"] if check["kind"] == "fetch"]
    failing_url = fetch["detail"].split("(")[1].split(",")[0].split(")")[0]
    assert failing_url.startswith(f"{base_url}/")
    for written in reports.iterdir():  # the JSON reports hold the settings too
        assert SECRET_KEY not in written.read_text() and PASSWORD not in written.read_text()

    def plan(shown: Opened) -> None:
        assert shown.text("#verdict").startswith("The plan found nothing to fix")
        assert "make presync" in shown.text("#verdict")

    seen(page_of(reports, "plan"), tmp_path / "profile-plan", plan)

    def presync(shown: Opened) -> None:
        assert shown.text("#verdict").startswith("Presync finished")
        sent = dict((row[0], row[1]) for row in shown.rows("table.files"))
        assert int(sent["sent now"].replace(",", "")) > 0

    seen(page_of(reports, "presync"), tmp_path / "profile-presync", presync)

    counts = dev_counts(tmp_path / "dev.db")

    def cutover(shown: Opened) -> None:
        assert shown.text("#verdict").startswith(
            "Cutover finished, but verify FAILED: not ready")
        rows = {row[0]: row[1:] for row in shown.rows("table.tables")}
        assert rows["users"] == [f"{counts['users']:,}", f"{counts['users']:,}", "0", "yes"]
        assert set(rows) == set(counts)
        bars = shown.drawn_bars()
        assert list(bars) == ["presync", "preflight", "rows", "files", "paths",
                              "between steps", "verify"]
        assert all(width > 0 for width in bars.values())
        assert "Freeze window, from the command's start" in shown.text("#freeze-total")
        assert failing_url in shown.text("table.urls")
        assert failing_url in shown.text("#checks")  # the verify's failing checks
        assert "make downgrade REV=base" in shown.text("#rollback")

    seen(page_of(reports, "cutover"), tmp_path / "profile-cutover", cutover)

    def verify_page(shown: Opened) -> None:
        assert shown.text("#verdict") == (
            "FAILED: not ready\n\nFix what the failing checks below name, then run make verify "
            "again.")
        assert failing_url in shown.text("#failures")
        assert failing_url in shown.text("table.urls")

    seen(page_of(reports, "verify"), tmp_path / "profile-verify", verify_page)


def test_the_page_of_a_failed_cutover_names_its_line_and_what_to_do(
        tmp_path: Path, pg_url: str) -> None:
    env = {**cutover_environment(tmp_path, pg_url), "UPLOADS_DIR": str(tmp_path / "missing"),
           "STORAGE_SECRET_KEY": SECRET_KEY}
    line = one_failure(run((*ALEMBIC, "upgrade", "head"), env, tmp_path))
    page = page_of(tmp_path / "reports", "cutover")
    document = json.loads(page.with_suffix(".json").read_text())
    assert document["outcome"] == "failed" and document["failed"] == [line]

    def english(shown: Opened) -> None:
        assert shown.text("#verdict").startswith("FAILED: not ready")
        assert line in shown.text("#failures pre")
        assert "docs/troubleshooting.md#the-preflight" in shown.text("#failures")
        assert list(shown.drawn_bars()) == ["preflight", "run"]
        assert "***" in shown.text("table.settings")

    seen(page, tmp_path / "profile-en", english)

    # The same report's page again, in Chinese: make report (the latest run's).
    rebuilt = run(module("report"), {**env, "REPORT_LANGUAGE": "zh"}, tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stderr.splitlines()[-1] == f"Report page: {page}"

    def chinese(shown: Opened) -> None:
        assert shown.text("#verdict").startswith("失败：不可上线")  # noqa: RUF001
        assert line in shown.text("#failures pre")
        assert shown.page.get_attribute("html", "lang") == "zh-CN"

    seen(page, tmp_path / "profile-zh", chinese)
    # make report REPORT=<json>: that run's page, in English again.
    named = run((*module("report"), str(page.with_suffix(".json"))), env, tmp_path)
    assert named.stderr.splitlines()[-1] == f"Report page: {page}"
    assert '<html lang="en">' in page.read_text()


def test_make_report_without_a_report_is_one_failed_line(tmp_path: Path) -> None:
    env = {**os.environ, "REPORTS_DIR": str(tmp_path / "empty")}
    line = one_failure(run(module("report"), env, tmp_path))
    assert line == (f"FAILED: REPORTS_DIR ({tmp_path / 'empty'}) holds no run's report: make "
                    "migrate, make plan, make presync and make verify write one")


def test_make_report_of_a_missing_file_is_one_failed_line(tmp_path: Path) -> None:
    env = {**os.environ, "REPORTS_DIR": str(tmp_path)}
    line = one_failure(run((*module("report"), str(tmp_path / "cutover-x.json")), env, tmp_path))
    assert line == f"FAILED: REPORT {tmp_path / 'cutover-x.json'} does not exist"
