"""The storage settings (settings.storage) and the client they describe (build_storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_migrations.run.storage_factory import build_storage
from devtools.tos_server import TosServer
from settings import ConfigError, read
from settings.storage import TOS_REQUIRED, StorageSettings
from storage.base import PrefixedStorage
from storage.local import LocalStorage
from storage.tos import TosStorage
from tests.conftest import ACCESS_KEY, BUCKET, SECRET_KEY

SECRET = "very-secret-value-0123456789"
TOS_ENV = {
    "STORAGE_PROVIDER": "tos",
    "STORAGE_BUCKET": "meeting-agent",
    "STORAGE_REGION": "cn-beijing",
    "STORAGE_ENDPOINT": "tos-cn-beijing.volces.com",
    "STORAGE_ACCESS_KEY": "AKLT-example",
    "STORAGE_SECRET_KEY": SECRET,
}


def storage_settings(env: dict[str, str]) -> StorageSettings:
    """The storage settings read from ``env`` alone, as from an .env file."""
    return read(environ=env, load_env_file=False).storage()


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        storage_settings(env)
    message = str(caught.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


def test_defaults_are_a_local_folder() -> None:
    settings = storage_settings({})

    assert settings.provider == "local"
    assert settings.local_root == Path("work/bucket")
    assert settings.public_base_url == Path("work/bucket").resolve().as_uri()
    assert settings.key_prefix == ""
    assert settings.proxy is None
    assert settings.max_concurrent == 10


def test_tos_settings_and_their_defaults() -> None:
    settings = storage_settings({**TOS_ENV, "STORAGE_PROXY": "http://10.0.0.5:3128",
                                         "STORAGE_ENDPOINT": "http://tos.internal:8080",
                                         "STORAGE_KEY_PREFIX": "/meetings/audio",
                                         "MAX_CONCURRENT": "32"})

    assert settings.endpoint == "http://tos.internal:8080"
    assert settings.public_base_url == "https://meeting-agent.tos.internal:8080"
    assert settings.proxy == ("10.0.0.5", 3128)
    assert settings.key_prefix == "meetings/audio/"
    assert settings.max_concurrent == 32


def test_a_bare_endpoint_host_means_https() -> None:
    settings = storage_settings(TOS_ENV)

    assert settings.endpoint == "https://tos-cn-beijing.volces.com"
    assert settings.public_base_url == "https://meeting-agent.tos-cn-beijing.volces.com"


def test_the_secret_is_not_in_the_repr() -> None:
    settings = storage_settings(TOS_ENV)

    assert SECRET not in repr(settings)
    assert settings.secret_key == SECRET


@pytest.mark.parametrize("name", TOS_REQUIRED)
def test_each_tos_variable_is_required(name: str) -> None:
    env = {**TOS_ENV, name: "  "}

    assert config_error(env) == f"{name} is not set (needed when STORAGE_PROVIDER=tos)"


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("STORAGE_PROVIDER", "s3", "STORAGE_PROVIDER must be 'local' or 'tos', got 's3'"),
    ("MAX_CONCURRENT", "abc", "MAX_CONCURRENT must be a positive integer, got 'abc'"),
    ("MAX_CONCURRENT", "0", "MAX_CONCURRENT must be a positive integer, got '0'"),
    ("MAX_CONCURRENT", "-3", "MAX_CONCURRENT must be a positive integer, got '-3'"),
    ("STORAGE_PROXY", "proxy.local:3128", "STORAGE_PROXY must look like http://host:port"),
    ("STORAGE_PROXY", "http://proxy.local", "STORAGE_PROXY must look like http://host:port"),
    ("STORAGE_PROXY", "http://proxy.local:99999",
     "STORAGE_PROXY must look like http://host:port"),
    ("STORAGE_PROXY", f"http://user:{SECRET}@proxy:3128",
     "STORAGE_PROXY must look like http://host:port"),
    ("STORAGE_BUCKET", "Meeting_Agent", "STORAGE_BUCKET must be 3-63 lowercase letters, "
     "digits or '-' (not at either end), got 'Meeting_Agent'"),
    ("STORAGE_ENDPOINT", "ftp://tos.example.com",
     "STORAGE_ENDPOINT must look like https://tos-cn-beijing.volces.com, "
     "got 'ftp://tos.example.com'"),
    ("STORAGE_PUBLIC_BASE_URL", "cdn.example.com", "STORAGE_PUBLIC_BASE_URL must start with "
     "http://, https:// or file://, got 'cdn.example.com'"),
    *(("STORAGE_RATE_LIMIT", value, "STORAGE_RATE_LIMIT must be a rate in bytes per second "
       f"such as 20MB, 512KB or 16MiB, got {value!r}")
      for value in ("fast", "20 Mbps", "MB", "-5MB", "0", "0.0001KB", "1e6")),
])
def test_malformed_values_name_the_variable(name: str, value: str, expected: str) -> None:
    assert config_error({**TOS_ENV, name: value}) == expected


@pytest.mark.parametrize(("value", "bytes_per_second"), [
    ("", None), ("20MB", 20_000_000), ("512KB", 512_000), ("512kb/s", 512_000),
    ("16MiB", 16 * 1024 * 1024), ("1.5 MB", 1_500_000), ("1GB", 10**9), ("250000", 250_000),
])
def test_a_rate_limit_is_bytes_per_second(value: str, bytes_per_second: int | None) -> None:
    assert storage_settings({"STORAGE_RATE_LIMIT": value}).rate_limit == bytes_per_second


def test_the_rate_limit_reaches_the_tos_client(tos_server: TosServer, tmp_path: Path) -> None:
    settings = storage_settings({**TOS_ENV, "STORAGE_RATE_LIMIT": "20MB"})

    storage = build_storage(settings, tmp_path / "work")

    assert isinstance(storage, TosStorage)
    assert storage.rate_limiter is not None
    assert storage.rate_limiter._rate == 20_000_000
    storage.close()


def test_a_proxy_needs_an_http_endpoint() -> None:
    message = config_error({**TOS_ENV, "STORAGE_PROXY": "http://proxy:3128"})

    assert message.startswith("STORAGE_PROXY needs an http:// STORAGE_ENDPOINT")


def test_build_local_storage_with_a_key_prefix(tmp_path: Path) -> None:
    root = tmp_path / "bucket"
    root.mkdir()
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello")
    settings = storage_settings({"STORAGE_LOCAL_ROOT": str(root),
                                         "STORAGE_KEY_PREFIX": "prod",
                                         "STORAGE_PUBLIC_BASE_URL": "https://cdn.example.com/"})

    storage = build_storage(settings, tmp_path / "work")
    info = storage.put_file("a b.txt", source)

    assert isinstance(storage, PrefixedStorage)
    assert isinstance(storage.inner, LocalStorage)
    assert info.key == "a b.txt"
    assert (root / "prod" / "a b.txt").read_bytes() == b"hello"
    assert [item.key for item in storage.list()] == ["a b.txt"]
    assert storage.public_url("a b.txt") == "https://cdn.example.com/prod/a%20b.txt"
    storage.preflight()


def test_build_tos_storage_from_the_environment(tos_server: TosServer, tmp_path: Path) -> None:
    settings = storage_settings({
        "STORAGE_PROVIDER": "tos", "STORAGE_BUCKET": BUCKET, "STORAGE_REGION": "cn-beijing",
        "STORAGE_ENDPOINT": "http://tos-cn-beijing.volces.com",
        "STORAGE_ACCESS_KEY": ACCESS_KEY, "STORAGE_SECRET_KEY": SECRET_KEY,
        "STORAGE_PROXY": f"http://127.0.0.1:{tos_server.port}",
    })

    storage = build_storage(settings, tmp_path / "work")

    assert isinstance(storage, TosStorage)
    assert storage.public_url("x y.mp3") == (
        "https://meeting-agent.tos-cn-beijing.volces.com/x%20y.mp3")
    storage.preflight()
    storage.close()
