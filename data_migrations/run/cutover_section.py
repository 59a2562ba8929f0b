"""alembic.ini's ``[cutover]`` section, read in one place.

``first_data_revision`` to ``last_data_revision`` are the cutover's own revisions: they run
without lock timeout (data_migrations/run/lock_retry.py) and ``make lint`` exempts them.
``released`` says whether production has run them: until then ``make revision`` places a
new revision before them (devtools/revision.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.config import Config

from data_migrations.run.errors import DataMigrationError

SECTION = "cutover"


@dataclass(frozen=True)
class CutoverSection:
    first_data_revision: str
    last_data_revision: str
    released: bool

    @classmethod
    def of(cls, config: Config) -> CutoverSection:
        first, last, released = (
            (config.get_section_option(SECTION, name) or "").strip()
            for name in ("first_data_revision", "last_data_revision", "released"))
        released = released.lower()
        if not first or not last or released not in ("true", "false"):
            raise DataMigrationError(
                f"{config.config_file_name}: [{SECTION}] needs first_data_revision, "
                "last_data_revision and released = true|false")
        return cls(first, last, released == "true")
