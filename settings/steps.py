"""The settings of the data-migration revisions.

Each comes from ``alembic -x name=value`` first, then from the environment (or the
``.env`` file) as ``NAME=value``, then its default. A value outside its choices stops the
run with one line naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from settings import ConfigError

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _raw(name: str, x_args: Mapping[str, str], default: str, env: str | None = None) -> str:
    """``-x name=...``, else the environment variable ``env`` (``NAME`` by default)."""
    if name in x_args:
        return x_args[name].strip()
    return os.environ.get(env or name.upper(), default).strip() or default


def choice(name: str, x_args: Mapping[str, str], choices: tuple[str, ...]) -> str:
    """A setting with a fixed set of values; the first choice is the default."""
    value = _raw(name, x_args, choices[0]).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def flag(name: str, x_args: Mapping[str, str]) -> bool:
    value = _raw(name, x_args, "false").lower()
    if value not in _BOOLEANS:
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    return _BOOLEANS[value]


def count(name: str, x_args: Mapping[str, str], default: int, env: str) -> int:
    """A whole number of at least 1."""
    value = _raw(name, x_args, str(default), env)
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return int(value)


# Row-copy workers by default: one per core, at most two. Each holds about 45 MiB, and
# PostgreSQL reads a COPY on one core; more can be asked for with ROW_COPY_WORKERS.
DEFAULT_WORKERS = 2


@dataclass(frozen=True)
class CopyOptions:
    """How the row copy treats bad rows, and where it writes its files."""

    bad_rows: str = "fail"
    orphans: str = "reject"
    dry_run: bool = False
    force: bool = False
    work_dir: Path = Path("work")
    # Processes converting rows; 1 converts them in the process that copies them.
    workers: int = 1

    @classmethod
    def from_sources(cls, x_args: Mapping[str, str]) -> CopyOptions:
        return cls(
            bad_rows=choice("bad_rows", x_args, ("fail", "reject")),
            orphans=choice("orphans", x_args, ("reject", "set_null")),
            dry_run=flag("dry_run", x_args),
            force=flag("force", x_args),
            work_dir=Path(_raw("work_dir", x_args, "work")),
            workers=count("workers", x_args, min(os.cpu_count() or 1, DEFAULT_WORKERS),
                          env="ROW_COPY_WORKERS"),
        )


DEFAULT_EXCLUDE = ("tmp/", "*.part")


def _patterns(name: str, x_args: Mapping[str, str], default: tuple[str, ...],
              env: str) -> tuple[str, ...]:
    """A comma-separated list (globs, folders); ``none`` means an empty one."""
    value = _raw(name, x_args, ",".join(default), env)
    if value.lower() == "none":
        return ()
    return tuple(p.strip() for p in value.split(",") if p.strip())


@dataclass(frozen=True)
class UploadOptions:
    """Which files the upload takes, what it does with unsafe ones, and the downgrade's
    purge."""

    uploads_dir: Path = Path("uploads")
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    unsafe_files: str = "fail"
    dry_run: bool = False
    purge_objects: bool = False
    work_dir: Path = Path("work")

    @classmethod
    def from_sources(cls, x_args: Mapping[str, str]) -> UploadOptions:
        return cls(
            uploads_dir=Path(_raw("uploads_dir", x_args, "uploads")),
            exclude=_patterns("exclude", x_args, DEFAULT_EXCLUDE, env="UPLOAD_EXCLUDE"),
            unsafe_files=choice("unsafe_files", x_args, ("fail", "skip")),
            dry_run=flag("dry_run", x_args),
            purge_objects=flag("purge_objects", x_args),
            work_dir=Path(_raw("work_dir", x_args, "work")),
        )


@dataclass(frozen=True)
class PathOptions:
    """How the path rewrite reads stored paths and treats the ones it cannot rewrite."""

    missing_files: str = "fail"
    aliases: tuple[str, ...] = ()
    uploads_dir: Path = Path("uploads")
    dry_run: bool = False

    @classmethod
    def from_sources(cls, x_args: Mapping[str, str]) -> PathOptions:
        return cls(
            missing_files=choice("missing_files", x_args, ("fail", "keep")),
            aliases=_patterns("uploads_path_aliases", x_args, (), env="UPLOADS_PATH_ALIASES"),
            uploads_dir=Path(_raw("uploads_dir", x_args, "uploads")),
            dry_run=flag("dry_run", x_args),
        )
