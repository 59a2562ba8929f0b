"""What the app feels while schema revisions run on the live database, under the lock
settings the project ships with.

For each operation, written as revisions the way docs/runbook.md teaches (add a column with
a constant default; an index built CONCURRENTLY; a foreign key NOT VALID, then validated;
SET NOT NULL through a validated CHECK; a batched backfill), on a fresh database of one
throwaway PostgreSQL (``devtools.postgres_server``): ``alembic upgrade`` to the schema
(0001-0004, no SOURCE_DATABASE_URL) and any revision the operation needs first,
``audit_logs`` filled with ``--rows`` rows (generate_series; its integer key is one the
batched backfill can walk, which ``tasks``' uuid is not), then, at the same time:

- a report query: ``BEGIN; SELECT count(*) FROM audit_logs; SELECT pg_sleep(<hold>);
  COMMIT``, holding ACCESS SHARE on ``audit_logs`` for ``--hold`` seconds, started just
  before the migration;
- the app: one ``audit_logs`` row updated every ``--every`` seconds, each in its own short
  transaction on its own connection, its latency recorded, until the migration and the
  report have both ended;
- the migration: ``alembic -c <copy>/alembic.ini upgrade head`` in a subprocess, as
  ``make migrate`` runs it (alembic/env.py's lock timeout and retries), on a copy of the
  script directory with the operation's revisions added.

The lock settings (LOCK_TIMEOUT, LOCK_RETRIES, LOCK_RETRY_BACKOFF) are not set here: the
migration runs with their defaults, or with what the caller's environment says (the line
above the table tells which). One row per operation: the app's writes, p99 and worst wait,
the migration's wall time and exit code, and the lock attempts it logged as timed out
(its ``(attempt N of M)`` warning lines), against the goal of a worst wait of 200 ms. It
asserts nothing.

    python -m bench.online [--rows 100000] [--hold 20] [--every 0.05] [--only add-column]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import settings
from data_migrations.run.report import log_to_stderr
from devtools.postgres_server import PostgresServer, running_server
from settings import declared

log = logging.getLogger("cutover.bench")

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 0.2
SCHEMA_HEAD = "0004"  # the cutover's own revisions; without a source, schema only
FIRST_NEW = 5  # the number of the first revision after them
LOCK_SETTINGS = (declared.LOCK_TIMEOUT, declared.LOCK_RETRIES, declared.LOCK_RETRY_BACKOFF)
ATTEMPT_LINE = re.compile(r"\(attempt \d+ of \d+\)")  # a revision's or a batch's timed-out wait
USERS = 100
STARTS_WITHIN = 60.0  # seconds for the report query's count(*) to get its lock

REVISION = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
{imports}
revision: str = "{revision}"
down_revision: str | Sequence[str] | None = "{down_revision}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
{preamble}

def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''

USERS_FILL = """
INSERT INTO users (username, tenant_id, role, is_active, created_at)
SELECT 'bench-user-' || n, 'bench', 'member', true, now() FROM generate_series(1, :users) AS n"""
AUDIT_LOGS_FILL = """
INSERT INTO audit_logs (user_id, action, provider, cost, currency, ip_address,
                        created_at{columns})
SELECT 1 + n % :users, 'asr.transcribe', 'volcengine', (n % 1000) / 100.0, 'cny',
       '10.0.' || (n / 256 % 256) || '.' || (n % 256), now() - n * interval '1 second'{values}
FROM generate_series(1, :rows) AS n"""
APP_WRITE = sa.text("UPDATE audit_logs SET cost = cost + 0.01 WHERE id = :id")


@dataclass(frozen=True)
class Revision:
    """One revision file: its message, and the bodies of upgrade() and downgrade()."""

    message: str
    upgrade: str
    downgrade: str
    imports: str = ""
    preamble: str = ""  # module-level code after the identifiers

    def text(self, revision: str, down_revision: str) -> str:
        return REVISION.format(
            message=self.message, revision=revision, down_revision=down_revision,
            imports=f"{self.imports}\n" if self.imports else "",
            preamble=f"\n{textwrap.dedent(self.preamble).strip()}\n" if self.preamble else "",
            upgrade=body(self.upgrade), downgrade=body(self.downgrade))


def body(code: str) -> str:
    return textwrap.indent(textwrap.dedent(code).strip(), "    ")


@dataclass(frozen=True)
class Operation:
    """A schema change as revisions: ``setup`` runs before the rows go in (not measured),
    ``measured`` while the report and the app run. ``fill``: the columns of ``audit_logs``
    a setup revision added, each with its value for generated row ``n`` (SQL)."""

    name: str
    measured: tuple[Revision, ...]
    setup: tuple[Revision, ...] = ()
    fill: Mapping[str, str] = field(default_factory=dict)

    def revisions(self) -> list[tuple[str, Revision]]:
        """Every revision with its id, in order after the cutover's own."""
        every = (*self.setup, *self.measured)
        return [(f"{FIRST_NEW + i:04d}", r) for i, r in enumerate(every)]

    def setup_head(self) -> str:
        """The revision the database is upgraded to before the rows go in."""
        return self.revisions()[len(self.setup) - 1][0] if self.setup else SCHEMA_HEAD

    def measured_span(self) -> str:
        ids = [rev for rev, _ in self.revisions()[len(self.setup):]]
        return ids[0] if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"


