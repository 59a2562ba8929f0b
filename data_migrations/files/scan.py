"""What is in the uploads folder: the files to upload, the excluded ones, the refused ones.

Nothing outside the folder is ever read. A symbolic link is followed only when what it
points to, fully resolved, lies inside the folder; one that leads outside (``../..``
tricks included), a broken one, a loop, a name that is not UTF-8, anything that is not
a regular file (a FIFO would block the upload) and a file or folder this process may not
read is refused and reported, never followed. The folder is only listed and read, never
written.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data_migrations.run.exclusions import Exclusions


@dataclass(frozen=True)
class LocalFile:
    relative_path: str  # posix path below the uploads folder: the object key before prefix
    source: Path  # the real file to read: a link inside the folder already resolved
    size: int
    mtime_ns: int  # when the scan saw it: a presync record is trusted only while it holds


@dataclass(frozen=True)
class Refusal:
    relative_path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.relative_path}: {self.reason}"


@dataclass
class FolderScan:
    root: Path
    files: list[LocalFile] = field(default_factory=list)
    excluded: list[LocalFile] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def excluded_bytes(self) -> int:
        return sum(f.size for f in self.excluded)


@dataclass(frozen=True)
class _Folder:
    path: Path  # as walked (may pass through a link inside the root)
    prefix: str  # relative path + "/", "" for the root
    excluded: bool
    ancestors: frozenset[Path]  # real paths of the folders above, to refuse link loops


def scan_folder(root: Path, exclude: Sequence[str],
                on_folder: Callable[[int], None] | None = None) -> FolderScan:
    """Every entry under ``root`` sorted into files, excluded files and refusals;
    ``on_folder`` is told the number of entries of each folder listed (for progress)."""
    real_root = root.resolve(strict=True)
    scan = FolderScan(root=real_root)
    exclusions = Exclusions(exclude)
    stack = [_Folder(real_root, "", False, frozenset({real_root}))]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder.path) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as error:  # no read or search permission, or an I/O error
            reason = unreadable("folder", error.strerror or str(error))
            scan.refused.append(Refusal(folder.prefix or ".", reason))
            continue
        for entry in entries:
            _sort_entry(scan, exclusions, real_root, folder, entry, stack)
        if on_folder is not None:
            on_folder(len(entries))
    scan.files.sort(key=lambda f: f.relative_path)  # a stable order for logs and reruns
    return scan


def unreadable(what: str, reason: str) -> str:
    return f"{what} cannot be read ({reason})"


def _readable_file(scan: FolderScan, relative: str, source: Path) -> None:
    """A file to upload, or a refusal when this process may not read it."""
    if not os.access(source, os.R_OK):
        scan.refused.append(Refusal(relative, unreadable("file", os.strerror(errno.EACCES))))
        return
    seen = source.stat()
    scan.files.append(LocalFile(relative, source, seen.st_size, seen.st_mtime_ns))


def _sort_entry(scan: FolderScan, exclusions: Exclusions, real_root: Path, folder: _Folder,
                entry: os.DirEntry[str], stack: list[_Folder]) -> None:
    relative = folder.prefix + entry.name
    path = Path(entry.path)
    if not _is_utf8(entry.name):
        scan.refused.append(Refusal(_printable(relative), "the name is not valid UTF-8"))
    elif entry.is_dir(follow_symlinks=False):
        excluded = folder.excluded or exclusions.folder(relative)
        stack.append(_Folder(path, relative + "/", excluded, folder.ancestors | {path}))
    elif folder.excluded or exclusions.file(relative):  # counted, never followed or read
        seen = entry.stat(follow_symlinks=False)
        scan.excluded.append(LocalFile(relative, path, seen.st_size, seen.st_mtime_ns))
    elif entry.is_symlink():
        _sort_link(scan, exclusions, real_root, folder, relative, path, stack)
    elif entry.is_file(follow_symlinks=False):
        _readable_file(scan, relative, path)
    else:
        scan.refused.append(Refusal(relative, "not a regular file (FIFO, socket or device)"))


def _sort_link(scan: FolderScan, exclusions: Exclusions, real_root: Path, folder: _Folder,
               relative: str, link: Path, stack: list[_Folder]) -> None:
    """Follow a link only to a file or folder inside the root, and never round a loop."""
    target = Path(os.path.realpath(link))
    points_to = os.readlink(link)
    if not target.is_relative_to(real_root):
        reason = f"symbolic link to {points_to}, outside UPLOADS_DIR (not followed)"
    elif not target.exists():
        reason = f"broken symbolic link to {points_to}"
    elif target in folder.ancestors:
        reason = f"symbolic link loop to {points_to} (not followed)"
    elif target.is_dir():
        stack.append(_Folder(target, relative + "/", exclusions.folder(relative),
                             folder.ancestors | {target}))
        return
    elif target.is_file():
        _readable_file(scan, relative, target)
        return
    else:
        reason = f"symbolic link to {points_to}, not a regular file"
    scan.refused.append(Refusal(relative, reason))


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("utf-8")
