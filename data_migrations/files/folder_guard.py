"""What a presync record proves about the uploads folder, and what it lets the files
step and the presync do: take a recorded file without reading it (``vouches_for``),
upload the folder at all (``presync_refusal``), delete the objects of files gone from it
(``orphans_of``, ``prune_refusal``). One check, ``unlike_record``, tells a folder that is
not the one the presync read; UPLOADS_DIR_CHANGED overrides it for both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from data_migrations.files.ledger import difference
from data_migrations.files.presync_record import PresyncRecord, RecordedFile
from data_migrations.files.scan import FolderScan, LocalFile
from settings.steps import UploadOptions
from storage import ObjectInfo
from storage.options import ObjectOptions

CHANGED_ON_PURPOSE = ("if it is the app's folder all the same (its files really were moved "
                      "or rewritten), run with -x uploads_dir_changed=true")


def vouches_for(recorded: RecordedFile, file: LocalFile, present: ObjectInfo | None, key: str,
                options: ObjectOptions) -> bool:
    """The presync record stands for the file: the file is as the presync saw it, and the
    bucket holds the recorded object, written with today's options."""
    return (present is not None and recorded.object_key == key and recorded.options == options
            and (recorded.size, recorded.mtime_ns) == (file.size, file.mtime_ns)
            and (present.size, present.crc64) == (recorded.size, recorded.crc64))


def orphans_of(record: PresyncRecord, scan: FolderScan, present: dict[str, ObjectInfo]
               ) -> list[str]:
    """The objects the presync stored whose files are no longer to be uploaded (deleted,
    or excluded since; a refused file still exists and is none, nor is any file under a
    refused folder). Only keys the record holds, still holding the bytes the presync
    stored: never anything else in the bucket."""
    kept = {f.relative_path for f in scan.files}
    unseen = {r.relative_path.rstrip("/") for r in scan.refused}
    return sorted(path for path, entry in record.entries.items() if path not in kept
                  and not under_refused(path, unseen)
                  and difference(entry, present.get(path)) is None)


def under_refused(path: str, unseen: set[str]) -> bool:
    """The path is a refused entry or lies under one (``audio`` covers ``audio/x.wav``,
    never ``audio2/x.wav``; ``.``, an unreadable UPLOADS_DIR, covers all): a folder that
    could not be read, or a link that was not followed, may still hold the file, so its
    absence from the scan proves nothing."""
    if "." in unseen:
        return True
    parts = path.split("/")
    return any("/".join(parts[:depth]) in unseen for depth in range(1, len(parts) + 1))


def unlike_record(record: PresyncRecord, scan: FolderScan) -> str | None:
    """Why the folder does not look like the one the presync read, or None: at least half
    of the recorded files must be in it with their recorded size and modification time (a
    wrong UPLOADS_DIR, another disk mounted there, or a stray file alone has none of them)."""
    recorded = len(record.entries)
    files = {f.relative_path: f for f in scan.files}
    missing = sum(1 for path in record.entries if path not in files)
    other = sum(1 for path, entry in record.entries.items() if (file := files.get(path))
                and (entry.size, entry.mtime_ns) != (file.size, file.mtime_ns))
    if (missing + other) * 2 <= recorded:
        return None
    return (f"UPLOADS_DIR {scan.root} does not look like the folder the presync read: of the "
            f"{recorded:,} files its record {record.path} holds, {missing:,} are gone and "
            f"{other:,} are other files (another size or modification time), more than half "
            "(a wrong UPLOADS_DIR, another disk mounted there?)")


def presync_refusal(record: PresyncRecord, scan: FolderScan, options: UploadOptions
                    ) -> str | None:
    """Why a presync must not upload the folder, or None: one that does not look like the
    folder its record describes would put another folder's files under the app's keys."""
    unlike = None if options.uploads_dir_changed else unlike_record(record, scan)
    if unlike is None:
        return None
    return (f"the presync refused: {unlike}; nothing was uploaded. Check UPLOADS_DIR; "
            f"{CHANGED_ON_PURPOSE}")


def prune_refusal(record: PresyncRecord, scan: FolderScan, orphans: Sequence[str],
                  options: UploadOptions) -> str | None:
    """Why ``-x prune=true`` must not delete ``orphans``, or None. Prune deletes only
    what it can prove is gone: the folder must still look like the one the presync read
    (``unlike_record``, unless UPLOADS_DIR_CHANGED says it is the app's all the same), and
    the deletion must stay within PRUNE_MAX_DELETE."""
    recorded = len(record.entries)
    unlike = None if options.uploads_dir_changed else unlike_record(record, scan)
    if unlike is not None:
        return (f"-x prune=true refused: {unlike}; nothing was deleted. Check UPLOADS_DIR; "
                f"{CHANGED_ON_PURPOSE}")
    max_delete = options.prune_max_delete
    allowed = max_delete[0] if not max_delete[1] else math.ceil(recorded * max_delete[0] / 100)
    if len(orphans) > allowed:
        bound = f"{max_delete[0]}%, {allowed:,} objects" if max_delete[1] else f"{allowed:,}"
        return (f"-x prune=true would delete {len(orphans):,} of the {recorded:,} objects the "
                f"presync record {record.path} holds, more than PRUNE_MAX_DELETE allows "
                f"({bound}); nothing was deleted. If the app did delete these files from "
                f"UPLOADS_DIR {scan.root}, run with -x prune_max_delete={len(orphans)}")
    return None
