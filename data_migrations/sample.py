"""Sample dev data: a SQLite file shaped like the app's ``meeting_agent.db``."""

from __future__ import annotations

from importlib.resources import files

# The dev database's schema exactly as the app's create_all() made it on SQLite: the
# source the cutover reads. The one copy of that text in the repository.
DEV_SCHEMA = files("data_migrations") / "dev_schema.sql"
