"""Adopt an existing dev SQLite database into Alembic's history.

The dev file was made by ``create_all()`` and has no ``alembic_version`` table. If its
schema is the baseline's, stamping it at the baseline lets the app's future revisions
apply to dev and production alike. If it is not, nothing is stamped and every
difference is listed, so the file can be fixed (or the difference turned into a revision)
first.

    python -m data_migrations.commands.adopt_dev sqlite:///./meeting_agent.db
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import settings
from data_migrations.run import failure
from data_migrations.run.report import log_to_stderr
from data_migrations.run.run_guard import BASELINE_REVISION
from settings.urls import parse_source_url

log = logging.getLogger("cutover.adopt")

ROOT = Path(__file__).resolve().parents[2]
IGNORED_TABLES = {"alembic_version"}

Signature = dict[str, dict[str, Any]]


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for this repository, aimed at a URL or an open connection, that
    leaves the caller's logging alone (the adoption here; the tests, demo and benchmarks)."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    if url is not None:
        config.attributes["database_url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def revisions() -> ScriptDirectory:
    return ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini")))


def stamp_baseline(connection: sa.Connection) -> None:
    """Record the baseline as applied. Not through ``alembic stamp``: its env.py refuses a
    database that has the app's tables but no version, which is this very case."""
    MigrationContext.configure(connection).stamp(revisions(), BASELINE_REVISION)


def schema_signature(bind: sa.Engine | sa.Connection, schema: str | None = None) -> Signature:
    """What matters of a schema, without constraint names (the dev file has none)."""
    inspector = sa.inspect(bind)
    dialect = bind.dialect
    signature: Signature = {}
    for table in sorted(set(inspector.get_table_names(schema)) - IGNORED_TABLES):
        signature[table] = {
            "columns": [
                (c["name"], c["type"].compile(dialect=dialect), c["nullable"])
                for c in inspector.get_columns(table, schema)
            ],
            "primary key": inspector.get_pk_constraint(table, schema)["constrained_columns"],
            "foreign keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    (fk.get("options", {}).get("ondelete") or "NO ACTION").upper(),
                )
                for fk in inspector.get_foreign_keys(table, schema)
            ),
            "unique constraints": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table, schema)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table, schema)
            ),
        }
    return signature


def baseline_signature() -> Signature:
    """The schema the baseline revision builds on an empty SQLite file."""
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite:///{workdir}/baseline.db"
        command.upgrade(alembic_config(url), BASELINE_REVISION)
        engine = sa.create_engine(url)
        try:
            return schema_signature(engine)
        finally:
            engine.dispose()


def differences(expected: Signature, actual: Signature, actual_name: str = "dev file"
                ) -> list[str]:
    """Each way ``actual`` differs from ``expected``, one readable line each."""
    found = [f"table {t}: missing" for t in sorted(expected.keys() - actual.keys())]
    found += [f"table {t}: not in the baseline" for t in sorted(actual.keys() - expected.keys())]
    for table in sorted(expected.keys() & actual.keys()):
        for aspect, want in expected[table].items():
            have = actual[table][aspect]
            if want != have:
                found.append(
                    f"table {table}: {aspect} differ: baseline {want}, {actual_name} {have}")
    return found


def adopt(url: str) -> list[str]:
    """Stamp the database at the baseline if it matches; return the differences otherwise."""
    engine = sa.create_engine(url)
    try:
        if sa.inspect(engine).has_table("alembic_version"):
            raise settings.ConfigError(f"{settings.mask_url(url)} is already under Alembic")
        found = differences(baseline_signature(), schema_signature(engine))
        if not found:
            with engine.begin() as connection:
                stamp_baseline(connection)
    finally:
        engine.dispose()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the dev database, e.g. sqlite:///./meeting_agent.db")
    args = parser.parse_args(argv)
    log_to_stderr()
    return failure.command("adopt-dev", "the stamp is one transaction, made whole or not at all",
                           lambda: adopt_file(args.url), prefix="adopt: ")


def adopt_file(given: str) -> int:
    """Adopt the dev file ``given`` names: 0 stamped, 1 not stamped (the differences
    listed)."""
    url = parse_source_url("dev database", given)
    if not Path(url.database or "").is_file():
        raise settings.ConfigError(f"dev database file not found: {url.database}")
    found = adopt(given)
    if found:
        print(f"Not stamped: {given} differs from the baseline {BASELINE_REVISION}:")
        print("\n".join(f"  - {line}" for line in found))
        return 1
    print(f"Stamped {given} at the baseline {BASELINE_REVISION}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
