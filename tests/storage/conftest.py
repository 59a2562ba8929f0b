"""Fixtures: a local TOS server on a free port, and both storage back ends wired to it.

The real ``tos`` SDK talks HTTP to the server over loopback through its proxy mode, so
nothing of the SDK is mocked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tos

from storage.base import StorageClient
from storage.local import LocalStorage
from storage.tos import MiB, TosStorage
from storage.tos_server import TosServer

ACCESS_KEY = "AKLT-local-test"
SECRET_KEY = "local-test-secret-0123456789abcdef"
BUCKET = "meeting-agent"
REGION = "cn-beijing"
ENDPOINT = "http://tos-cn-beijing.volces.com"  # never resolved: requests go to the proxy
PUBLIC_BASE_URL = "https://cdn.example.com/media"


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
