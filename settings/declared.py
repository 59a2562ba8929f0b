"""Every setting of the cutover, declared once: name, parser, default, ``-x`` alias,
secret or not, and what it means.

The settings table of docs/configuration.md (``## Settings``) is written from these
declarations (tests/settings/test_settings.py compares the two). A parser turns the text an
operator wrote into the value the steps use, or raises ``ConfigError`` naming the setting
as the operator gave it: by its ``-x`` name for a ``-x`` value, else by its variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tos.enum import StorageClassType

from settings.errors import ConfigError
from settings.urls import parse_source_url, parse_target_url
from storage.tos import DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, MIN_PART_SIZE

Parser = Callable[[str, str], Any]  # (label, text) -> value


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


# ------------------------------------------------------------------ parsers

# The globs UPLOAD_EXCLUDE always leaves out (unless it is `none`): the app's scratch
# folder and its half-written files; a setting adds to them, so that excluding one more
# folder never uploads the app's temporary files.
DEFAULT_EXCLUSIONS = ("tmp/", "*.part")
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# The canned ACLs an upload may ask for: the app's files are read-only for the public or
# private; write grants to anyone have no place in a cutover.
UPLOAD_ACLS = ("private", "public-read")
# The SDK's StorageClassType names, less its "Unknown" placeholder.
STORAGE_CLASSES = tuple(t.value for t in StorageClassType
                        if t is not StorageClassType.Storage_Unknown)
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")  # TOS bucket naming rules


def text(label: str, value: str) -> str:
    return value


def path(label: str, value: str) -> Path:
    return Path(value)


def choice(*choices: str) -> Parser:
    """One of a fixed set of values (any case)."""
    def parse(label: str, value: str) -> str:
        lowered = value.lower()
        if lowered not in choices:
            raise ConfigError(f"{label} must be one of {', '.join(choices)}, got {lowered!r}")
        return lowered
    return parse


def flag(label: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in _BOOLEANS:
        raise ConfigError(f"{label} must be true or false, got {lowered!r}")
    return _BOOLEANS[lowered]


def count(label: str, value: str) -> int:
    """A whole number of at least 1."""
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{label} must be a whole number of at least 1, got {value!r}")
    return int(value)


def whole_number(label: str, value: str) -> int:
    """A whole number, 0 included."""
    if not value.isdigit():
        raise ConfigError(f"{label} must be a whole number (0 or more), got {value!r}")
    return int(value)


DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|min)", re.IGNORECASE)
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0}


def duration(label: str, value: str) -> float:
    """Seconds, written with a unit (``500ms``, ``3s``, ``1min``) so that nobody reads a
    bare number as PostgreSQL's milliseconds; ``0`` is none."""
    if value.strip() == "0":
        return 0.0
    match = DURATION.fullmatch(value.strip())
    if not match:
        raise ConfigError(f"{label} must be a duration such as 3s, 500ms or 1min "
                          f"(0 for none), got {value!r}")
    return float(match[1]) * DURATION_UNITS[match[2].lower()]


def positive_int(label: str, value: str) -> int:
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(f"{label} must be a positive integer, got {value!r}")
    return int(value)


def patterns(label: str, value: str) -> tuple[str, ...]:
    """A comma-separated list (globs, folders); ``none`` means an empty one."""
    if value.lower() == "none":
        return ()
    return tuple(p.strip() for p in value.split(",") if p.strip())


def exclusions(label: str, value: str) -> tuple[str, ...]:
    """UPLOAD_EXCLUDE: the globs the upload leaves out, each checked: the defaults
    (``DEFAULT_EXCLUSIONS``) and the given ones after them; ``none`` means none at all."""
    if value.lower() == "none":
        return ()
    given = [item.strip() for item in value.split(",")] if value else []
    named = "UPLOAD_EXCLUDE (-x exclude)"  # both names, however it was given
    if any(item.lower() == "none" for item in given):  # alone it returned above
        raise ConfigError(f"{named} {value!r} holds none among other patterns: none stands "
                          "alone (it leaves out nothing, not even the defaults); give either "
                          "none or the patterns without it")
    if "" in given:
        raise ConfigError(f"{named} {value!r} holds an empty pattern (two "
                          "commas, or one at an end): remove it")
    for item in given:
        if problem := glob_problem(item):
            raise ConfigError(f"{named} pattern {item!r} {problem}")
    return tuple(dict.fromkeys([*DEFAULT_EXCLUSIONS, *given]))


