"""Shared fixtures: a real PostgreSQL server for the session, a fresh database per test,
an isolated working directory so no developer .env file leaks into a test, and a local
TOS server with both storage back ends wired to it.

The real ``tos`` SDK talks HTTP to the local TOS server over loopback through its proxy
mode, so nothing of the SDK is mocked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import tos
from alembic.config import Config

from data_migrations.commands.adopt_dev import alembic_config
from data_migrations.run.report import log_to_stderr
from devtools.postgres_server import PostgresServer, running_server
from devtools.tos_server import TosServer
from settings import DECLARED
from storage.base import StorageClient
from storage.local import LocalStorage
from storage.tos import MiB, TosStorage
from tests.dev_data import DevDatabase

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def cutover_log_on_stderr() -> None:
    """In-process Alembic runs skip alembic.ini's logging (``configure_logger`` is False):
    the data steps' log lines reach stderr (capfd) and caplog as they do from the CLI."""
    log_to_stderr()


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Set, then unset: monkeypatch then restores each to "absent" after the test, even when
    # the test loaded an .env file into the environment.
    for setting in DECLARED:
        monkeypatch.setenv(setting.name, "")
        monkeypatch.delenv(setting.name)
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


def fetch(engine: sa.Engine, sql: str) -> list[tuple]:
    """Every row a query answers, as tuples."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def version(engine: sa.Engine) -> str:
    """The revision the database is at."""
    return fetch(engine, "SELECT version_num FROM alembic_version")[0][0]


@pytest.fixture
def dev(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DevDatabase:
    """An empty dev SQLite file that SOURCE_DATABASE_URL names: the cutover's source."""
    database = DevDatabase(tmp_path / "meeting_agent.db")
    monkeypatch.setenv("SOURCE_DATABASE_URL", database.url)
    return database


# pytest-alembic: its built-in revision tests (tests/revisions/test_revisions.py) run on PostgreSQL.
@pytest.fixture
def alembic_engine(pg_engine: sa.Engine) -> sa.Engine:
    return pg_engine


@pytest.fixture(name="alembic_config")
def alembic_config_fixture() -> Config:
    return alembic_config()


# ------------------------------------------------------------------ storage

ACCESS_KEY = "AKLT-local-test"
SECRET_KEY = "local-test-secret-0123456789abcdef"
BUCKET = "meeting-agent"
REGION = "cn-beijing"
ENDPOINT = "http://tos-cn-beijing.volces.com"  # never resolved: requests go to the proxy
PUBLIC_BASE_URL = "https://cdn.example.com/media"


def stored(client: StorageClient) -> dict[str, bytes]:
    """Every object the client lists, with its bytes."""
    result = {}
    for info in client.list():
        with client.open(info.key) as stream:
            result[info.key] = stream.read()
    return result


def tos_env(server: TosServer) -> dict[str, str]:
    """The storage settings that point the cutover at the local TOS server."""
    return {"STORAGE_PROVIDER": "tos", "STORAGE_BUCKET": BUCKET, "STORAGE_REGION": REGION,
            "STORAGE_ENDPOINT": ENDPOINT, "STORAGE_ACCESS_KEY": ACCESS_KEY,
            "STORAGE_SECRET_KEY": SECRET_KEY, "STORAGE_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "STORAGE_PROXY": f"http://127.0.0.1:{server.port}"}


@pytest.fixture
def tos_server(tmp_path: Path) -> Iterator[TosServer]:
    with TosServer(tmp_path / "tos-root", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                   buckets=[BUCKET]) as server:
        yield server


TosFactory = Callable[..., TosStorage]


@pytest.fixture
def make_tos_storage(tos_server: TosServer, tmp_path: Path) -> Iterator[TosFactory]:
    """Build TosStorage clients for the test server; keyword options override defaults.

    Defaults keep tests quick: a low multipart threshold (5 MiB parts), small list pages,
    and short timeouts.
    """
    clients: list[TosStorage] = []

    def make(**options: object) -> TosStorage:
        settings: dict[str, object] = {
            "bucket": BUCKET, "endpoint": ENDPOINT, "region": REGION,
            "access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
            "public_base_url": PUBLIC_BASE_URL, "work_dir": tmp_path / "work",
            "multipart_threshold": 6 * MiB, "part_size": 5 * MiB, "list_page_size": 5,
            "max_retry_count": 3, "socket_timeout": 5.0, "connection_timeout": 2.0,
        }
        settings.update(options)
        if "proxy" not in settings:  # read late: a test may have stopped the server
            settings["proxy"] = ("127.0.0.1", tos_server.port)
        client = TosStorage(**settings)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def tos_storage(make_tos_storage: TosFactory) -> TosStorage:
    return make_tos_storage()


@pytest.fixture
def raw_client(tos_server: TosServer) -> Iterator[tos.TosClientV2]:
    """The bare SDK client, for checks below the StorageClient contract."""
    client = tos.TosClientV2(ACCESS_KEY, SECRET_KEY, ENDPOINT, REGION, dns_cache_time=0,
                             proxy_host="127.0.0.1", proxy_port=tos_server.port,
                             max_retry_count=0, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    root = tmp_path / "bucket"
    root.mkdir()
    return LocalStorage(root, PUBLIC_BASE_URL)


@pytest.fixture(params=["local", "tos"])
def storage(request: pytest.FixtureRequest) -> StorageClient:
    """The same contract tests run against both back ends."""
    return request.getfixturevalue(f"{request.param}_storage")


@pytest.fixture
def make_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a source file: given bytes, or ``size`` random bytes."""
    folder = tmp_path / "sources"
    folder.mkdir()
    counter = iter(range(1_000_000))

    def make(data: bytes | None = None, *, size: int = 0, name: str = "") -> Path:
        path = folder / (name or f"file-{next(counter)}.bin")
        path.write_bytes(os.urandom(size) if data is None else data)
        return path

    return make


# ------------------------------------------------------------------ the fast tier

# A test that uses one of these, directly or through another fixture, needs a real server.
SERVER_FIXTURES = {"postgres_server", "tos_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs PostgreSQL or the local TOS server, so that
    ``make test-fast`` (``-m "not slow"``) leaves it out. A test module that starts a
    server or commands another way (a subprocess, its own server) marks itself."""
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if needs & SERVER_FIXTURES or params.get("storage") == "tos":
            item.add_marker(pytest.mark.slow)
