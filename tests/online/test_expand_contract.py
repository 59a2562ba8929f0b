"""Renaming a column without downtime, one revision a step, as the runbook tells it:
audit_logs.ip_address becomes client_ip.

    0005 expand     add client_ip, nullable (the running app does not know it yet), and
                    its index, CONCURRENTLY
         deploy     the app writes both columns
    0006 backfill   client_ip = ip_address on every row, in committed batches
         deploy     the app reads client_ip (and still writes both)
         deploy     the app writes client_ip only
    0007 contract   drop ip_address (its squawk rule waived, with the reason)

Each revision runs as ``make migrate`` runs it (``alembic upgrade`` in a subprocess against
the real PostgreSQL), then its downgrade, then its upgrade again, while an app session keeps
writing and reading in the version deployed at that step. The revisions pass ``make lint``.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, fetch, version
from tests.online.app import Writers, writing
from tests.online.chain import released_copy

ROWS = 20_000
STEPS = {
    "0005_expand_audit_logs_client_ip.py": '''

def upgrade() -> None:
    # Nullable: the app that runs now inserts rows without it. IF NOT EXISTS: the index
    # build commits it, so a run whose build failed finds it there when it runs again.
    op.add_column("audit_logs", sa.Column("client_ip", sa.String(45), nullable=True),
                  if_not_exists=True)
    create_index_concurrently("ix_audit_logs_client_ip", "audit_logs", ["client_ip"])


def downgrade() -> None:
    drop_index_concurrently("ix_audit_logs_client_ip", "audit_logs")
    waive("ban-drop-column", reason="undoes the expand step: the app rolled back to "
                                    "neither reads nor writes client_ip")
    op.drop_column("audit_logs", "client_ip")
''',
    "0006_backfill_audit_logs_client_ip.py": '''
COPY = Backfill(name="0006_audit_logs_client_ip", table="audit_logs",
                set="client_ip = ip_address", where="client_ip IS DISTINCT FROM ip_address",
                batch_size=1000, pause_seconds=0.01)


def upgrade() -> None:
    backfill_in_batches(COPY)


def downgrade() -> None:
    # The values stay (client_ip goes with 0005's downgrade); an upgrade after this one
    # backfills again from the start.
    forget_backfill(COPY)
''',
    "0007_contract_audit_logs_ip_address.py": '''
RESTORE = Backfill(name="0007_audit_logs_ip_address", table="audit_logs",
                   set="ip_address = client_ip", where="ip_address IS DISTINCT FROM client_ip",
                   batch_size=1000, pause_seconds=0.01)


def upgrade() -> None:
    forget_backfill(RESTORE)  # so that a downgrade after this one restores every row
    waive("ban-drop-column", reason="contract step: the app that runs now neither reads "
                                    "nor writes ip_address")
    op.drop_column("audit_logs", "ip_address")


def downgrade() -> None:
    # Rerunnable: the backfill commits in batches, so a killed downgrade is run again.
    op.add_column("audit_logs", sa.Column("ip_address", sa.String(45), nullable=True),
                  if_not_exists=True)
    backfill_in_batches(RESTORE)
''',
}


class App:
    """The app's session, in the release deployed at each step: which columns it writes,
    which one it reads."""

    def __init__(self) -> None:
        self.writes = ("ip_address",)
        self.reads = "ip_address"
        self.written: list[tuple[float, int]] = []  # (when, id) of every row it wrote

    def written_since(self, moment: float) -> set[int]:
        return {key for when, key in self.written if when >= moment}

    def deploy(self, writes: tuple[str, ...], reads: str) -> None:
        self.writes, self.reads = writes, reads

    def work(self, connection: sa.Connection, chance: random.Random) -> None:
        address = f"10.1.{chance.randrange(256)}.{chance.randrange(256)}"
        columns = ", ".join(self.writes)
        values = ", ".join(":address" for _ in self.writes)
        began = time.monotonic()
        inserted = connection.execute(sa.text(
            f"INSERT INTO audit_logs (action, currency, created_at, {columns}) "
            f"VALUES ('task.create', 'cny', now(), {values}) RETURNING id"),
            {"address": address}).scalar_one()
        assignments = ", ".join(f"{column} = :address" for column in self.writes)
        updated = chance.randrange(1, ROWS)
        connection.execute(sa.text(f"UPDATE audit_logs SET {assignments} WHERE id = :id"),
                           {"address": address, "id": updated})
        self.written += [(began, inserted), (began, updated)]
        connection.execute(sa.text(f"SELECT {self.reads} FROM audit_logs WHERE id = :id"),
                           {"id": chance.randrange(1, ROWS)}).all()


class Migrations:
    """``alembic`` of the copy, as ``make migrate`` runs it, each run timed."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.output = ""
        self.environment = {**os.environ, "DATABASE_URL": database_url, "ENV": "",
                            "PYTHONPATH": str(root)}

    def run(self, *args: str) -> tuple[float, float]:
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "alembic", "-c",
                               str(self.root / "alembic.ini"), *args], cwd=self.root,
                              env=self.environment, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        self.output = done.stdout + done.stderr
        return began, time.monotonic()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return released_copy(tmp_path / "repo", STEPS)