def glob_problem(pattern: str) -> str | None:
    """Why an UPLOAD_EXCLUDE glob is malformed or can match nothing, or None. A relative
    path below UPLOADS_DIR never starts with ``/``, holds no ``..`` segment and no
    backslash (``/`` separates folders), and ``[`` opens a character class that must close."""
    if pattern.strip("/") == "":
        return "names no file or folder"
    if "\\" in pattern:
        return "holds a backslash: folders are separated by / and no file name holds \\"
    if ".." in pattern.strip("/").split("/"):
        return "holds a .. segment: the upload never reaches outside UPLOADS_DIR"
    if "." in pattern.split("/"):  # matched against paths like audio/x.wav, never ./audio/x.wav
        meant = "/".join(part for part in pattern.split("/") if part != ".")
        if meant.strip("/") == "":
            return "names no file or folder"
        return f"holds a . segment, which no path below UPLOADS_DIR has: write {meant!r}"
    if _unclosed_class(pattern):
        return "opens a [character class] it never closes"
    return None


def _unclosed_class(pattern: str) -> bool:
    """A ``[`` with no ``]`` after it (fnmatch would take it for a literal ``[``, which
    was never what was meant); ``[]...]`` and ``[!]...]`` hold a literal ``]``."""
    at = 0
    while (start := pattern.find("[", at)) >= 0:
        end = start + 1 + (pattern[start + 1:start + 2] == "!")
        end += pattern[end:end + 1] == "]"
        close = pattern.find("]", end)
        if close < 0:
            return True
        at = close + 1
    return False


def max_delete(label: str, value: str) -> tuple[int, str]:
    """A count of objects (``50``) or a share of the recorded ones (``10%``), as
    ``(number, "")`` or ``(percent, "%")``."""
    number, percent = (value[:-1], "%") if value.endswith("%") else (value, "")
    if not number.isdigit() or (percent and int(number) > 100):
        raise ConfigError(f"{label} must be a count of objects like 50 or a share of the "
                          f"recorded ones like 10% (0% to 100%), got {value!r}")
    return int(number), percent


def provider(label: str, value: str) -> str:
    lowered = value.lower()
    if lowered not in ("local", "tos"):
        raise ConfigError(f"{label} must be 'local' or 'tos', got {value!r}")
    return lowered


def bucket(label: str, value: str) -> str:
    if value and not BUCKET_NAME.fullmatch(value):
        raise ConfigError(
            f"{label} must be 3-63 lowercase letters, digits or '-' (not at either "
            f"end), got {value!r}"
        )
    return value


def endpoint(label: str, value: str) -> str:
    """A bare host (as the TOS console shows it) means https://host."""
    if not value:
        return ""
    url = value if "://" in value else f"https://{value}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise ConfigError(
            f"{label} must look like https://tos-cn-beijing.volces.com, got {value!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def key_prefix(label: str, value: str) -> str:
    """'meetings', '/meetings/' and 'meetings/' all mean keys under 'meetings/'."""
    folder = value.strip("/")
    return f"{folder}/" if folder else ""


def public_base_url(label: str, value: str) -> str:
    """'' means derived from the provider (see StorageSettings)."""
    if value and urlsplit(value).scheme not in ("http", "https", "file"):
        raise ConfigError(
            f"{label} must start with http://, https:// or file://, got {value!r}"
        )
    return value.rstrip("/")


def proxy(label: str, value: str) -> tuple[str, int] | None:
    if not value:
        return None
    # The value is not echoed: a proxy URL may carry a password.
    error = ConfigError(f"{label} must look like http://host:port")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise error from None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.username \
            or parts.path.strip("/"):
        raise error
    return parts.hostname, port


def part_size(label: str, value: str) -> int:
    size = positive_int(label, value)
    if size < MIN_PART_SIZE:
        raise ConfigError(f"{label} must be at least {MIN_PART_SIZE} bytes "
                          f"(the TOS minimum), got {value!r}")
    return size


RATE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
              "kib": 1024, "mib": 1024**2, "gib": 1024**3}
RATE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*?)(?:/s)?", re.IGNORECASE)