NOT_NULL_CHECK = "ck_audit_logs_provider_not_null"
ACTOR_FK = "fk_audit_logs_actor_id_users"
OPERATIONS = (
    Operation("add-column", measured=(Revision(
        "add audit_logs.source, 'app' for every row",
        upgrade='''
            # A constant default: PostgreSQL 11+ keeps it in the catalog, no rewrite; the
            # ACCESS EXCLUSIVE lock is held for an instant, once granted.
            op.add_column("audit_logs", sa.Column("source", sa.String(16),
                                                  server_default="app", nullable=False))''',
        downgrade='op.drop_column("audit_logs", "source")'),)),
    Operation("index", measured=(Revision(
        "index audit_logs.ip_address, built concurrently",
        imports="from data_migrations.online.indexes import create_index_concurrently, "
                "drop_index_concurrently",
        upgrade='create_index_concurrently("ix_audit_logs_ip_address", "audit_logs", '
                '["ip_address"])',
        downgrade='drop_index_concurrently("ix_audit_logs_ip_address", "audit_logs")'),)),
    Operation(
        "foreign-key",
        setup=(Revision("add audit_logs.actor_id",
                        upgrade='op.add_column("audit_logs", sa.Column("actor_id", '
                                'sa.Integer(), nullable=True))',
                        downgrade='op.drop_column("audit_logs", "actor_id")'),),
        fill={"actor_id": "1 + (n * 7) % :users"},
        measured=(
            Revision(
                "foreign key audit_logs.actor_id to users, NOT VALID",
                upgrade=f'''
                    op.execute("ALTER TABLE audit_logs ADD CONSTRAINT {ACTOR_FK} "
                               "FOREIGN KEY (actor_id) REFERENCES users (id) "
                               "ON DELETE SET NULL NOT VALID")''',
                downgrade=f'op.drop_constraint(op.f("{ACTOR_FK}"), "audit_logs", '
                          'type_="foreignkey")'),
            Revision(
                f"validate {ACTOR_FK}",
                upgrade=f'op.execute("ALTER TABLE audit_logs VALIDATE CONSTRAINT {ACTOR_FK}")',
                downgrade="pass  # a validated constraint stays one: nothing to undo"),
        )),
    Operation("set-not-null", measured=(
        Revision(
            "audit_logs.provider: CHECK (provider IS NOT NULL), NOT VALID",
            upgrade=f'''
                op.execute("ALTER TABLE audit_logs ADD CONSTRAINT {NOT_NULL_CHECK} "
                           "CHECK (provider IS NOT NULL) NOT VALID")''',
            downgrade=f'op.drop_constraint(op.f("{NOT_NULL_CHECK}"), "audit_logs", '
                      'type_="check")'),
        Revision(
            f"validate {NOT_NULL_CHECK}",
            upgrade=f'op.execute("ALTER TABLE audit_logs VALIDATE CONSTRAINT {NOT_NULL_CHECK}")',
            downgrade="pass  # a validated constraint stays one: nothing to undo"),
        Revision(
            "audit_logs.provider NOT NULL, through the validated check",
            upgrade=f'''
                # The valid check proves it: PostgreSQL 12+ skips the table scan.
                op.alter_column("audit_logs", "provider", existing_type=sa.String(32),
                                nullable=False)
                op.drop_constraint(op.f("{NOT_NULL_CHECK}"), "audit_logs", type_="check")''',
            downgrade=f'''
                op.execute("ALTER TABLE audit_logs ADD CONSTRAINT {NOT_NULL_CHECK} "
                           "CHECK (provider IS NOT NULL) NOT VALID")
                op.alter_column("audit_logs", "provider", existing_type=sa.String(32),
                                nullable=True)'''),
    )),
    Operation(
        "backfill",
        setup=(Revision("add audit_logs.currency_code",
                        upgrade='op.add_column("audit_logs", sa.Column("currency_code", '
                                'sa.String(8), nullable=True))',
                        downgrade='op.drop_column("audit_logs", "currency_code")'),),
        measured=(Revision(
            "backfill audit_logs.currency_code in batches",
            imports="from data_migrations.online.backfill import Backfill, "
                    "backfill_in_batches, forget_backfill",
            preamble='''
                CURRENCY_CODE = Backfill(name="bench_audit_logs_currency_code",
                                         table="audit_logs", set="currency_code = upper(currency)",
                                         where="currency_code IS NULL")''',
            upgrade="backfill_in_batches(CURRENCY_CODE)",
            downgrade="forget_backfill(CURRENCY_CODE)"),)),
)


