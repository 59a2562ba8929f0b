"""The cutover's configuration: every setting declared once (settings/declared.py), read
once, handed to the steps.

``ENV=<name>`` selects the file ``.env.<name>``; with no ``ENV`` an optional ``.env`` is
read. Variables already set in the process environment win over the file, and a setting
given per run as ``alembic -x name=value`` wins over both. ``read()`` does this once and
returns a ``Settings``: alembic/env.py puts it in ``config.attributes["settings"]`` and the
revisions take it with ``settings.of_run()``; ``make verify`` reads its own.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import load_dotenv
from sqlalchemy.engine import URL

from settings import app_config, declared
from settings.declared import DECLARED, Setting
from settings.errors import ConfigError
from settings.steps import CopyOptions, PathOptions, UploadOptions
from settings.storage import StorageSettings
from settings.urls import mask_url

__all__ = [
    "DECLARED",
    "ConfigError",
    "Setting",
    "Settings",
    "load_environment",
    "mask_url",
    "of_run",
    "read",
    "x_arguments",
]

# Where alembic/env.py leaves the settings of the run for the revisions.
ATTRIBUTE = "settings"


def load_environment(env_name: str | None = None, directory: Path | None = None) -> Path | None:
    """Read ``.env.<env_name>`` (or ``.env``) into ``os.environ``; return the file read."""
    directory = directory or Path.cwd()
    if env_name:
        env_file = directory / f".env.{env_name}"
        if not env_file.is_file():
            raise ConfigError(f"ENV={env_name} but {env_file} does not exist")
    else:
        env_file = directory / ".env"
        if not env_file.is_file():
            return None
    load_dotenv(env_file, override=False)
    return env_file


@dataclass(frozen=True)
class Settings:
    """Every declared setting as the run has it: ``texts`` maps each name to the text that
    won (``-x``, the environment, the .env file, the default); ``settings[SETTING]`` is its
    parsed value. ``explicit`` names the settings given by ``-x``, the environment or the
    .env file: those win over the app's configuration file (STORAGE_CONFIG)."""

    texts: Mapping[str, str]
    explicit: frozenset[str] = field(default=frozenset())
    # The settings given by -x: a bad value of one is named by its -x name, any other by
    # its variable's name, as the operator wrote it.
    by_x: frozenset[str] = field(default=frozenset())
    # Where each explicit setting came from, for a line that names it: "-x bucket",
    # ".env.prod", "the environment" (the default for a name not in it).
    origins: Mapping[str, str] = field(default_factory=dict)
    # Each value parsed once, on first use: read() parses all but the storage ones.
    _parsed: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, setting: Setting) -> Any:
        if setting.name not in self._parsed:
            label = setting.label if setting.name in self.by_x else setting.name
            self._parsed[setting.name] = setting.parse(label, self.texts[setting.name])
        return self._parsed[setting.name]

    def __repr__(self) -> str:
        return f"Settings({self.shown()})"

    def shown(self) -> dict[str, str]:
        """Every setting's text as it may be printed: a secret is ``***``, a database URL
        keeps all but its password."""
        return {s.name: _shown(s, self.texts[s.name]) for s in DECLARED}

    def database_url(self) -> URL:
        """The target database: ``DATABASE_URL``."""
        url = self[declared.DATABASE_URL]
        if url is None:
            raise ConfigError("DATABASE_URL is not set (put it in the .env file or the "
                              "environment)")
        return url

    def source_database_path(self) -> Path | None:
        """The dev SQLite file that ``SOURCE_DATABASE_URL`` names, or None when it is unset."""
        url = self[declared.SOURCE_DATABASE_URL]
        if url is None:
            return None
        path = Path(url.database)
        if not path.is_file():
            raise ConfigError(f"SOURCE_DATABASE_URL names {path}, which does not exist")
        return path

    def copy_options(self) -> CopyOptions:
        return CopyOptions(
            bad_rows=self[declared.BAD_ROWS], orphans=self[declared.ORPHANS],
            dry_run=self[declared.DRY_RUN], force=self[declared.FORCE],
            work_dir=self[declared.WORK_DIR], workers=self[declared.ROW_COPY_WORKERS])

    def upload_options(self) -> UploadOptions:
        return UploadOptions(
            uploads_dir=self[declared.UPLOADS_DIR], exclude=self[declared.UPLOAD_EXCLUDE],
            unsafe_files=self[declared.UNSAFE_FILES], dry_run=self[declared.DRY_RUN],
            purge_objects=self[declared.PURGE_OBJECTS], work_dir=self[declared.WORK_DIR],
            checksum_every_file=self[declared.CHECKSUM_EVERY_FILE],
            prune_objects=self[declared.PRUNE_OBJECTS],
            prune_max_delete=self[declared.PRUNE_MAX_DELETE],
            uploads_dir_changed=self[declared.UPLOADS_DIR_CHANGED])

    def path_options(self) -> PathOptions:
        return PathOptions(
            missing_files=self[declared.MISSING_FILES],
            aliases=self[declared.UPLOADS_PATH_ALIASES],
            uploads_dir=self[declared.UPLOADS_DIR], dry_run=self[declared.DRY_RUN])

    def storage(self) -> StorageSettings:
        """The storage settings; the TOS ones are required only here, when a step needs
        storage, so a schema-only run needs none of them."""
        file_values = self.storage_config_values()
        values = {}
        for setting in DECLARED:
            if not setting.storage:
                continue
            given = file_values.get(setting.name)
            if given is None:
                values[setting.name] = self[setting]
                continue
            try:
                from_file = setting.parse(setting.name, given.text)
            except ConfigError as error:
                raise ConfigError(f"{given.where}: {error}") from None
            values[setting.name] = self._explicit_over_file(setting, from_file, given)
        return StorageSettings.from_values(values)

    def origin(self, name: str) -> str:
        return self.origins.get(name, "the environment")

    def _explicit_over_file(self, setting: Setting, from_file: Any,
                            given: app_config.FileValue) -> Any:
        """The file's value, unless the setting is given explicitly: then the explicit one,
        which must agree with the file's unless STORAGE_CONFIG_OVERRIDES names it (an
        .env file copied from .env.example would otherwise send the files to its bucket,
        not the app's)."""
        if setting.name not in self.explicit:
            return from_file
        explicit = self[setting]
        if explicit != from_file and setting.name not in self[declared.STORAGE_CONFIG_OVERRIDES]:
            raise ConfigError(app_config.disagreement(
                setting.name, self.origin(setting.name), given,
                None if setting.secret else (explicit, from_file)))
        return explicit

    def storage_config_values(self) -> dict[str, app_config.FileValue]:
        """What the app's configuration file (STORAGE_CONFIG) gives, when one is named."""
        config_path = self[declared.STORAGE_CONFIG]
        return {} if config_path is None else app_config.read_storage_block(config_path,
                                                                             os.environ)