@pytest.fixture
def migrations(root: Path, pg_url: str, pg_engine: sa.Engine) -> Migrations:
    """The target as production has it after the cutover: at 0004, audit_logs filled."""
    migrations = Migrations(root, pg_url)
    migrations.run("upgrade", "0001")
    migrations.run("stamp", "0004")
    with pg_engine.begin() as connection:
        connection.execute(sa.text(
            "INSERT INTO audit_logs (action, currency, ip_address, created_at) "
            "SELECT 'asr.transcribe', 'cny', '10.0.' || (n % 256) || '.' || (n / 256 % 256), "
            f"now() FROM generate_series(1, {ROWS}) AS n"))
    return migrations


def step(migrations: Migrations, writers: Writers, *args: str) -> None:
    """One migration run while the app works: the app kept committing, and never failed."""
    start, end = migrations.run(*args)
    assert writers.errors == [], args
    assert writers.committed_between(start, end) > 0, args


def columns(engine: sa.Engine) -> set[str]:
    return {name for (name,) in fetch(engine, "SELECT column_name FROM "
                                              "information_schema.columns WHERE "
                                              "table_name = 'audit_logs'")}


def test_a_column_renamed_in_expand_and_contract_steps_while_the_app_works(
    root: Path, migrations: Migrations, pg_engine: sa.Engine,
) -> None:
    app = App()
    with writing(pg_engine, app.work, threads=1) as writers:
        # The plan runs all three in one transaction it rolls back: the index and the
        # backfills, which commit on their own, are skipped with a line that says so.
        step(migrations, writers, "-x", "dry_run=true", "upgrade", "0007")
        assert version(pg_engine) == "0004"
        assert {"ip_address"} <= columns(pg_engine) and "client_ip" not in columns(pg_engine)
        for skipped in ("Dry run: index ix_audit_logs_client_ip is not built",
                        "Dry run: backfill 0006_audit_logs_client_ip is not run"):
            assert skipped in migrations.output
        step(migrations, writers, "upgrade", "0005")
        assert {"ip_address", "client_ip"} <= columns(pg_engine)
        assert fetch(pg_engine, "SELECT indisvalid FROM pg_index WHERE indexrelid = "
                                "'ix_audit_logs_client_ip'::regclass") == [(True,)]
        step(migrations, writers, "downgrade", "0004")
        assert "client_ip" not in columns(pg_engine)
        assert fetch(pg_engine, "SELECT to_regclass('ix_audit_logs_client_ip')") == [(None,)]
        step(migrations, writers, "upgrade", "0005")

        app.deploy(writes=("ip_address", "client_ip"), reads="ip_address")
        step(migrations, writers, "upgrade", "0006")
        assert fetch(pg_engine, "SELECT count(*) FROM audit_logs "
                                "WHERE client_ip IS DISTINCT FROM ip_address") == [(0,)]
        step(migrations, writers, "downgrade", "0005")
        step(migrations, writers, "upgrade", "0006")
        assert fetch(pg_engine, "SELECT count(*) FROM audit_logs "
                                "WHERE client_ip IS DISTINCT FROM ip_address") == [(0,)]

        app.deploy(writes=("ip_address", "client_ip"), reads="client_ip")
        app.deploy(writes=("client_ip",), reads="client_ip")
        step(migrations, writers, "upgrade", "0007")
        assert "ip_address" not in columns(pg_engine)
        began = time.monotonic()
        step(migrations, writers, "downgrade", "0006")
        # Every row has its old column back but those the app (writing client_ip only)
        # wrote while the downgrade ran: the runbook's rollback then deploys the app that
        # writes both and copies those few rows.
        differ = {key for (key,) in fetch(pg_engine, "SELECT id FROM audit_logs WHERE "
                                                     "ip_address IS DISTINCT FROM client_ip")}
        assert differ <= app.written_since(began)
        step(migrations, writers, "upgrade", "0007")

    assert version(pg_engine) == "0007"
    assert "ip_address" not in columns(pg_engine)
    # 0007 drops ip_address in the release after the app stopped using it: that app's
    # models map it no more, or make lint refuses the drop (drop-mapped), waived or not.
    shutil.copytree(ROOT / "models", root / "models", ignore=shutil.ignore_patterns("__pycache__"))
    tables = root / "models" / "tables.py"
    tables.write_text(tables.read_text(encoding="utf-8").replace(
        "    ip_address: Mapped[str | None] = mapped_column(String(45))\n", ""), encoding="utf-8")
    lint = subprocess.run(["make", "-s", "-o", "install", "lint",
                           f"BIN={Path(sys.executable).parent}"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
