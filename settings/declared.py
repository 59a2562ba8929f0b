"""Every setting of the cutover, declared once: name, parser, default, ``-x`` alias,
secret or not, and what it means.

The settings table of docs/configuration.md (``## Settings``) is written from these
declarations (tests/settings/test_settings.py compares the two). Each names its parser from
settings/parsers.py, which turns the text an operator wrote into the value the steps use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from settings.app_config import overridable
from settings.parsers import (
    STORAGE_CLASSES,
    Parser,
    acl,
    bucket,
    choice,
    count,
    duration,
    endpoint,
    exclusions,
    flag,
    key_prefix,
    max_delete,
    optional,
    part_size,
    path,
    patterns,
    positive_int,
    provider,
    proxy,
    public_base_url,
    rate,
    text,
    upper_choice,
    urls_to_fetch,
    whole_number,
)
from settings.urls import parse_source_url, parse_target_url
from storage.tos import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE


@dataclass(frozen=True)
class Setting:
    name: str  # the environment variable (and .env file) name
    parse: Parser
    default: str  # as text, parsed like a written value; "" means unset
    meaning: str  # one line, as docs/configuration.md shows it
    x: str | None = None  # the -x name, when the setting can be given per run
    secret: bool = False  # never printed
    shown_default: str | None = None  # the documented default when it is not the text itself
    # Parsed only when a step needs storage, so a schema-only run never reads it; every
    # other setting is parsed when the command starts.
    storage: bool = False

    @property
    def label(self) -> str:
        return self.x or self.name

    @property
    def documented_default(self) -> str:
        """The default as docs/configuration.md's settings table shows it."""
        if self.shown_default is not None:
            return self.shown_default
        return f"`{self.default}`" if self.default else "—"


# ------------------------------------------------------------------ declarations

# Row-copy workers by default: one per core, at most two. Each holds about 45 MiB, and
# PostgreSQL reads a COPY on one core; more can be asked for with ROW_COPY_WORKERS.
DEFAULT_WORKERS = 2

ENV = Setting("ENV", text, "", "which `.env.<name>` file to read")
DATABASE_URL = Setting(
    "DATABASE_URL", optional(parse_target_url), "",
    "the target, e.g. `postgresql://meeting_agent:…@db:5432/meeting_agent` "
    "(`postgres://` and `postgresql+psycopg2://` work too; a password with `@ : / #` is "
    "percent-encoded); the password is masked wherever it is printed",
    secret=True, shown_default="required")
SOURCE_DATABASE_URL = Setting(
    "SOURCE_DATABASE_URL", optional(parse_source_url), "",
    "the dev database, e.g. `sqlite:///./meeting_agent.db`; unset = schema only")
BAD_ROWS = Setting(
    "BAD_ROWS", choice("fail", "reject"), "fail",
    "rows PostgreSQL would refuse: `fail` stops with every finding, `reject` copies the rest "
    "and writes those to the rejects file", x="bad_rows")
ORPHANS = Setting(
    "ORPHANS", choice("reject", "set_null"), "reject",
    "`set_null`: keep a row whose optional reference points nowhere, with the reference set "
    "to NULL (recorded)", x="orphans")
ROW_COPY_WORKERS = Setting(
    "ROW_COPY_WORKERS", count, str(min(os.cpu_count() or 1, DEFAULT_WORKERS)),
    "processes converting rows while the migration process streams them to PostgreSQL; "
    "each holds about 45 MiB; `1` converts in the migration process",
    x="workers", shown_default="one per core, at most 2")
UPLOADS_DIR = Setting(
    "UPLOADS_DIR", path, "./uploads", "the app's uploads folder; only read, never written",
    x="uploads_dir")
UPLOAD_EXCLUDE = Setting(
    "UPLOAD_EXCLUDE", exclusions, "",
    "comma-separated globs left out of the upload, in addition to `tmp/` and `*.part`, "
    "which always are; `none` leaves nothing out, not even those", x="exclude",
    shown_default="`tmp/,*.part`")
UNSAFE_FILES = Setting(
    "UNSAFE_FILES", choice("fail", "skip"), "fail",
    "links leading outside `UPLOADS_DIR` and special files: `fail` stops, `skip` leaves them "
    "out and lists them", x="unsafe_files")
