"""The path rewrite's preflight check (data_migrations/run/preflight.py runs it, declared by
revision 0004): no UPLOAD_EXCLUDE pattern leaves out a file that rows reference.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from data_migrations.paths import rewrite as path_rewrite
from data_migrations.run.exclusions import Exclusions
from data_migrations.run.sql import open_source
from settings import ConfigError, Settings
from settings.steps import PathOptions


@dataclass(frozen=True)
class ReferencedFilesKept:
    """The path rewrite's check: no UPLOAD_EXCLUDE pattern leaves out a file that rows
    of the dev database reference, as the rewrite (data_migrations/paths/rewrite.py) reads
    their ``columns``; otherwise the rows and files steps would commit and the rewrite
    stop over paths it cannot rewrite. Skipped once the files step has written its
    ``manifest``: the rewrite checks against that itself."""

    columns: tuple[path_rewrite.PathColumn, ...]
    manifest: str

    def __call__(self, cutover: Settings) -> list[str]:
        options, path_options = cutover.upload_options(), cutover.path_options()
        try:
            source = cutover.source_database_path()
            url = cutover.database_url()
        except ConfigError:  # source_intact names the source; no URL: a connection handed in
            return []
        if source is None or not options.exclude or path_options.missing_files != "fail":
            return []  # with missing_files=keep the rewrite leaves such paths and lists them
        try:
            with open_source(source) as connection:
                stored = path_rewrite.source_paths(connection, self.columns)
        except sqlite3.Error:  # source_intact names it
            return []
        referenced = self.referenced(url, stored, path_options)
        return excluded_references(referenced, options.exclude, options.uploads_dir)

    def referenced(self, url: URL, stored: dict[str, str], options: PathOptions
                   ) -> dict[str, str]:
        """The files the stored values name, by relative path, each with a row naming it."""
        paths = path_rewrite.PathSql(path_rewrite.normalized_aliases(options.aliases,
                                                                     options.uploads_dir))
        engine = sa.create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                if sa.inspect(connection).has_table(self.manifest):
                    return {}
                relative = path_rewrite.relative_paths(connection, list(stored), paths)
        except SQLAlchemyError:  # the run's own connection names the database
            return {}
        finally:
            engine.dispose()
        return {path: stored[value] for value, path in relative.items()}



def excluded_references(referenced: dict[str, str], exclude: Sequence[str],
                        uploads_dir: Path) -> list[str]:
    """One line per pattern that leaves out files rows reference, with an example."""
    exclusions = Exclusions(exclude)
    by_pattern: dict[str, list[str]] = {}
    for relative in sorted(referenced):
        pattern = exclusions.excluding(relative)
        if pattern is not None and os.path.lexists(uploads_dir / relative):
            by_pattern.setdefault(pattern, []).append(relative)
    return [f"UPLOAD_EXCLUDE pattern {pattern!r} leaves out {len(files):,} files that rows "
            f"reference, e.g. {files[0]} ({referenced[files[0]]}): the path rewrite could not "
            "point those rows at their objects. Take the pattern out of UPLOAD_EXCLUDE (or "
            "run with -x missing_files=keep to leave those paths as they are)"
            for pattern, files in by_pattern.items()]
