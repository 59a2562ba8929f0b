"""The bucket settings read from the Meeting Agent's own YAML configuration
(``STORAGE_CONFIG=config/production.yaml``), so that the operator does not copy them by
hand.

Only the ``storage:`` block is read. Its values may name environment variables as
``${NAME}`` (the app keeps its keys out of the file that way); each is replaced from the
environment, and a missing one stops the run naming it and the line. What the block gives
is text, parsed by the same declarations as the ``STORAGE_*`` settings it stands for; an
explicit ``STORAGE_*`` setting that says otherwise is refused (``disagreement``) unless
STORAGE_CONFIG_OVERRIDES names it, and then wins (settings.Settings.storage).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from settings.errors import ConfigError

# The storage block's keys, as the app names them, and the settings they stand for.
KEYS = {
    "provider": "STORAGE_PROVIDER",
    "bucket": "STORAGE_BUCKET",
    "region": "STORAGE_REGION",
    "endpoint": "STORAGE_ENDPOINT",
    "access_key": "STORAGE_ACCESS_KEY",
    "secret_key": "STORAGE_SECRET_KEY",
    "security_token": "STORAGE_SECURITY_TOKEN",
    "public_base_url": "STORAGE_PUBLIC_BASE_URL",
}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class FileValue:
    """One value of the storage block: its text (variables replaced) and where it is."""

    text: str
    where: str  # "STORAGE_CONFIG config/production.yaml line 7 (storage.bucket)"


def read_storage_block(path: Path, environ: Mapping[str, str]) -> dict[str, FileValue]:
    """The settings the ``storage:`` block of ``path`` gives, by setting name."""
    named = f"STORAGE_CONFIG {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{named} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{named} cannot be read ({error})") from None
    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        # Only the problem and its line: the YAML library's snippet of the file could
        # show a key written in it.
        line = f" line {error.problem_mark.line + 1}" if error.problem_mark else ""
        raise ConfigError(f"{named}{line} is not valid YAML: {error.problem}") from None
    block = _storage_block(document, named)
    values = {}
    for key_node, value_node in block.value:
        setting = KEYS.get(key_node.value)
        if setting is None:  # the app's own storage options: not the cutover's business
            continue
        where = f"{named} line {key_node.start_mark.line + 1} (storage.{key_node.value})"
        if not isinstance(value_node, yaml.ScalarNode):
            raise ConfigError(f"{where} must be a single value")
        values[setting] = FileValue(_expand(value_node.value, where, environ), where)
    return values


def _storage_block(document: yaml.Node | None, named: str) -> yaml.MappingNode:
    if isinstance(document, yaml.MappingNode):
        for key_node, value_node in document.value:
            if key_node.value != "storage":
                continue
            if not isinstance(value_node, yaml.MappingNode):
                raise ConfigError(f"{named} line {key_node.start_mark.line + 1}: storage: "
                                  "must be a block of settings (bucket, region, ...)")
            return value_node
    raise ConfigError(f"{named} has no storage: block at its top level")


def _expand(text: str, where: str, environ: Mapping[str, str]) -> str:
    """``${NAME}`` replaced by the environment variable; a missing one is named."""
    def variable(match: re.Match[str]) -> str:
        name = match[1]
        if name not in environ:
            raise ConfigError(f"{where} uses ${{{name}}}, which is not set in the environment")
        return environ[name]
    return VARIABLE.sub(variable, text)


def disagreement(name: str, origin: str, given: FileValue,
                 values: tuple[object, object] | None) -> str:
    """One line for a setting whose explicit value is not the app's: both values and where
    each came from (``values`` is None for a secret: neither is shown)."""
    shown = (f"{name} is {_shown(values[0])} in {origin} but {_shown(values[1])} in "
             f"{given.where}" if values is not None
             else f"{name} in {origin} is not the one in {given.where} (not shown: a secret)")
    return (f"{shown}; nothing was written. Remove {name} from {origin} to use the app's "
            f"value, or, if {origin}'s is meant, set STORAGE_CONFIG_OVERRIDES={name}")


def _shown(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def overridable(label: str, value: str) -> frozenset[str]:
    """STORAGE_CONFIG_OVERRIDES: comma-separated settings the storage block gives."""
    names = frozenset(name.strip().upper() for name in value.split(",") if name.strip())
    unknown = sorted(names - set(KEYS.values()))
    if unknown:
        raise ConfigError(f"{label} names {', '.join(unknown)}, which the app's configuration "
                          f"does not give (it gives {', '.join(sorted(KEYS.values()))})")
    return names