def rate(label: str, value: str) -> int | None:
    """Bytes per second: ``20MB`` (powers of 1000), ``16MiB`` (of 1024), a bare number of
    bytes; unset is unlimited."""
    if not value:
        return None
    match = RATE.fullmatch(value.strip())
    unit = match and RATE_UNITS.get(match[2].lower())
    if not match or unit is None or float(match[1]) * unit < 1:
        raise ConfigError(f"{label} must be a rate in bytes per second such as 20MB, 512KB "
                          f"or 16MiB, got {value!r}")
    return int(float(match[1]) * unit)


def upper_choice(*choices: str) -> Parser:
    """One of a fixed set of upper-case names (any case written); unset stays None."""
    def parse(label: str, value: str) -> str | None:
        if not value:
            return None
        if value.upper() not in choices:
            raise ConfigError(f"{label} must be one of {', '.join(choices)} or unset, "
                              f"got {value!r}")
        return value.upper()
    return parse


def acl(label: str, value: str) -> str | None:
    """A canned ACL the objects are written with; unset = the bucket's default."""
    if not value:
        return None
    if value.lower() not in UPLOAD_ACLS:
        raise ConfigError(f"{label} must be one of {', '.join(UPLOAD_ACLS)} or unset (the "
                          f"bucket's default), got {value!r}")
    return value.lower()


def urls_to_fetch(label: str, value: str) -> int | None:
    """``all`` (None: every URL), ``none`` (0) or ``sample:N`` (N chosen at random)."""
    lowered = value.lower()
    if lowered in ("all", "none"):
        return None if lowered == "all" else 0
    name, _, number = lowered.partition(":")
    if name != "sample" or not number.isdigit() or int(number) < 1:
        raise ConfigError(f"{label} must be all, none or sample:N (N at least 1), "
                          f"got {value!r}")
    return int(number)


def optional(parse: Parser) -> Parser:
    """Unset ("") stays None; anything written is parsed."""
    return lambda label, value: parse(label, value) if value else None


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
    "a `STORAGE_*` setting given explicitly wins", storage=True)
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
WORK_DIR = Setting(
    "WORK_DIR", path, "./work",
    "the source backup (`backups/`, which `make verify` compares with: keep it), rejects and "
    "refusal files (`rejects/`), the presync record (`presync/`), the storage probe; never "
    "inside `UPLOADS_DIR`", x="work_dir")
VERIFY_URLS = Setting(
    "VERIFY_URLS", urls_to_fetch, "all",
    "which URLs `make verify` fetches as the app does (no credentials, no proxy): `all`, "
    "`none`, or `sample:N` (N chosen at random)", x="urls")
REPORTS_DIR = Setting("REPORTS_DIR", path, "./reports", "each run's JSON report and its HTML page")
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

DECLARED: tuple[Setting, ...] = (
    ENV, DATABASE_URL, SOURCE_DATABASE_URL, BAD_ROWS, ORPHANS, ROW_COPY_WORKERS, UPLOADS_DIR,
    UPLOAD_EXCLUDE, UNSAFE_FILES, UPLOADS_PATH_ALIASES, MISSING_FILES, STORAGE_PROVIDER,
    STORAGE_BUCKET, STORAGE_REGION, STORAGE_ENDPOINT, STORAGE_ACCESS_KEY, STORAGE_SECRET_KEY,
    STORAGE_KEY_PREFIX, STORAGE_PUBLIC_BASE_URL, STORAGE_PROXY, STORAGE_LOCAL_ROOT,
    MAX_CONCURRENT, STORAGE_MULTIPART_THRESHOLD, STORAGE_PART_SIZE, STORAGE_RATE_LIMIT,
    STORAGE_ACL, STORAGE_CLASS, STORAGE_SSE, STORAGE_SECURITY_TOKEN, STORAGE_CONFIG, DRY_RUN,
    FORCE, PURGE_OBJECTS, CHECKSUM_EVERY_FILE, PRUNE_OBJECTS, PRUNE_MAX_DELETE, WORK_DIR,
    VERIFY_URLS, REPORTS_DIR, LOCK_TIMEOUT, LOCK_RETRIES, LOCK_RETRY_BACKOFF,
    DROP_APP_DATA, REPORT_LANGUAGE,
)
