"""Upload the files of the dev uploads/ folder to object storage (TOS or a local folder).

Upgrade, step by step:
  1. Without SOURCE_DATABASE_URL there is nothing to move: the revision says so and does
     nothing, so a fresh production database reaches head without storage settings.
  2. Scans UPLOADS_DIR (default ./uploads). Files matching -x exclude= / UPLOAD_EXCLUDE
     (default tmp/ and *.part) are counted and left out. Links leading outside the folder,
     broken links, loops and special files are refused: the upgrade stops naming them,
     or with -x unsafe_files=skip leaves them out and lists them.
  3. The chain's preflight has run the storage preflight (bucket, credentials, a probe
     object; probes a killed run left are deleted first). The step aborts the incomplete
     multipart uploads of these files' keys that a killed or failed run left in the bucket.
  4. Uploads every file under [STORAGE_KEY_PREFIX/]<path relative to UPLOADS_DIR> on
     MAX_CONCURRENT threads. A file a presync (make presync) stored and that is unchanged
     since (size, modification time; the bucket listing shows its object as recorded) is
     not read at all, unless -x checksum=true. Otherwise an object already there with the
     same size and CRC-64 is skipped (so a rerun after a kill resumes), one with other
     content is uploaded again. Objects the presync stored whose files are gone are
     listed; -x prune=true deletes exactly those.
     Every object is written with STORAGE_ACL, STORAGE_CLASS and STORAGE_SSE; one already
     there with the right bytes but another ACL gets the ACL set in place, one with
     another storage class or encryption is sent again.
  5. Records each file in cutover_file_manifest (key, public URL, size, modification
     time, CRC-64, ACL, storage class, SSE), which revision 0004 joins to rewrite the
     stored paths, and checks every row against its file and the bucket: a file that
     changed while the step ran (the app is not frozen), or a missing or different object,
     fails the upgrade; otherwise all rows are 'verified'.
-x dry_run=true prints what would be uploaded and touches no storage. --sql prints a
comment (folder, target, counts): uploading needs a live run. The work is in
data_migrations/files/ (upload.py; the downgrade's in rollback.py).

Downgrade drops the manifest and leaves the objects in the bucket (it says how many);
-x purge_objects=true (PURGE_OBJECTS) first deletes exactly the objects the manifest lists.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

import settings
from data_migrations.files import output, retry, rollback
from data_migrations.files import preflight as files_preflight
from data_migrations.files import upload as file_upload
from data_migrations.rows import preflight as rows_preflight
from data_migrations.run import preflight

log = logging.getLogger("cutover.files")


revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bookkeeping table this revision creates: every uploaded file and its object.
MANIFEST = "cutover_file_manifest"

# What the upload needs, checked before the first pending revision writes anything.
PREFLIGHT = (rows_preflight.source_intact, files_preflight.uploads_readable,
             files_preflight.storage_ready, files_preflight.presync_record_usable,
             files_preflight.prune_guarded,
             preflight.work_dir_writable, preflight.reports_dir_writable)


def upgrade() -> None:
    cutover = settings.of_run()
    if cutover.source_database_path() is None:
        log.info("0003: SOURCE_DATABASE_URL is not set: no files to upload.")
        return
    options = cutover.upload_options()
    if context.is_offline_mode():
        context.get_context().impl.static_output(output.offline_comment(
            options, cutover.storage, MANIFEST))
        return
    op.create_table(
        MANIFEST,
        sa.Column("relative_path", sa.Text(), nullable=False),
        sa.Column("object_key", sa.Text(), nullable=False),
        sa.Column("public_url", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        # The file's modification time (ns) when it was read: make verify lists the files
        # changed since their upload.
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("crc64", sa.Numeric(20, 0), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        # How the object was written (STORAGE_ACL, STORAGE_CLASS, STORAGE_SSE); NULL: the
        # bucket's default.
        sa.Column("acl", sa.Text()),
        sa.Column("storage_class", sa.Text()),
        sa.Column("sse", sa.Text()),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("relative_path", name=f"pk_{MANIFEST}"),
    )
    backoff = context.config.attributes.get(retry.RETRY_BACKOFF_ATTRIBUTE,
                                            retry.RETRY_BACKOFF_SECONDS)
    file_upload.upload_files(op.get_bind(), options, cutover.storage, MANIFEST, backoff)


def downgrade() -> None:
    cutover = settings.of_run()
    options = cutover.upload_options()
    if context.is_offline_mode():
        context.get_context().impl.static_output(output.offline_downgrade_comment(MANIFEST))
        return
    if not sa.inspect(op.get_bind()).has_table(MANIFEST):
        log.info("0003: no files were uploaded by this revision: nothing to remove.")
        return
    rollback.remove_uploads(op.get_bind(), options, cutover.storage, MANIFEST)
    op.drop_table(MANIFEST)
