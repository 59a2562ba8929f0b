"""What the DBA reviews is what will run: ``make sql`` writes the SQL of the revisions the
target has not run yet, ``make sql-downgrade`` the way back from where it is.

The starting point is ``FROM=<revision>`` when given, else the target's own
``alembic_version`` (DATABASE_URL, read only). Alembic renders the range offline
(``<from>:head --sql``) through alembic/env.py, so each revision comes under its
``-- Running upgrade`` header with the ``SET lock_timeout`` / ``statement_timeout`` lines
``make migrate`` runs (data_migrations/run/lock_retry.py). The SQL goes to a temporary
file renamed into place when complete: a failure leaves no file, and is one ``FAILED:``
line on stderr with exit status 1; Ctrl-C too leaves no file (data_migrations/run/failure.py).

    python -m data_migrations.commands.sql_review upgrade --out sql/upgrade-prod.sql
    python -m data_migrations.commands.sql_review downgrade --out sql/downgrade-prod.sql --to 0004
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

import settings
from data_migrations.run import failure
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.report import log_to_stderr
from settings import declared

log = logging.getLogger("cutover.sql")

CONNECT_TIMEOUT = 10  # seconds; an unreachable target is a FAILED line, not a hang


def current_revision(cutover: settings.Settings) -> str:
    """The target's revision (``base`` when it has none), read from ``alembic_version``."""
    url = cutover[declared.DATABASE_URL]
    if url is None:
        raise DataMigrationError("DATABASE_URL is not set, so the target's revision cannot "
                                 "be read: give FROM=<revision> (FROM=base for the whole "
                                 "chain)")
    # connect_timeout is libpq's; SQLite's driver refuses it (a target URL may be sqlite://).
    timeout = ({"connect_timeout": CONNECT_TIMEOUT}
               if sa.engine.make_url(url).get_backend_name() == "postgresql" else {})
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=timeout)
    try:
        with engine.connect() as connection:
            heads = MigrationContext.configure(connection).get_current_heads()
    except sa.exc.OperationalError as exc:
        raise DataMigrationError(
            f"cannot connect to {settings.mask_url(url)} to read its revision "
            f"({failure.driver_message(exc)}): give FROM=<revision> to render without it"
        ) from None
    finally:
        engine.dispose()
    if len(heads) > 1:
        raise DataMigrationError(f"the target has several heads ({', '.join(heads)}): give "
                                 "FROM=<revision>")
    return heads[0] if heads else "base"


def render(args: argparse.Namespace, start: str, to: str, header: str) -> None:
    """Alembic's offline SQL of ``start`` to ``to``, into ``args.out`` once complete."""
    out: Path = args.out
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (renamed or removed below)
            "w", encoding="utf-8", dir=out.parent, prefix=f".{out.name}.", delete=False)
    except OSError as exc:
        raise unwritable(out, exc) from None
    try:
        with handle:
            handle.write(header)
            config = Config(str(args.config), output_buffer=handle)
            config.attributes["configure_logger"] = False
            config.cmd_opts = argparse.Namespace(x=args.x)  # -x reaches env.py as from the CLI
            if args.direction == "upgrade":
                command.upgrade(config, f"{start}:{to}", sql=True)
            else:
                command.downgrade(config, f"{start}:{to}", sql=True)
            if handle.tell() == len(header.encode("utf-8")):
                handle.write(f"-- Nothing to run: {start} is where {to} is.\n")
        os.replace(handle.name, out)
    except BaseException as exc:
        os.unlink(handle.name)
        if isinstance(exc, OSError):
            raise unwritable(out, exc) from None
        raise


def unwritable(out: Path, exc: OSError) -> DataMigrationError:
    return DataMigrationError(f"cannot write the SQL to {out} ({exc.strerror or exc}): "
                              "give --out a path that can be written")


def review(args: argparse.Namespace) -> Path:
    cutover = settings.read({name.strip(): value
                             for name, _, value in (pair.partition("=") for pair in args.x)})
    read = args.start is None
    start = current_revision(cutover) if read else args.start
    to = args.to or ("head" if args.direction == "upgrade" else "base")
    source = "the target's alembic_version" if read else "FROM"
    runs = "make migrate runs" if args.direction == "upgrade" else "make downgrade runs"
    header = (f"-- make sql: {args.direction} from {start} ({source}) to {to}, as {runs} "
              "it: one transaction per revision, with its timeouts.\n")
    render(args, start, to, header)
    return args.out


def main(argv: list[str] | None = None) -> int:
    log_to_stderr()
    parser = argparse.ArgumentParser(prog="python -m data_migrations.commands.sql_review",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("direction", choices=("upgrade", "downgrade"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--from", dest="start", help="the revision to start from")
    parser.add_argument("--to", help="where to end (default: head, or base)")
    parser.add_argument("--config", type=Path, default=Path("alembic.ini"))
    parser.add_argument("-x", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    target = "make sql" if args.direction == "upgrade" else "make sql-downgrade"
    return failure.command(target, "no SQL file was written", lambda: reviewed(args),
                           also=(CommandError,), failed=1)


def reviewed(args: argparse.Namespace) -> int:
    written = review(args)
    print(f"{args.direction.capitalize()} SQL written to {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