@dataclass(frozen=True)
class Result:
    operation: Operation
    latencies: list[float]
    migration_seconds: float
    exit_code: int
    attempts_logged: int

    def worst(self) -> float:
        return max(self.latencies)

    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98]

    def cells(self) -> list[str]:
        return [self.operation.name, self.operation.measured_span(),
                f"{len(self.latencies):,}", f"{self.p99() * 1000:.1f} ms",
                f"{self.worst() * 1000:.1f} ms", f"{self.migration_seconds:.1f} s",
                str(self.exit_code), str(self.attempts_logged),
                "ok" if self.worst() <= GOAL_SECONDS else "over"]


HEADER = ["operation", "revisions", "app writes", "app p99", "app worst", "migration",
          "exit", "lock attempts timed out", "goal"]


def script_copy(directory: Path, operation: Operation) -> Path:
    """A copy of alembic.ini and the script directory (env.py, script.py.mako, versions/)
    with the operation's revisions added; the copy's alembic.ini. Its script_location is
    ``%(here)s/alembic`` and its ``[cutover]`` section the same, so the copy runs as the
    repository does."""
    shutil.copy(ROOT / "alembic.ini", directory / "alembic.ini")
    scripts = directory / "alembic"
    (scripts / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(ROOT / "alembic" / name, scripts / name)
    for revision in (ROOT / "alembic" / "versions").glob("*.py"):
        shutil.copy(revision, scripts / "versions" / revision.name)
    down = SCHEMA_HEAD
    for rev, revision in operation.revisions():
        slug = re.sub(r"\W+", "_", revision.message.lower()).strip("_")[:40]
        (scripts / "versions" / f"{rev}_{slug}.py").write_text(revision.text(rev, down))
        down = rev
    return directory / "alembic.ini"


def settings_environment() -> dict[str, str]:
    """This process's environment without the cutover's settings, except the lock settings:
    left to their defaults unless the caller set them."""
    dropped = {s.name for s in declared.DECLARED} - {s.name for s in LOCK_SETTINGS}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def migration_environment(url: str) -> dict[str, str]:
    """The migration's environment: DATABASE_URL, and the project on the path for env.py
    and the revisions."""
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**settings_environment(), "DATABASE_URL": url,
            "PYTHONPATH": os.pathsep.join(path)}


def lock_settings_line(environment: Mapping[str, str]) -> str:
    read = settings.read(load_env_file=False, environ=environment)
    given = [s.name for s in LOCK_SETTINGS if s.name in read.explicit]
    values = ", ".join(f"{s.name}={read.texts[s.name]}" for s in LOCK_SETTINGS)
    source = f"{', '.join(given)} from the environment" if given else "the defaults"
    return f"Lock settings: {values} ({source})"


def alembic(ini: Path, environment: Mapping[str, str],
            target: str) -> subprocess.CompletedProcess[str]:
    """``alembic -c <ini> upgrade <target>`` in a subprocess, as make migrate runs it."""
    return subprocess.run([sys.executable, "-m", "alembic", "-c", str(ini), "upgrade", target],
                          env=environment, cwd=ini.parent, capture_output=True, text=True,
                          timeout=900)


