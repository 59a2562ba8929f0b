"""The parsers of the settings' text: each turns what an operator wrote into the value the
steps use, or raises ``ConfigError`` naming the setting by ``label`` (its ``-x`` name for a
``-x`` value, else its variable). settings/declared.py pairs each setting with one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tos.enum import StorageClassType

from settings.errors import ConfigError
from storage.tos import MIN_PART_SIZE

Parser = Callable[[str, str], Any]  # (label, text) -> value


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
