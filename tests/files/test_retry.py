"""A storage action is retried only while its failure may pass: a refusal or a 501 fails at
once, a 5xx or a lost connection is tried again; a refused proxy is named as such. The real
SDK against the local TOS server."""

from __future__ import annotations

import pytest

from data_migrations.files.retry import ActionFailure, retrying
from devtools.tos_server import Faults, TosServer
from storage.base import StorageError
from tests.conftest import TosFactory

NO_WAITS = (0.0, 0.0, 0.0, 0.0, 0.0)  # five retries, as RETRY_BACKOFF_SECONDS has


@pytest.mark.parametrize(("status", "attempts"), [
    (501, 1), (400, 1), (404, 1), (403, 1), (503, 6), (500, 6), (408, 6), (429, 6)])
def test_only_a_failure_that_may_pass_is_retried(
    status: int, attempts: int, make_tos_storage: TosFactory, tos_server: TosServer
) -> None:
    storage = make_tos_storage(max_retry_count=0)  # one request per attempt
    tos_server.faults = Faults(error_rate=1.0, error_status=status)

    with pytest.raises(ActionFailure) as failure:
        retrying(lambda: list(storage.list()), "listing of the bucket", NO_WAITS)
    assert tos_server.faults.errors == attempts
    plural = "s" if attempts > 1 else ""
    assert f"listing of the bucket (after {attempts} attempt{plural}): " in str(failure.value)
    assert f"HTTP {status}" in str(failure.value)


def test_a_refused_proxy_is_named_as_refused_not_as_a_timeout(
    make_tos_storage: TosFactory, tos_server: TosServer
) -> None:
    port = tos_server.port
    tos_server.stop()
    storage = make_tos_storage(proxy=("127.0.0.1", port), max_retry_count=0)

    with pytest.raises(StorageError) as failure:
        storage.stat("k")
    message = str(failure.value)
    assert message.startswith("stat of 'k' in bucket 'meeting-agent' failed: connection "
                              "refused by the proxy (STORAGE_PROXY) ("), message
    assert "timeout" not in message