UPLOADS_PATH_ALIASES = Setting(
    "UPLOADS_PATH_ALIASES", patterns, "",
    "comma-separated absolute folders that meant the uploads folder on the machines that "
    "wrote the paths, e.g. `/home/dev/meeting-agent/uploads,C:\\app\\uploads` (`UPLOADS_DIR` "
    "itself always counts)", x="uploads_path_aliases")
MISSING_FILES = Setting(
    "MISSING_FILES", choice("fail", "keep"), "fail",
    "stored paths that cannot be rewritten: `fail` stops, `keep` leaves them and lists them",
    x="missing_files")
STORAGE_PROVIDER = Setting(
    "STORAGE_PROVIDER", provider, "local", "`tos`, or `local` (a folder, for development)",
    storage=True)
STORAGE_BUCKET = Setting("STORAGE_BUCKET", bucket, "", "e.g. `meeting-agent`",
                         shown_default="required for `tos`", storage=True)
STORAGE_REGION = Setting("STORAGE_REGION", text, "", "e.g. `cn-beijing`",
                         shown_default="required for `tos`", storage=True)
STORAGE_ENDPOINT = Setting("STORAGE_ENDPOINT", endpoint, "",
                           "e.g. `https://tos-cn-beijing.volces.com`, or the internal "
                           "`tos-cn-beijing.ivolces.com` (a bare host means `https://`)",
                           shown_default="required for `tos`", storage=True)
STORAGE_ACCESS_KEY = Setting("STORAGE_ACCESS_KEY", text, "", "TOS credentials; never printed",
                             secret=True, shown_default="required for `tos`", storage=True)
STORAGE_SECRET_KEY = Setting("STORAGE_SECRET_KEY", text, "", "TOS credentials; never printed",
                             secret=True, shown_default="required for `tos`", storage=True)
STORAGE_KEY_PREFIX = Setting(
    "STORAGE_KEY_PREFIX", key_prefix, "",
    "a folder in the bucket for every key, e.g. `meeting-agent/prod`", storage=True)
STORAGE_PUBLIC_BASE_URL = Setting(
    "STORAGE_PUBLIC_BASE_URL", public_base_url, "",
    "what the rewritten paths start with (a CDN, for example)",
    shown_default="`https://<bucket>.<endpoint host>`", storage=True)
STORAGE_PROXY = Setting(
    "STORAGE_PROXY", proxy, "",
    "`http://host:port` egress proxy (needs an `http://` endpoint: the SDK proxies only http)",
    secret=True, storage=True)
STORAGE_LOCAL_ROOT = Setting("STORAGE_LOCAL_ROOT", path, "./work/bucket",
                             "the folder of the `local` provider", storage=True)
MAX_CONCURRENT = Setting("MAX_CONCURRENT", positive_int, "10",
                         "parallel uploads, checks and deletes", storage=True)
STORAGE_MULTIPART_THRESHOLD = Setting(
    "STORAGE_MULTIPART_THRESHOLD", positive_int, str(DEFAULT_MULTIPART_THRESHOLD),
    "when a file goes up in parts (in parallel, and resumable after a kill)",
    shown_default="16 MiB", storage=True)
STORAGE_PART_SIZE = Setting(
    "STORAGE_PART_SIZE", part_size, str(DEFAULT_PART_SIZE),
    "the size of the parts (TOS minimum 5 MiB)", shown_default="16 MiB", storage=True)
STORAGE_RATE_LIMIT = Setting(
    "STORAGE_RATE_LIMIT", rate, "",
    "bytes per second all uploads of a run share, e.g. `20MB` or `512KB` (`KB`, `MB`, `GB` "
    "are powers of 1000, `KiB`, `MiB`, `GiB` of 1024), so that a daytime run leaves room "
    "on the link; unset = unlimited", shown_default="unlimited", storage=True)
# How every object is written (single-part and multipart alike, the preflight probe
# included), and the app's own configuration file for the bucket settings.
STORAGE_ACL = Setting(
    "STORAGE_ACL", acl, "",
    "`private` or `public-read` (the app fetches its files by URL without credentials); "
    "unset = the bucket's default", x="acl", storage=True)
STORAGE_CLASS = Setting(
    "STORAGE_CLASS", upper_choice(*STORAGE_CLASSES), "",
    f"the objects' storage class: {', '.join(f'`{c}`' for c in STORAGE_CLASSES)}; "
    "unset = the bucket's default", x="storage_class", storage=True)
