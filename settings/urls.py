"""Database URLs as operators write them, and as they may be printed.

The target is PostgreSQL through psycopg2, the driver this tool installs: ``postgresql://``,
``postgres://`` (Heroku, Render) and ``postgresql+psycopg2://`` all mean it. Another driver
(``postgresql+psycopg://``, ``+asyncpg``) is refused with the form to write instead. A URL
whose password holds unencoded reserved characters cannot be split reliably into its parts,
so it is refused showing its scheme alone: any other part might be a piece of the password.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from settings.errors import ConfigError

POSTGRES_SCHEMES = ("postgresql", "postgres")
PSYCOPG2 = "postgresql+psycopg2"
SOURCE_EXAMPLE = "sqlite:///path/to/meeting_agent.db"
# A host as it can be written in a URL (IPv6 comes without its brackets); anything else
# means a reserved character of the password was taken for the end of the credentials.
HOST = re.compile(r"[A-Za-z0-9._%:-]+")
ENCODE_HINT = ("percent-encode reserved characters in the password "
               "(@ → %40, : → %3A, / → %2F, # → %23)")


def scheme_of(value: str) -> str:
    return value.split("://", 1)[0] if "://" in value else "?"


def _split(value: str) -> URL | None:
    """The URL's parts, or None when they cannot be told apart with certainty."""
    try:
        url = make_url(value)
    except (ArgumentError, ValueError):
        return None
    if url.host is not None and not HOST.fullmatch(url.host):
        return None
    if "@" in (url.database or ""):
        return None
    return url


def _parse(name: str, value: str) -> URL:
    url = _split(value)
    if url is None:
        raise ConfigError(f"{name} is not a valid database URL: {ENCODE_HINT} (it starts "
                          f"{scheme_of(value)}://, the rest is not shown)")
    return url


def parse_target_url(name: str, value: str) -> URL:
    """The target: PostgreSQL through psycopg2 (or SQLite, for scratch baselines)."""
    url = _parse(name, value)
    backend, _, driver = url.drivername.partition("+")
    if backend in POSTGRES_SCHEMES:
        if driver in ("", "psycopg2"):
            return url.set(drivername=PSYCOPG2)
        raise ConfigError(f"{name} asks for the driver {driver!r}, which this tool does not "
                          "use: write it as postgresql:// or postgresql+psycopg2://")
    if backend != "sqlite":
        raise ConfigError(f"{name} must be a postgresql:// or sqlite:// URL, got "
                          f"{mask_url(url)}")
    return url


def parse_source_url(name: str, value: str) -> URL:
    """The dev database: a SQLite file."""
    url = _parse(name, value)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ConfigError(f"{name} must name a SQLite file, such as {SOURCE_EXAMPLE}, got "
                          f"{mask_url(url)}")
    return url


def mask_url(url: str | URL) -> str:
    """A URL safe to print: the password, if any, replaced by ``***``; a URL whose parts
    cannot be told apart shows only its scheme."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    parsed = _split(url)
    if parsed is None:
        return f"{scheme_of(url)}://***"
    return parsed.render_as_string(hide_password=True)
