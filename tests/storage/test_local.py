"""LocalStorage specifics: keys that cannot be files, the reserved folder, tidy deletes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from storage.base import ObjectInfo, PendingUpload, StorageError, file_crc64
from storage.local import LocalStorage

MakeFile = Callable[..., Path]


@pytest.mark.parametrize("key", ["../escape.txt", "a/../../escape.txt", "/etc/passwd", "a//b",
                                 "folder/", "", ".incoming/x", "nul\0byte"])
def test_keys_that_are_not_safe_relative_paths_are_refused(local_storage: LocalStorage,
                                                           make_file: MakeFile,
                                                           key: str) -> None:
    with pytest.raises(StorageError, match="cannot be stored"):
        local_storage.put_file(key, make_file(b"x"))
    assert list(local_storage.root.parent.glob("escape.txt")) == []


def test_a_symlink_out_of_the_root_is_refused(local_storage: LocalStorage, tmp_path: Path,
                                              make_file: MakeFile) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_storage.root / "link").symlink_to(outside)

    with pytest.raises(StorageError, match="leads outside"):
        local_storage.put_file("link/x.txt", make_file(b"x"))
    assert list(outside.iterdir()) == []


def test_objects_are_plain_files_under_the_root(local_storage: LocalStorage,
                                                make_file: MakeFile) -> None:
    local_storage.put_file("会议/a b.txt", make_file(b"content"))

    assert (local_storage.root / "会议" / "a b.txt").read_bytes() == b"content"


def test_delete_removes_folders_left_empty(local_storage: LocalStorage,
                                           make_file: MakeFile) -> None:
    local_storage.put_file("a/b/c/one.txt", make_file(b"1"))
    local_storage.put_file("a/two.txt", make_file(b"2"))

    local_storage.delete("a/b/c/one.txt")

    assert not (local_storage.root / "a" / "b").exists()
    assert (local_storage.root / "a" / "two.txt").exists()


def test_listing_skips_uploads_in_progress(local_storage: LocalStorage,
                                           make_file: MakeFile) -> None:
    local_storage.put_file("real.txt", make_file(b"x"))
    (local_storage.root / ".incoming").mkdir(exist_ok=True)
    (local_storage.root / ".incoming" / "tmp123").write_bytes(b"half")

    assert [info.key for info in local_storage.list()] == ["real.txt"]


def test_a_key_under_an_existing_file_is_a_storage_error(local_storage: LocalStorage,
                                                         make_file: MakeFile) -> None:
    local_storage.put_file("a", make_file(b"file"))

    with pytest.raises(StorageError, match="cannot store 'a/b'"):
        local_storage.put_file("a/b", make_file(b"x"))


def test_preflight_names_a_missing_folder(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "missing", "file:///x")

    with pytest.raises(StorageError,
                       match=r"step 'folder': STORAGE_LOCAL_ROOT .*missing is not an existing"):
        storage.preflight()


def test_a_pending_upload_to_resume_is_ignored(local_storage: LocalStorage,
                                               make_file: MakeFile) -> None:
    # A folder has no multipart uploads: the whole file is written, nothing counts as reused.
    source = make_file(size=3000)

    stored = local_storage.put_file("talk.wav", source,
                                    resume=PendingUpload("talk.wav", "from-another-store"))

    assert stored == ObjectInfo("talk.wav", 3000, file_crc64(source))
    assert stored.reused_bytes == 0
    assert (local_storage.root / "talk.wav").read_bytes() == source.read_bytes()