STORAGE_SSE = Setting(
    "STORAGE_SSE", upper_choice("AES256"), "",
    "`AES256`: server-side encryption with TOS-managed keys (SSE-TOS); unset = none asked",
    x="sse", storage=True)
STORAGE_SECURITY_TOKEN = Setting(
    "STORAGE_SECURITY_TOKEN", text, "",
    "an STS token for temporary credentials, used with the access key pair it came with; "
    "never printed", secret=True, storage=True)
STORAGE_CONFIG = Setting(
    "STORAGE_CONFIG", optional(path), "",
    "the app's YAML configuration, e.g. `config/production.yaml`: its `storage:` block gives "
    "the bucket settings (see [The app's configuration file](#the-apps-configuration-file)); "
    "a `STORAGE_*` setting given explicitly must agree with it (`STORAGE_CONFIG_OVERRIDES`)",
    storage=True)
# An explicit STORAGE_* setting that says otherwise than the app's YAML is refused: the
# operator names the ones meant to differ (a staging bucket for a rehearsal, say).
STORAGE_CONFIG_OVERRIDES = Setting(
    "STORAGE_CONFIG_OVERRIDES", overridable, "",
    "comma-separated `STORAGE_*` settings that may say otherwise than `STORAGE_CONFIG`'s "
    "file, e.g. `STORAGE_BUCKET`: given explicitly, they win over it; any other that "
    "disagrees with the file stops the run", storage=True)
DRY_RUN = Setting("DRY_RUN", flag, "false",
                  "run the whole chain, print every plan and finding, roll everything back",
                  x="dry_run")
FORCE = Setting("FORCE", flag, "false",
                "let the rows downgrade run although the app has written rows since (never when "
                "a row the app wrote references a copied row)", x="force")
PURGE_OBJECTS = Setting("PURGE_OBJECTS", flag, "false",
                        "the files downgrade deletes the uploaded objects", x="purge_objects")
CHECKSUM_EVERY_FILE = Setting(
    "CHECKSUM_EVERY_FILE", flag, "false",
    "the files step reads and checks every file, even one the presync record shows "
    "unchanged; make verify compares every file's bytes with its upload", x="checksum")
PRUNE_OBJECTS = Setting(
    "PRUNE_OBJECTS", flag, "false",
    "the files step and the presync delete the objects a presync stored whose files are gone "
    "from `UPLOADS_DIR` (only keys the presync record holds)", x="prune")
# rclone's --max-delete is unlimited unless given, and its users give it precisely to stop
# a sync from a wrong or empty folder from emptying the bucket. Here the bound is a share,
# so that it fits a folder of 200 files and one of 2 million alike: between two presyncs
# (or the last one and the cutover) the app deletes a few files of its folder, not one in
# ten; a run that would delete more stops with the count and how to allow it.
PRUNE_MAX_DELETE = Setting(
    "PRUNE_MAX_DELETE", max_delete, "10%",
    "the most objects `-x prune=true` deletes in one run: a count (`50`) or a share of the "
    "objects the presync record holds (`10%`); more stops the run, nothing deleted",
    x="prune_max_delete")
# A presync refuses, and prune deletes nothing, while UPLOADS_DIR does not look like the
# folder the presync record describes (a wrong path, another disk mounted there): one
# check, data_migrations/files/folder_guard.py. When the folder really is the app's, this
# says so, for both.
UPLOADS_DIR_CHANGED = Setting(
    "UPLOADS_DIR_CHANGED", flag, "false",
    "`true`: `UPLOADS_DIR` is the app's folder although most files the presync record holds "
    "are gone from it or changed; the presync uploads it and `-x prune=true` deletes (within "
    "`PRUNE_MAX_DELETE`) instead of refusing", x="uploads_dir_changed")
WORK_DIR = Setting(
    "WORK_DIR", path, "./work",
    "the source backup (`backups/`, which `make verify` compares with: keep it), rejects and "
    "refusal files (`rejects/`), the presync record (`presync/`), the storage probe; never "
    "inside `UPLOADS_DIR`", x="work_dir")
VERIFY_URLS = Setting(
    "VERIFY_URLS", urls_to_fetch, "all",
    "which URLs `make verify` fetches as the app does (no credentials, no proxy): `all`, "
    "`none`, or `sample:N` (N chosen at random)", x="urls")
