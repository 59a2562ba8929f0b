"""Rewrite the stored file paths to the URLs of the uploaded objects.

Every file-path column (tasks.audio_path, transcripts.raw_result_path,
generated_artifacts.file_path, hotword_sets.file_path, named below in FILE_PATH_COLUMNS,
never taken from the models) is rewritten from the local path the app stored
('uploads/...', './uploads/...', Windows backslashes, absolute paths under
UPLOADS_PATH_ALIASES) to the public URL of its object,
taken from the upload manifest of 0003 — only for files that were uploaded and verified.
NULL, empty values and values that are already URLs stay. Paths that cannot be rewritten
(missing file, outside the uploads folder, unresolvable) stop the revision
(missing_files=fail, the default) or stay as they are (-x missing_files=keep).

Before the update the original strings are saved in cutover_path_rewrites; the
downgrade writes them back byte for byte and drops that table. The work is set-based
SQL in data_migrations/paths/rewrite.py; --sql shows the statements.

FILE_PATH_COLUMNS is the schema at head. The data revisions stay last in the chain until
production has run them (new schema revisions go before 0002: make revision), so the
columns this revision meets are the head's: a revision that renames or adds a file-path
column before the cutover updates FILE_PATH_COLUMNS in the same change — allowed because
no database has run this revision yet (README: "Adding a schema revision before the
cutover"). So make sql never writes an UPDATE for a column that does not exist here, and
a named column the target lacks stops this revision with one FAILED line
(tests/revisions/test_frozen_revisions.py checks the list against the models' file-path columns).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

"""

import logging
import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import settings
from data_migrations.paths import preflight as paths_preflight
from data_migrations.paths import rewrite as path_rewrite
from data_migrations.rows import preflight as rows_preflight
from data_migrations.run import preflight

log = logging.getLogger("cutover.paths")

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns holding paths of files under uploads/, as the schema is at head (above).
FILE_PATH_COLUMNS = (
    path_rewrite.PathColumn(table="hotword_sets", column="file_path", key="id"),
    path_rewrite.PathColumn(table="tasks", column="audio_path", key="id"),
    path_rewrite.PathColumn(table="generated_artifacts", column="file_path", key="id"),
    path_rewrite.PathColumn(table="transcripts", column="raw_result_path", key="id"),
)
# The upload manifest of 0003, and the bookkeeping table this revision creates: the
# original of every rewritten path.
MANIFEST = "cutover_file_manifest"
REWRITES = "cutover_path_rewrites"

# What the rewrite needs, checked before the first pending revision writes anything.
PREFLIGHT = (rows_preflight.source_intact,
             paths_preflight.ReferencedFilesKept(FILE_PATH_COLUMNS, MANIFEST),
             preflight.reports_dir_writable)


def upgrade() -> None:
    cutover = settings.of_run()
    if cutover.source_database_path() is None:
        log.info("0004: SOURCE_DATABASE_URL is not set: no paths to rewrite.")
        return
    started = time.monotonic()
    options = cutover.path_options()
    offline = context.is_offline_mode()
    columns = path_rewrite.checked_columns(None if offline else op.get_bind(),
                                           FILE_PATH_COLUMNS)
    paths = path_rewrite.PathSql(path_rewrite.normalized_aliases(options.aliases,
                                                                 options.uploads_dir))
    op.execute(paths.create_function())
    if not offline:
        found = path_rewrite.preflight(op.get_bind(), columns, paths, MANIFEST)
        path_rewrite.check_findings(found, options.missing_files, options.dry_run)
    op.create_table(
        REWRITES,
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("column_name", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "column_name", "key", name=f"pk_{REWRITES}"),
    )
    for statement in path_rewrite.rewrite_statements(columns, paths, MANIFEST, REWRITES):
        op.execute(statement)
    if not offline:
        path_rewrite.print_summary(op.get_bind(), REWRITES, kept=len(found),
                                   seconds=time.monotonic() - started, dry_run=options.dry_run)


def downgrade() -> None:
    if context.is_offline_mode():
        columns = list(FILE_PATH_COLUMNS)
    elif sa.inspect(op.get_bind()).has_table(REWRITES):
        columns = path_rewrite.rewritten_columns(op.get_bind(), REWRITES)
    else:
        columns = []
    for column in columns:
        op.execute(path_rewrite.restore(column, REWRITES))
    op.execute(f"DROP TABLE IF EXISTS {REWRITES}")
