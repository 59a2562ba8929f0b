"""Where the cutover's configuration comes from.

``ENV=<name>`` selects the file ``.env.<name>``; with no ``ENV`` an optional ``.env`` is
read. Variables already set in the process environment always win over the file, so an
operator can override one setting for one run without editing anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(Exception):
    """A missing or malformed setting; the message names it and holds no secret."""


def load_environment(env_name: str | None = None, directory: Path | None = None) -> Path | None:
    """Read ``.env.<env_name>`` (or ``.env``) into ``os.environ``; return the file read."""
    directory = directory or Path.cwd()
    if env_name:
        env_file = directory / f".env.{env_name}"
        if not env_file.is_file():
            raise ConfigError(f"ENV={env_name} but {env_file} does not exist")
    else:
        env_file = directory / ".env"
        if not env_file.is_file():
            return None
    load_dotenv(env_file, override=False)
    return env_file


def require(name: str) -> str:
    """The value of a setting that must be present."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set (put it in the .env file or the environment)")
    return value


def parse_database_url(name: str, value: str) -> URL:
    """Parse a database URL setting; a malformed one is reported by name, password masked."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(f"{name} is not a valid database URL: {mask_url(value)}") from None
    if url.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"{name} must be a postgresql:// or sqlite:// URL, got {mask_url(value)}"
        )
    return url


def database_url() -> URL:
    """The target database: ``DATABASE_URL``."""
    return parse_database_url("DATABASE_URL", require("DATABASE_URL"))


def mask_url(url: str | URL) -> str:
    """A URL safe to print: the password, if any, replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        # Not parseable as a URL: show only the scheme so no secret can leak.
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme}://***"


def source_database_path() -> Path | None:
    """The dev SQLite file that ``SOURCE_DATABASE_URL`` names, or None when it is unset."""
    value = os.environ.get("SOURCE_DATABASE_URL", "").strip()
    if not value:
        return None
    url = parse_database_url("SOURCE_DATABASE_URL", value)
    if url.get_backend_name() != "sqlite" or not url.database:
        raise ConfigError(f"SOURCE_DATABASE_URL must name a SQLite file, got {mask_url(url)}")
    path = Path(url.database)
    if not path.is_file():
        raise ConfigError(f"SOURCE_DATABASE_URL names {path}, which does not exist")
    return path
