"""Copy the rows of the dev SQLite database into the eight tables.

Reads the file that SOURCE_DATABASE_URL names (read-only) and copies every table in
foreign-key order with COPY, converting what SQLite holds into the PostgreSQL types,
then checks row counts and checksums on both sides and moves the identity sequences past
the copied ids. Rows PostgreSQL would refuse stop the copy (bad_rows=fail) or go to a
rejects file (-x bad_rows=reject; -x orphans=set_null keeps rows with a dangling
optional reference). -x dry_run=true prints the plan and the findings and writes nothing.
Without SOURCE_DATABASE_URL this revision does nothing, so a fresh production database
still reaches head. The work is in data_migrations/rows/ (row_copy.py; the downgrade's in
rollback.py).

The data revisions stay last in the chain until production has run them: a new schema
revision goes before this one (make revision), and this revision's down_revision is
rewired to it — the one edit it takes while no database has applied it. A dev file that
Alembic manages (alembic_version) must be at this revision's down_revision, where the
target is while it runs (make upgrade-dev); one without alembic_version is taken as the
baseline and the column comparison decides.

Downgrade deletes exactly the copied rows (their keys are kept in cutover_copied_keys)
and resets the sequences. It refuses when the tables hold rows that did not come from
the source, unless -x force=true, which still removes only the copied rows.

cutover_row_copy_runs records what the copy used (the snapshot it read, the policies,
the rejects file, per-table counts and checksums), so that make verify re-checks exactly
that; the downgrade drops it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

import settings
from data_migrations.rows import copy_record, rollback, row_copy
from data_migrations.rows import preflight as rows_preflight
from data_migrations.run import preflight

log = logging.getLogger("cutover.rows")

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bookkeeping tables this revision creates: the keys of the copied rows, and what
# the copy used (snapshot, policies, rejects file, checksums) for `make verify`.
COPIED_KEYS = "cutover_copied_keys"
ROW_COPY_RUNS = "cutover_row_copy_runs"

# What the copy needs, checked before the first pending revision writes anything.
PREFLIGHT = (rows_preflight.source_intact, preflight.work_dir_writable,
             preflight.reports_dir_writable)


def upgrade() -> None:
    cutover = settings.of_run()
    source = cutover.source_database_path()
    if source is None:
        log.info("0002: SOURCE_DATABASE_URL is not set: no rows to copy.")
        return
    # While this revision runs, the target is at its down_revision: the dev file must be
    # there too (make upgrade-dev brings it to the schema head).
    row_copy.refuse_other_revision(source, str(down_revision))
    options = cutover.copy_options()
    if context.is_offline_mode():
        context.get_context().impl.static_output(row_copy.offline_comment(source))
        return
    op.create_table(
        COPIED_KEYS,
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
    )
    op.create_table(
        ROW_COPY_RUNS,
        sa.Column("copied_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("bad_rows", sa.Text(), nullable=False),
        sa.Column("orphans", sa.Text(), nullable=False),
        sa.Column("rejects_file", sa.Text(), nullable=True),
        sa.Column("tables", JSONB(), nullable=False),
    )
    report = row_copy.copy_rows(op.get_bind(), source, options, COPIED_KEYS)
    # The key goes on once the keys are in: one index build, not an insert per copied row.
    op.create_primary_key(f"pk_{COPIED_KEYS}", COPIED_KEYS, ["table_name", "key"])
    if not options.dry_run:
        copy_record.record_copy(op.get_bind(), ROW_COPY_RUNS, source, report, options)


def downgrade() -> None:
    options = settings.of_run().copy_options()
    if context.is_offline_mode():
        context.get_context().impl.static_output(rollback.offline_downgrade_comment())
        context.get_context().impl.static_output(f"DROP TABLE IF EXISTS {ROW_COPY_RUNS};\n\n")
        return
    if not sa.inspect(op.get_bind()).has_table(COPIED_KEYS):
        log.info("0002: no rows were copied by this revision: nothing to remove.")
        return
    rollback.remove_copied_rows(op.get_bind(), COPIED_KEYS, force=options.force)
    op.drop_table(COPIED_KEYS)
    op.drop_table(ROW_COPY_RUNS)
