"""What each data step needs of the settings, as one frozen object per step.

Built from the settings read once (``settings.Settings``); the steps take these objects and
never read the environment themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CopyOptions:
    """How the row copy treats bad rows, and where it writes its files."""

    bad_rows: str
    orphans: str
    dry_run: bool
    force: bool
    work_dir: Path
    # Processes converting rows; 1 converts them in the process that copies them.
    workers: int


@dataclass(frozen=True)
class UploadOptions:
    """Which files the upload takes, what it does with unsafe ones, how far it trusts a
    presync record, and what it deletes (objects the presync stored for files now gone;
    the downgrade's purge)."""

    uploads_dir: Path
    exclude: tuple[str, ...]
    unsafe_files: str
    dry_run: bool
    purge_objects: bool
    work_dir: Path
    checksum_every_file: bool
    prune_objects: bool
    # At most this many of the recorded objects pruned in one run: (count, "") or
    # (percent, "%"), as PRUNE_MAX_DELETE gives it.
    prune_max_delete: tuple[int, str]
    # UPLOADS_DIR is the app's folder although it no longer looks like the one the presync
    # record describes (UPLOADS_DIR_CHANGED): the presync and prune go ahead.
    uploads_dir_changed: bool = False


@dataclass(frozen=True)
class PathOptions:
    """How the path rewrite reads stored paths and treats the ones it cannot rewrite."""

    missing_files: str
    aliases: tuple[str, ...]
    uploads_dir: Path
    dry_run: bool
