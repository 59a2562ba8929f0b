"""A throwaway PostgreSQL server for the tests, started with pytest-postgresql's executor.

The server runs as the current user, or as the ``postgres`` OS user when the tests run as
root (see devtools/bin/pg_ctl). Local socket connections are trusted (to set things up);
TCP connections need the password of the ``cutover`` role, as in production.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from pytest_postgresql.retry import retry

PG_CTL = Path(__file__).parent / "bin" / "pg_ctl"
ROLE = "cutover"
PASSWORD = "pg-test-secret-5f3a"  # the tests assert that it never leaks into output

PG_HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    socket_dir: str

    def url(self, dbname: str, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg2://{ROLE}:{password}@{self.host}:{self.port}/{dbname}"

    @contextmanager
    def database(self, dbname: str) -> Iterator[str]:
        """A new empty database, dropped afterwards; yields its URL."""
        with DatabaseJanitor(
            user=ROLE, host=self.host, port=self.port, dbname=dbname, password=PASSWORD
        ):
            yield self.url(dbname)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _hand_to_postgres_user(path: Path) -> None:
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(path, account.pw_uid, account.pw_gid)


@contextmanager
def running_server(attempts: int = 3) -> Iterator[PostgresServer]:
    """A started server; a port taken between choosing and binding it means a retry."""
    for attempt in range(1, attempts + 1):
        base = Path(tempfile.mkdtemp(prefix="cutover-pg-"))
        try:
            executor, port = _start(base)
            break
        except Exception:
            shutil.rmtree(base, ignore_errors=True)
            if attempt == attempts:
                raise
    try:
        _require_passwords(base, port)
        yield PostgresServer(host="127.0.0.1", port=port, socket_dir=str(base))
    finally:
        executor.stop()
        shutil.rmtree(base, ignore_errors=True)


def _start(base: Path) -> tuple[PostgreSQLExecutor, int]:
    base.chmod(0o755)
    _hand_to_postgres_user(base)
    port = _free_port()
    executor = PostgreSQLExecutor(
        executable=str(PG_CTL),
        host="127.0.0.1",
        port=port,
        datadir=str(base / "data"),
        unixsocketdir=str(base),
        logfile=str(base / "postgresql.log"),
        startparams="-w",
        dbname="postgres",
        user="postgres",
        # A throwaway server: no durability, and no autovacuum, whose workers (superuser
        # processes) a database's owner could not stop before dropping the database.
        postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                         "-c autovacuum=off",
    )
    executor.start()
    return executor, port


def _require_passwords(base: Path, port: int) -> None:
    # The port can accept connections a moment before the server has finished starting
    # ("the database system is starting up"): pytest-postgresql's retry waits that out.
    with retry(lambda: psycopg.connect(host=str(base), port=port, user="postgres",
                                       dbname="postgres", autocommit=True),
               timeout=60, possible_exception=psycopg.OperationalError) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        (base / "data" / "pg_hba.conf").write_text(PG_HBA)
        conn.execute("SELECT pg_reload_conf()")
