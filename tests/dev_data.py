"""Small hand-made dev databases for the tests: the app's schema, rows as SQLite holds them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from devtools.sample import DEV_SCHEMA

NOW = "2025-03-04 05:06:07.123456"
TASK_1 = "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"
TASK_2 = "0a0b0c0d-1e1f-4a2b-9c3d-4e5f6a7b8c9d"

# Every NOT NULL column, so a test names only what it is about.
REQUIRED: dict[str, dict[str, Any]] = {
    "users": {"username": None, "tenant_id": "t1", "role": "member", "is_active": 1,
              "created_at": NOW},
    "prompt_templates": {"name": "minutes", "artifact_type": "minutes", "content": "Summarise",
                         "is_default": 0, "version": 1, "created_at": NOW},
    "hotword_sets": {"name": "words", "words": '["ASR"]', "asr_provider": "volc",
                     "created_at": NOW},
    "tasks": {"user_id": 1, "title": "Weekly sync", "status": "done", "created_at": NOW},
    "transcripts": {"task_id": TASK_1, "asr_provider": "volc", "created_at": NOW},
    "speaker_mappings": {"task_id": TASK_1, "speaker_label": None, "created_at": NOW},
    "generated_artifacts": {"task_id": TASK_1, "artifact_type": "minutes", "version": 1,
                            "created_at": NOW},
    "audit_logs": {"action": "upload", "currency": "CNY", "created_at": NOW},
}


class DevDatabase:
    """A dev SQLite file with the app's schema; ``add`` inserts one row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        with sqlite3.connect(path) as conn:
            conn.executescript(DEV_SCHEMA.read_text())
        self._serial = 0

    def add(self, table: str, **values: Any) -> None:
        self._serial += 1
        row = {**REQUIRED[table], **values}
        for column in ("username", "speaker_label"):
            if column in row and row[column] is None:
                row[column] = f"{column}-{self._serial}"
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with sqlite3.connect(self.path) as conn:
            conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
        conn.close()

    def add_minimal_tree(self) -> None:
        """One row in every table, all references intact."""
        self.add("users", id=1)
        self.add("prompt_templates", id=1, owner_id=1)
        self.add("hotword_sets", id=1, owner_id=1)
        self.add("tasks", id=TASK_1, user_id=1, hotword_set_id=1)
        self.add("transcripts", id=1, task_id=TASK_1)
        self.add("speaker_mappings", id=1, task_id=TASK_1, user_id=1)
        self.add("generated_artifacts", id=1, task_id=TASK_1, prompt_template_id=1)
        self.add("audit_logs", id=1, user_id=1, task_id=TASK_1)
