"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test,
and an isolated working directory so no developer .env file leaks into a test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config

from tests.postgres_server import PostgresServer, running_server

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_VARIABLES = ("ENV", "DATABASE_URL", "SOURCE_DATABASE_URL")


def alembic_config(url: str | None = None, connection: sa.Connection | None = None) -> Config:
    """An Alembic config for this repository, aimed at a URL or an open connection."""
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False
    if url is not None:
        config.attributes["database_url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    with postgres_server.database(f"test_{uuid.uuid4().hex[:12]}") as url:
        yield url


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


# pytest-alembic: its built-in revision tests (tests/test_revisions.py) run on PostgreSQL.
@pytest.fixture
def alembic_engine(pg_engine: sa.Engine) -> sa.Engine:
    return pg_engine


@pytest.fixture(name="alembic_config")
def alembic_config_fixture() -> Config:
    return alembic_config()
