"""The storage preflight against a key whose policy lacks actions, and against a store that
answers a burst of 503s, through the real SDK and the local TOS server."""

from __future__ import annotations

from pathlib import Path

import pytest
import tos
from tos.exceptions import TosServerError

from data_migrations.files.preflight import retried
from devtools.tos_server import Faults, TosServer
from devtools.tos_server.__main__ import parse_args
from storage.base import PrefixedStorage, StorageError
from storage.options import ObjectOptions
from tests.conftest import BUCKET, TosFactory


def test_the_server_answers_a_denied_action_with_access_denied(
        tos_server: TosServer, raw_client: tos.TosClientV2) -> None:
    raw_client.put_object(BUCKET, "a.txt", content=b"a")
    tos_server.faults = Faults(denied=frozenset({"GetObject"}))

    with pytest.raises(TosServerError) as caught:
        raw_client.get_object(BUCKET, "a.txt")
    assert (caught.value.status_code, caught.value.code) == (403, "AccessDenied")
    assert "tos:GetObject" in caught.value.message
    assert [o.key for o in raw_client.list_objects_type2(BUCKET).contents] == ["a.txt"]


def test_the_command_line_takes_denied_actions(tmp_path: Path) -> None:
    base = ["--root", str(tmp_path), "--access-key", "AK", "--secret-key", "SK"]
    args = parse_args([*base, "--deny", "ListMultipartUploads", "--deny", "PutObjectAcl"])
    assert args.deny == ["ListMultipartUploads", "PutObjectAcl"]
    with pytest.raises(SystemExit):
        parse_args([*base, "--deny", "ListMultipartUpload"])  # not an action


def test_a_probe_denied_its_read_back_leaves_nothing_behind(
        make_tos_storage: TosFactory, tos_server: TosServer) -> None:
    storage = make_tos_storage(options=ObjectOptions(acl="public-read"))
    tos_server.faults = Faults(denied=frozenset({"GetObject"}))

    refused = r"step .probe read.: the storage key may not call tos:GetObject "
    with pytest.raises(StorageError, match=refused) as caught:
        storage.preflight(retried)
    assert caught.value.denied
    assert tos_server.store.bucket(BUCKET).sorted_keys() == []


def test_without_list_multipart_uploads_the_preflight_says_what_a_run_skips(
        make_tos_storage: TosFactory, tos_server: TosServer) -> None:
    tos_server.faults = Faults(denied=frozenset({"ListMultipartUploads"}))
    storage = PrefixedStorage(make_tos_storage(), "meetings/")

    [note] = storage.preflight(retried)

    assert note.startswith("The storage key may not call tos:ListMultipartUploads: ")
    assert "none is resumed or aborted" in note
    tos_server.faults = Faults()
    assert storage.preflight(retried) == []


def test_a_503_burst_on_the_probe_cleanup_listing_is_retried(
        make_tos_storage: TosFactory, tos_server: TosServer) -> None:
    storage = make_tos_storage(max_retry_count=3)  # four SDK attempts a call
    # The listing of the leftover probes is the preflight's first GET: the burst outlasts
    # the SDK's own attempts, then the store answers again.
    tos_server.faults = Faults(error_burst=6, methods=frozenset({"GET"}))

    assert storage.preflight(retried) == []

    assert tos_server.faults.errors == 6
    assert tos_server.store.bucket(BUCKET).sorted_keys() == []