def _raw(setting: Setting, x_args: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """``-x name=...``, else the variable (process environment or .env file), else the
    default."""
    if setting.x is not None and setting.x in x_args:
        return x_args[setting.x].strip()
    return environ.get(setting.name, "").strip() or setting.default


def _is_given(setting: Setting, x_args: Mapping[str, str], environ: Mapping[str, str]) -> bool:
    return (setting.x is not None and setting.x in x_args) or bool(
        environ.get(setting.name, "").strip())


def read(x_args: Mapping[str, str] | None = None, *, load_env_file: bool = True,
         environ: Mapping[str, str] | None = None) -> Settings:
    """Load ``.env.<ENV>`` (unless told not to), then take every declared setting once; a
    malformed value stops here, except a storage one (parsed when a step needs storage)."""
    before = set(os.environ)
    env_file = load_environment(os.environ.get("ENV") or None) if load_env_file else None
    source = os.environ if environ is None else environ
    given = x_args or {}
    read = Settings({s.name: _raw(s, given, source) for s in DECLARED},
                    frozenset(s.name for s in DECLARED if _is_given(s, given, source)),
                    frozenset(s.name for s in DECLARED if s.x is not None and s.x in given),
                    _origins(given, env_file, before))
    for setting in DECLARED:
        if not setting.storage:  # parsed now, so that a bad value stops the run at its start
            read[setting]
    return read


def _origins(x_args: Mapping[str, str], env_file: Path | None, before: set[str]
             ) -> dict[str, str]:
    """Where each setting given by ``-x`` or the .env file came from (the others, if
    given, came from the environment)."""
    origins = {s.name: env_file.name for s in DECLARED
               if env_file is not None and s.name not in before}
    origins.update({s.name: f"-x {s.x}" for s in DECLARED if s.x is not None and s.x in x_args})
    return origins


def of_run() -> Settings:
    """The settings of the running Alembic command, as alembic/env.py read them."""
    from alembic import context

    return context.config.attributes[ATTRIBUTE]


def x_arguments(argv: list[str] | None, prog: str) -> dict[str, str]:
    """``-x name=value`` options, as alembic takes them (``-x urls=sample:100``), for the
    commands that run outside alembic."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("-x", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for this run, e.g. -x dry_run=true")
    pairs = [text.partition("=") for text in parser.parse_args(argv).x]
    return {name.strip(): value for name, _, value in pairs}


def _shown(setting: Setting, text: str) -> str:
    if not setting.secret or not text:
        return text
    return mask_url(text) if "://" in text else "***"