REPORTS_DIR = Setting("REPORTS_DIR", path, "./reports",
                      "each run's JSON report (the cutover's, the plan's, the presync's and "
                      "verify's, with the predicted freeze window) and its HTML page")
# The report page beside each JSON report speaks one language; the JSON stays as it is.
REPORT_LANGUAGE = Setting(
    "REPORT_LANGUAGE", choice("en", "zh"), "en",
    "the language of each run's HTML report page: `en` English, `zh` 中文")
# After go-live a schema revision runs on the live database: it waits for its locks at most
# LOCK_TIMEOUT, so the app's statements queued behind it wait no longer, and is rolled back
# and retried after a pause (GitLab's with_lock_retries, strong_migrations). Short waits and
# many tries by default: every attempt that waits stalls every app statement on the table
# for the whole wait, so 100 ms per attempt stays below what a user notices, while 20
# retries with pauses doubling from 500 ms to 10 s (about 3 minutes in all) outlast an
# ordinary report query. A longer wait is the operator's explicit choice for a hard case.
LOCK_TIMEOUT = Setting(
    "LOCK_TIMEOUT", duration, "100ms",
    "how long each attempt of a schema revision waits for a lock (the app's statements "
    "queued behind it wait as long) before it is rolled back and retried, e.g. `100ms`, "
    "`2s`; `0` waits without limit; the cutover's data revisions run without one",
    x="lock_timeout")
LOCK_RETRIES = Setting(
    "LOCK_RETRIES", whole_number, "20",
    "retries of a revision whose lock was not granted in time; `0` fails at the first",
    x="lock_retries")
LOCK_RETRY_BACKOFF = Setting(
    "LOCK_RETRY_BACKOFF", duration, "500ms",
    "the pause before the first retry, doubled before each next one (at most 10 s)",
    x="lock_retry_backoff")
# A downgrade past the baseline drops the app's tables; after go-live they hold what the
# app's users made. It refuses while any of them holds a row unless this says so.
DROP_APP_DATA = Setting(
    "DROP_APP_DATA", flag, "false",
    "let a downgrade drop tables (the baseline's downgrade) or columns that still hold rows "
    "or values, e.g. ones the app wrote after go-live", x="drop_app_data")
# Rows written to the dev file after the cutover's snapshot are lost at go-live unless
# make catch-up copies them; leaving them is a decision the operator states.
LEAVE_DEV_ROWS = Setting(
    "LEAVE_DEV_ROWS", flag, "false",
    "rows written to the dev file after the cutover's snapshot stay there on purpose: the "
    "cutover exits 0 instead of 3 and `make verify` passes, still listing them",
    x="leave_dev_rows")

DECLARED: tuple[Setting, ...] = (
    ENV, DATABASE_URL, SOURCE_DATABASE_URL, BAD_ROWS, ORPHANS, ROW_COPY_WORKERS, UPLOADS_DIR,
    UPLOAD_EXCLUDE, UNSAFE_FILES, UPLOADS_PATH_ALIASES, MISSING_FILES, STORAGE_PROVIDER,
    STORAGE_BUCKET, STORAGE_REGION, STORAGE_ENDPOINT, STORAGE_ACCESS_KEY, STORAGE_SECRET_KEY,
    STORAGE_KEY_PREFIX, STORAGE_PUBLIC_BASE_URL, STORAGE_PROXY, STORAGE_LOCAL_ROOT,
    MAX_CONCURRENT, STORAGE_MULTIPART_THRESHOLD, STORAGE_PART_SIZE, STORAGE_RATE_LIMIT,
    STORAGE_ACL, STORAGE_CLASS, STORAGE_SSE, STORAGE_SECURITY_TOKEN, STORAGE_CONFIG, DRY_RUN,
    FORCE, PURGE_OBJECTS, CHECKSUM_EVERY_FILE, PRUNE_OBJECTS, PRUNE_MAX_DELETE, WORK_DIR,
    VERIFY_URLS, REPORTS_DIR, LOCK_TIMEOUT, LOCK_RETRIES, LOCK_RETRY_BACKOFF,
    DROP_APP_DATA,
    UPLOADS_DIR_CHANGED,
    STORAGE_CONFIG_OVERRIDES,
    LEAVE_DEV_ROWS,
    REPORT_LANGUAGE,
)
