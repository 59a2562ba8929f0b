"""data_migrations/online/indexes.py: an index built CONCURRENTLY on a table of a million rows
while the app inserts and updates it, an INVALID leftover of an interrupted build replaced on
the retry, and the symmetric drop. The helpers run through Alembic's own operations on the
real PostgreSQL, as a revision calls them."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from data_migrations.online.indexes import create_index_concurrently, drop_index_concurrently
from tests.conftest import fetch
from tests.online.app import writing

ROWS = 1_000_000
INDEX = "ix_items_owner_state"


@pytest.fixture
def items(pg_engine: sa.Engine) -> sa.Engine:
    with pg_engine.begin() as connection:
        connection.execute(sa.text(
            "CREATE TABLE items (id bigserial PRIMARY KEY, owner integer NOT NULL, "
            "state text NOT NULL)"))
        connection.execute(sa.text(
            "INSERT INTO items (owner, state) SELECT n % 5000, 'new' "
            f"FROM generate_series(1, {ROWS}) AS n"))
    return pg_engine


def write(connection: sa.Connection, chance: random.Random) -> None:
    """One app transaction: a new item and a change to an existing one."""
    connection.execute(sa.text("INSERT INTO items (owner, state) VALUES (:owner, 'new')"),
                       {"owner": chance.randrange(5000)})
    connection.execute(sa.text("UPDATE items SET state = 'done' WHERE id = :id"),
                       {"id": chance.randrange(1, ROWS)})


@pytest.fixture
def migration(items: sa.Engine) -> Iterator[sa.Connection]:
    """A connection with Alembic's migration context and ``op`` on it, in a transaction as
    a revision's is."""
    with items.connect() as connection:
        context = MigrationContext.configure(connection)
        with Operations.context(context), context.begin_transaction():
            yield connection


def index_state(engine: sa.Engine) -> list[tuple]:
    return fetch(engine, "SELECT c.relname, i.indisvalid, pg_get_indexdef(c.oid) "
                         "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                         f"WHERE c.relname = '{INDEX}'")


def test_an_index_builds_on_a_million_rows_while_the_app_writes(
    items: sa.Engine, migration: sa.Connection,
) -> None:
    with writing(items, write) as writers:
        start = time.monotonic()
        create_index_concurrently(INDEX, "items", ["owner", "state"])
        end = time.monotonic()

    assert writers.errors == []
    # Writers committed all through the build, its middle half included: a plain CREATE
    # INDEX holds off every insert and update until it is done.
    quarter = (end - start) / 4
    assert writers.committed_between(start + quarter, end - quarter) > 0, (start, end)
    assert index_state(items) == [(INDEX, True, "CREATE INDEX ix_items_owner_state ON "
                                               "public.items USING btree (owner, state)")]


def test_a_retry_replaces_the_invalid_index_an_interrupted_build_left(
    items: sa.Engine, migration: sa.Connection,
) -> None:
    # A unique build that meets a duplicate fails as a killed one does: the index stays,
    # INVALID, maintained on every write and never used.
    with items.connect().execution_options(isolation_level="AUTOCOMMIT") as other, \
            pytest.raises(sa.exc.IntegrityError):
        other.execute(sa.text(f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON items (owner)"))
    assert [valid for _, valid, _ in index_state(items)] == [False]

    create_index_concurrently(INDEX, "items", ["owner", "state"])

    assert index_state(items) == [(INDEX, True, "CREATE INDEX ix_items_owner_state ON "
                                               "public.items USING btree (owner, state)")]


def test_a_valid_index_is_left_as_it_is_and_the_drop_is_symmetric(
    items: sa.Engine, migration: sa.Connection,
) -> None:
    create_index_concurrently(INDEX, "items", ["owner", "state"])
    oid = fetch(items, f"SELECT '{INDEX}'::regclass::oid")

    create_index_concurrently(INDEX, "items", ["owner", "state"])  # a rerun: nothing to do
    assert fetch(items, f"SELECT '{INDEX}'::regclass::oid") == oid

    drop_index_concurrently(INDEX, "items")
    drop_index_concurrently(INDEX, "items")  # a rerun of the downgrade: nothing to do
    assert index_state(items) == []


def test_offline_the_statements_are_rendered_without_a_catalog_query() -> None:
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql",
                                         opts={"as_sql": True, "output_buffer": buffer})
    with Operations.context(context):
        create_index_concurrently(INDEX, "items", ["owner"], where="state = 'new'")
        drop_index_concurrently(INDEX, "items")

    statements = [s.strip() for s in buffer.getvalue().split(";") if s.strip()]
    assert statements == [
        "COMMIT",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON items (owner) "
        "WHERE state = 'new'",
        "BEGIN", "COMMIT",
        f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}",
        "BEGIN"]
