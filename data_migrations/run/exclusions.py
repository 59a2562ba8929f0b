"""UPLOAD_EXCLUDE's globs: whether, and by which pattern, a relative path is left out.

The files step's scan leaves those files out; the path rewrite's preflight names the
pattern that would leave out a file the rows reference (data_migrations/paths/preflight.py).
Settings checks each glob's form (settings/declared.py ``glob_problem``).
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase


class Exclusions:
    """Globs in the spirit of .gitignore: ``tmp/`` excludes every file under a folder named
    tmp, ``*.part`` matches a file name at any depth, a glob holding ``/`` is matched
    against the whole relative path."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.folders = [p.rstrip("/") for p in patterns if p.endswith("/")]
        self.files = [p for p in patterns if not p.endswith("/")]

    def folder(self, relative_path: str) -> bool:
        return any(_matches(p, relative_path) for p in self.folders)

    def file(self, relative_path: str) -> bool:
        return any(_matches(p, relative_path) for p in self.files)

    def excluding(self, relative_path: str) -> str | None:
        """The pattern that leaves the file out, by a folder above it or by itself; None
        when none does."""
        parts = relative_path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if found := next((p for p in self.folders if _matches(p, folder)), None):
                return found + "/"
        return next((p for p in self.files if _matches(p, relative_path)), None)


def _matches(pattern: str, relative_path: str) -> bool:
    if "/" in pattern:
        return fnmatchcase(relative_path, pattern.lstrip("/"))
    return fnmatchcase(relative_path.rpartition("/")[2], pattern)