def populate(engine: sa.Engine, rows: int, fill: Mapping[str, str]) -> None:
    columns = "".join(f", {name}" for name in fill)
    values = "".join(f", {value}" for value in fill.values())
    with engine.begin() as connection:
        connection.execute(sa.text(USERS_FILL), {"users": USERS})
        connection.execute(sa.text(AUDIT_LOGS_FILL.format(columns=columns, values=values)),
                           {"users": USERS, "rows": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE users, audit_logs"))


class App(threading.Thread):
    """The app: a random one of the ``rows`` rows of ``audit_logs`` updated every ``every``
    seconds, each update its own transaction on its own connection; the latency of each
    recorded."""

    def __init__(self, engine: sa.Engine, rows: int, every: float) -> None:
        super().__init__(name="app")
        self.engine = engine
        self.rows = rows
        self.every = every
        self.latencies: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        chance = random.Random(7)
        with self.engine.connect() as connection:
            while not self.stopped.is_set():
                began = time.monotonic()
                with connection.begin():
                    connection.execute(APP_WRITE, {"id": chance.randint(1, self.rows)})
                self.latencies.append(time.monotonic() - began)
                self.stopped.wait(self.every)

    def stop(self) -> list[float]:
        self.stopped.set()
        self.join()
        return self.latencies


def report_query(engine: sa.Engine, hold: float, holding: threading.Event) -> None:
    """A long report: ACCESS SHARE on audit_logs from its count(*) to its commit."""
    with engine.connect() as connection, connection.begin():
        connection.execute(sa.text("SELECT count(*) FROM audit_logs"))
        holding.set()
        connection.execute(sa.text("SELECT pg_sleep(:hold)"), {"hold": hold})


def engine_for(url: str, application_name: str) -> sa.Engine:
    """An engine whose sessions pg_stat_activity (and so the migration's blocker lines)
    names ``application_name``."""
    return sa.create_engine(url, poolclass=NullPool,
                            connect_args={"application_name": application_name})


def measure(server: PostgresServer, operation: Operation,
            args: argparse.Namespace) -> Result:
    """One operation on a fresh database: set up, fill, then the report, the app and the
    migration at once."""
    dbname = f"bench_online_{operation.name.replace('-', '_')}"
    with tempfile.TemporaryDirectory(prefix="bench-online-") as scratch, \
            server.database(dbname) as url:
        ini = script_copy(Path(scratch), operation)
        environment = migration_environment(url)
        prepared = alembic(ini, environment, operation.setup_head())
        if prepared.returncode != 0:
            raise SystemExit(f"FAILED: {operation.name}: alembic upgrade "
                             f"{operation.setup_head()} exited {prepared.returncode}:\n"
                             f"{prepared.stderr[-2000:]}")
        populate(engine_for(url, "bench-setup"), args.rows, operation.fill)
        return live_run(url, ini, environment, operation, args)


def live_run(url: str, ini: Path, environment: Mapping[str, str], operation: Operation,
             args: argparse.Namespace) -> Result:
    """The app writing, the report holding its lock, and the migration, until all end."""
    app = App(engine_for(url, "bench-app"), args.rows, args.every)
    app.start()
    holding = threading.Event()
    report = threading.Thread(target=report_query, name="report",
                              args=(engine_for(url, "bench-report"), args.hold, holding))
    report.start()
    if not holding.wait(STARTS_WITHIN):
        raise SystemExit(f"FAILED: {operation.name}: the report query did not start")
    began = time.monotonic()
    migration = alembic(ini, environment, "head")
    seconds = time.monotonic() - began
    report.join()
    latencies = app.stop()
    attempts = [line for line in migration.stderr.splitlines() if ATTEMPT_LINE.search(line)]
    for line in attempts:
        log.info("  %s", line)
    if migration.returncode != 0:  # its FAILED: line, or the last line of a traceback
        log.info("  exit %d: %s", migration.returncode,
                 (migration.stderr.strip().splitlines() or ["no output"])[-1])
    return Result(operation, latencies, seconds, migration.returncode, len(attempts))


def table(results: list[Result]) -> str:
    rows = [HEADER, *(result.cells() for result in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                        strict=True)).rstrip()
                     for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of audit_logs")
    parser.add_argument("--hold", type=float, default=20.0,
                        help="seconds the report query holds its lock")
    parser.add_argument("--every", type=float, default=0.05,
                        help="seconds between the app's updates")
    parser.add_argument("--only", choices=[o.name for o in OPERATIONS],
                        help="run this operation alone")
    args = parser.parse_args()
    log_to_stderr()
    operations = [o for o in OPERATIONS if args.only in (None, o.name)]
    log.info(lock_settings_line(settings_environment()))
    results = []
    with running_server() as server:
        for operation in operations:
            log.info("%s: %s rows of audit_logs, a report holding them %g s", operation.name,
                     f"{args.rows:,}", args.hold)
            results.append(measure(server, operation, args))
    log.info(table(results))
    log.info("goal: the app's worst wait ≤ %.0f ms with the default settings",
             GOAL_SECONDS * 1000)


if __name__ == "__main__":
    main()
