"""What the copy does to the target's tables around the load: foreign keys and secondary
indexes dropped and put back as the catalog defined them, LZ4 compression for the load,
the identity sequences reset after it (the rollback resets them too; verify checks them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa

from data_migrations.rows import source as src


@contextmanager
def deferred_checks(connection: sa.Connection, tables: list[str]) -> Iterator[None]:
    """Load the tables without their foreign keys and secondary indexes, then put them
    back exactly as the catalog defined them: one validating pass per key and one sort per
    index, instead of a check and an index insert for every copied row (what pg_restore
    does too). All in the revision's transaction: a failure restores them with the rest."""
    deferred = connection.execute(sa.text(
        "SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', c.conrelid::regclass, c.conname), "
        "       format('ALTER TABLE %I ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, "
        "              pg_get_constraintdef(c.oid)) "
        "FROM pg_constraint c WHERE c.contype = 'f' "
        "  AND c.conrelid::regclass::text = ANY(:tables) "
        "UNION ALL "
        "SELECT format('DROP INDEX %I', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid) "
        "FROM pg_index i WHERE i.indrelid::regclass::text = ANY(:tables) "
        "  AND NOT i.indisprimary AND NOT EXISTS ("
        "    SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"),
        {"tables": tables}).all()
    for drop, _ in deferred:
        connection.execute(sa.text(drop))
    yield
    for _, create in deferred:
        connection.execute(sa.text(create))


def use_lz4_compression(connection: sa.Connection) -> None:
    """Compress the large values this transaction stores (transcripts, minutes) with lz4
    rather than the default pglz, when the server has it: several times faster to write,
    and to read back for the checksums. PostgreSQL reads either, whatever the setting
    later, and the app's own writes keep the server's default."""
    has_lz4 = connection.execute(sa.text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
        "WHERE name = 'default_toast_compression'")).scalar()
    if has_lz4:
        connection.execute(sa.text("SET LOCAL default_toast_compression = 'lz4'"))


def identity_columns(connection: sa.Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(table, column) of every identity column of the tables, from the catalog."""
    inspector = sa.inspect(connection)
    return [(name, column["name"]) for name in tables for column in inspector.get_columns(name)
            if column.get("identity") is not None]


def reset_sequences(connection: sa.Connection, tables: list[str]) -> None:
    """Move each identity sequence just past the largest id, so the app's next insert
    works; on an empty table the next id is 1 again."""
    for name, column in identity_columns(connection, tables):
        quoted = src.quote(column)
        connection.execute(sa.text(
            f"SELECT setval(pg_get_serial_sequence(:table, :column), "
            f"coalesce(max({quoted}), 1), max({quoted}) IS NOT NULL) "
            f"FROM {src.quote(name)}"), {"table": name, "column": column})
