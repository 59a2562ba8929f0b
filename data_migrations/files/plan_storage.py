"""What ``make plan`` asks the storage, without writing to it: the bucket, region,
endpoint and public base URL the run will use, and where each came from; then the keys,
the bucket in that region and its listing (StorageClient.check_without_writing), and
whether the public base URL answers from here. The write probe and the calls on
multipart uploads write, so only ``make presync`` and ``make migrate`` make them."""

from __future__ import annotations

import logging
from contextlib import closing
from pathlib import Path

import requests

from data_migrations.run.storage_factory import build_storage
from settings import Settings, declared
from settings.storage import StorageSettings
from storage import StorageError
from storage.base import Retry

log = logging.getLogger("cutover.preflight")

SHOWN = (declared.STORAGE_BUCKET, declared.STORAGE_REGION, declared.STORAGE_ENDPOINT,
         declared.STORAGE_PUBLIC_BASE_URL)
URL_TIMEOUT_SECONDS = 10.0
LEFT_TO_THE_RUN = ("Left to make presync and make migrate, which write: the probe object "
                   "(written, read back, deleted) and the calls on multipart uploads and ACLs.")


def checked_without_writing(cutover: Settings, target: StorageSettings, work_dir: Path,
                            retry: Retry) -> list[str]:
    """The plan's storage check: its problems (one line each), the rest logged."""
    log.info(f"Storage of this run: {where_from(cutover, target)}")
    if target.provider != "tos":
        return []
    try:
        with closing(build_storage(target, work_dir)) as storage:
            storage.check_without_writing(retry)
    except (StorageError, OSError) as error:
        return [str(error)]
    log.info("Storage checked without writing: the keys are accepted, the bucket exists in "
             f"that region, its listing works. {LEFT_TO_THE_RUN}")
    log.info(public_url_answer(target.public_base_url))
    return []


def where_from(cutover: Settings, target: StorageSettings) -> str:
    """The four values a plan shows, each with where it came from."""
    from_file = cutover.storage_config_values()
    values = {declared.STORAGE_BUCKET: repr(target.bucket), declared.STORAGE_REGION:
              repr(target.region), declared.STORAGE_ENDPOINT: target.endpoint,
              declared.STORAGE_PUBLIC_BASE_URL: target.public_base_url}
    if target.provider != "tos":
        return f"{target.location()}, public base URL {target.public_base_url}"

    def origin(setting: declared.Setting) -> str:
        if setting.name in cutover.explicit:
            return cutover.origin(setting.name)
        given = from_file.get(setting.name)
        return given.where if given is not None else "derived"
    return "; ".join(f"{setting.name} {values[setting]} ({origin(setting)})"
                     for setting in SHOWN)


def public_url_answer(base_url: str) -> str:
    """Whether the public base URL answers from this machine, as a line to log. Not a
    problem when it does not: the cutover host often reaches the bucket over an internal
    endpoint with no way out to the CDN; make verify fetches every rewritten URL."""
    session = requests.Session()
    session.trust_env = False  # no proxy: as the app's users fetch it
    try:
        with session, session.head(base_url + "/", timeout=URL_TIMEOUT_SECONDS,
                                   allow_redirects=False) as answer:
            return f"The public base URL {base_url} answers from here (HTTP {answer.status_code})."
    except requests.RequestException as error:
        return (f"The public base URL {base_url} does not answer from here "
                f"({type(error).__name__}): check it from where the app runs; make verify "
                "fetches every rewritten URL.")
