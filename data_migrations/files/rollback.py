"""The files step's downgrade: by default the uploaded objects stay in the bucket; with
``purge_objects`` exactly the objects the manifest lists are deleted, each retried, and a
key that still fails is named.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace
from functools import partial

import sqlalchemy as sa

from data_migrations.files.ledger import StorageSettingsSource, manifest_table
from data_migrations.files.output import describe_target
from data_migrations.files.retry import RETRY_BACKOFF_SECONDS, failure_text, retrying
from data_migrations.run.errors import DataMigrationError
from data_migrations.run.parallel import run_in_parallel
from data_migrations.run.report import Progress, bulleted
from data_migrations.run.storage_factory import build_storage
from settings.steps import UploadOptions
from storage import StorageClient

log = logging.getLogger("cutover.files")


def remove_uploads(connection: sa.Connection, options: UploadOptions,
                   storage_settings: StorageSettingsSource, manifest: str) -> None:
    """The downgrade's part: by default the objects stay; ``purge_objects`` deletes exactly
    the objects the manifest lists (by their full key, whatever the prefix is now)."""
    keys = list(connection.execute(sa.select(manifest_table(manifest).c.object_key)).scalars())
    if not options.purge_objects:
        log.info(f"0003: the {len(keys):,} uploaded objects stay in the bucket; only the manifest "
                 "is dropped (-x purge_objects=true deletes them first).")
        return
    settings = replace(storage_settings(), key_prefix="")
    with closing(build_storage(settings, options.work_dir)) as storage:
        storage.check_access()
        delete_objects(storage, keys, settings.max_concurrent, RETRY_BACKOFF_SECONDS,
                       "the manifest is kept, run the downgrade again")
    log.info(f"0003: deleted the {len(keys):,} uploaded objects from {describe_target(settings)}.")


def delete_objects(storage: StorageClient, keys: list[str], workers: int,
                   backoff: Sequence[float], what_next: str) -> None:
    """Delete ``keys``, each retried as a whole; a key that still fails is named, with
    ``what_next`` to do about it."""
    progress = Progress(log, "deleting", len(keys), "objects")
    failures = []

    def delete(key: str) -> None:
        retrying(lambda: storage.delete(key), key, backoff)

    with closing(run_in_parallel(delete, keys, workers,
                                 on_idle=partial(progress.advance, 0))) as finished:
        for done in finished:
            progress.advance()
            if (failure := failure_text(done)) is not None:
                failures.append(failure)
    if failures:
        raise DataMigrationError(
            f"{len(failures):,} of {len(keys):,} objects could not be deleted; {what_next}:\n"
            f"{bulleted(sorted(failures))}")
