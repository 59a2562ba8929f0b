"""The sample dev-data generator: the dev schema, realistic and valid rows, the files."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command

from data_migrations.commands.adopt_dev import alembic_config, schema_signature
from devtools.sample import (
    COLUMNS,
    DEV_SCHEMA,
    UPLOADS_ALIAS,
    generate_dev_database,
    main,
)

ROWS = 5_000  # enough rows that every 3% form shows up in each large table
PATH_COLUMNS = {
    "hotword_sets": "file_path",
    "tasks": "audio_path",
    "transcripts": "raw_result_path",
    "generated_artifacts": "file_path",
}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# The ways a DATETIME is written in the dev file; the first is the app's.
DATETIME_FORMS = {
    "app": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$"),
    "T": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$"),
    "Z": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"),
    "+08:00": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$"),
    "no fraction": re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"),
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    """One generated database with its uploads folder: (database, uploads, counts)."""
    folder = tmp_path_factory.mktemp("sample")
    database, uploads = folder / "meeting_agent.db", folder / "uploads"
    counts = generate_dev_database(database, rows=ROWS, uploads_dir=uploads)
    return database, uploads, counts


@pytest.fixture(scope="module")
def db(sample: tuple[Path, Path, dict[str, int]]) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(sample[0])
    yield connection
    connection.close()


def columns_of_type(db: sqlite3.Connection, wanted: re.Pattern[str]) -> list[tuple[str, str, str]]:
    """(table, column, declared type) of every column whose declared type matches."""
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [
        (table, column, declared)
        for table in tables
        for _, column, declared, *_ in db.execute(f"PRAGMA table_info({table})")
        if wanted.fullmatch(declared)
    ]


def values(db: sqlite3.Connection, table: str, column: str) -> list:
    return [value for (value,) in db.execute(f"SELECT {column} FROM {table}")]


def dump(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return list(connection.iterdump())


def tree(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*") if path.is_file()
    }


def path_form(stored: str | None) -> str:
    if stored is None:
        return "NULL"
    for form, prefix in (("absolute", f"{UPLOADS_ALIAS}/"), ("dot", "./uploads/"),
                         ("windows", "uploads\\"), ("app", "uploads/")):
        if stored.startswith(prefix):
            return form
    return f"unknown: {stored!r}"


def resolve(uploads: Path, stored: str) -> Path:
    """The file a stored path names: every form is relative to the uploads folder."""
    path = stored.replace("\\", "/")
    for prefix in (f"{UPLOADS_ALIAS}/", "./uploads/", "uploads/"):
        if path.startswith(prefix):
            return uploads / path.removeprefix(prefix)
    raise AssertionError(f"not a path under uploads/: {stored!r}")


# --- schema and counts --------------------------------------------------------------------


def test_the_schema_is_exactly_the_dev_schema(sample: tuple, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    with sqlite3.connect(reference) as connection:
        connection.executescript(DEV_SCHEMA.read_text(encoding="utf-8"))
    signatures = []
    for path in (reference, sample[0]):
        engine = sa.create_engine(f"sqlite:///{path}")
        signatures.append(schema_signature(engine))
        engine.dispose()
    assert len(signatures[0]) == 8
    assert signatures[1] == signatures[0]
    master = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    with sqlite3.connect(reference) as expected, sqlite3.connect(sample[0]) as actual:
        assert actual.execute(master).fetchall() == expected.execute(master).fetchall()


def test_the_counts_add_up_and_are_distributed_like_the_app(
    sample: tuple, db: sqlite3.Connection
) -> None:
    counts = sample[2]
    actual = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in counts}
    assert actual == counts
    assert len(counts) == 8
    assert sum(counts.values()) == ROWS
    completed = db.execute("SELECT count(*) FROM tasks WHERE status = 'completed'").fetchone()[0]
    assert counts["users"] == ROWS // 1000
    assert counts["tasks"] == ROWS // 10
    assert counts["transcripts"] == completed
    assert 0.4 * counts["tasks"] < completed < 0.6 * counts["tasks"]
    assert 2 * completed <= counts["speaker_mappings"] <= 4 * completed
    assert completed <= counts["generated_artifacts"] <= 3 * completed
    assert 0.5 * ROWS < counts["audit_logs"] < 0.7 * ROWS


@pytest.mark.parametrize("rows", [300, 1_234])
def test_the_total_is_exactly_rows(tmp_path: Path, rows: int) -> None:
    counts = generate_dev_database(tmp_path / "dev.db", rows=rows)
    assert sum(counts.values()) == rows


def test_the_same_seed_gives_the_same_rows_and_files(tmp_path: Path) -> None:
    made = {}
    for name, seed, uploads in (("a", 3, True), ("b", 3, True), ("c", 3, False), ("d", 4, False)):
        database = tmp_path / f"{name}.db"
        uploads_dir = tmp_path / f"uploads-{name}" if uploads else None
        generate_dev_database(database, rows=400, seed=seed, uploads_dir=uploads_dir)
        made[name] = (dump(database), tree(uploads_dir) if uploads_dir else None)
    assert made["a"] == made["b"]
    assert made["a"][1]  # files were written
    assert made["c"][0] == made["a"][0]  # writing files does not change the rows
    assert made["d"][0] != made["c"][0]


def test_it_refuses_to_overwrite_a_database(tmp_path: Path) -> None:
    database = tmp_path / "meeting_agent.db"
    database.write_text("someone's data")
    with pytest.raises(FileExistsError):
        generate_dev_database(database)
    assert database.read_text() == "someone's data"


# --- the rows are valid for PostgreSQL ----------------------------------------------------


def test_every_foreign_key_has_its_parent(db: sqlite3.Connection) -> None:
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    # The foreign-key check above must have something to check.
    assert db.execute("SELECT count(*) FROM audit_logs WHERE task_id IS NOT NULL").fetchone()[0]


def test_postgres_accepts_every_row_into_the_baseline(
    sample: tuple, db: sqlite3.Connection, pg_url: str
) -> None:
    """COPY in text form, the plainest load there is: PostgreSQL's own input functions
    check every timestamp, JSON document, UUID, boolean, length and foreign key."""
    command.upgrade(alembic_config(pg_url), "0001")
    with psycopg.connect(sa.make_url(pg_url).set(drivername="postgresql").render_as_string(
        hide_password=False
    )) as target:
        for table, columns in COLUMNS.items():  # parents first
            with target.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                    copy.write_row(row)
        loaded = {
            table: target.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in COLUMNS
        }
    assert loaded == sample[2]


def test_segment_speakers_are_the_tasks_speakers(db: sqlite3.Connection) -> None:
    labels: dict[str, set[str]] = {}
    for task_id, label in db.execute("SELECT task_id, speaker_label FROM speaker_mappings"):
        labels.setdefault(task_id, set()).add(label)
    for task_id, segments in db.execute("SELECT task_id, segments FROM transcripts"):
        assert {segment["speaker"] for segment in json.loads(segments)} <= labels[task_id]


def test_every_datetime_parses_and_every_form_appears(db: sqlite3.Connection) -> None:
    datetime_columns = columns_of_type(db, re.compile("DATETIME"))
    assert len(datetime_columns) == 14
    seen = set()
    for table, column, _ in datetime_columns:
        for value in values(db, table, column):
            if value is None:
                continue
            parsed = datetime.fromisoformat(value)
            assert datetime(2022, 1, 1) < parsed.replace(tzinfo=None) < datetime(2026, 1, 1)
            forms = [form for form, pattern in DATETIME_FORMS.items() if pattern.match(value)]
            assert len(forms) == 1, value
            seen.add(forms[0])
    assert seen == set(DATETIME_FORMS)


def test_every_json_document_parses(db: sqlite3.Connection) -> None:
    json_columns = columns_of_type(db, re.compile("JSON"))
    assert {(table, column) for table, column, _ in json_columns} == {
        ("prompt_templates", "variables"), ("hotword_sets", "words"),
        ("transcripts", "segments"), ("audit_logs", "details"),
    }
    escaped = raw = 0
    for table, column, _ in json_columns:
        for value in values(db, table, column):
            if value is not None:
                json.loads(value)
                escaped += "\\u" in value
                raw += not value.isascii()
    assert escaped and raw  # the app's escaped form and hand-written raw UTF-8


def test_segments_are_arrays_of_timed_speaker_turns(db: sqlite3.Connection) -> None:
    sizes = []
    for text, segments, word_count in db.execute(
        "SELECT text, segments, word_count FROM transcripts"
    ):
        turns = json.loads(segments)
        assert isinstance(turns, list) and turns
        for turn in turns:
            assert set(turn) == {"speaker", "start", "end", "text"}
            assert isinstance(turn["start"], float) and isinstance(turn["end"], float)
            assert 0 <= turn["start"] < turn["end"]
        assert text == "\n".join(turn["text"] for turn in turns)
        assert word_count > 0
        sizes.append(len(text.encode()))
    assert 1_500 < sum(sizes) / len(sizes) < 5_000  # a few KB of text each


def test_varchar_lengths_are_respected(db: sqlite3.Connection) -> None:
    varchar_columns = columns_of_type(db, re.compile(r"VARCHAR\(\d+\)"))
    assert len(varchar_columns) == 34
    for table, column, declared in varchar_columns:
        limit = int(declared[len("VARCHAR("):-1])
        longest = db.execute(f"SELECT max(length({column})) FROM {table}").fetchone()[0]
        assert longest is None or longest <= limit, (table, column, longest, limit)


def test_values_are_stored_as_the_app_stores_them(db: sqlite3.Connection) -> None:
    for table, column, _ in columns_of_type(db, re.compile("BOOLEAN")):
        assert set(values(db, table, column)) == {0, 1}, (table, column)
    assert all(UUID.match(task_id) for task_id in values(db, "tasks", "id"))
    for table in ("generated_artifacts", "audit_logs"):
        storage = {kind for (kind,) in db.execute(f"SELECT DISTINCT typeof(cost) FROM {table}")}
        assert storage == {"real", "integer", "null"}, table
    assert db.execute("SELECT count(*) FROM audit_logs WHERE typeof(cost) = 'integer' "
                      "AND cost <> 0").fetchone()[0] == 0
    titles = " ".join(values(db, "tasks", "title"))
    assert re.search("[\u4e00-\u9fff]", titles) and re.search("[\U0001F300-\U0001FAFF]", titles)


def test_every_path_form_appears_in_every_large_table(db: sqlite3.Connection) -> None:
    every_form = {"app", "dot", "windows", "absolute", "NULL"}
    for table, column in PATH_COLUMNS.items():
        forms = {path_form(value) for value in values(db, table, column)}
        if table == "hotword_sets":  # a handful of rows: only the known forms
            assert forms <= every_form
        else:
            assert forms == every_form, table


# --- the files ----------------------------------------------------------------------------


def test_every_stored_path_names_a_file(sample: tuple, db: sqlite3.Connection) -> None:
    uploads = sample[1]
    named = set()
    for table, column in PATH_COLUMNS.items():
        for stored in values(db, table, column):
            if stored is not None:
                path = resolve(uploads, stored)
                assert path.is_file(), stored
                named.add(path.relative_to(uploads).as_posix())
    for stored, size in db.execute("SELECT audio_path, audio_size FROM tasks"):
        assert size == (resolve(uploads, stored).stat().st_size if stored else None)
    # Besides the named files there is only what a cutover must leave behind.
    leftovers = set(tree(uploads)) - named
    assert {path.split("/")[0] for path in leftovers if not path.endswith(".part")} == {"tmp"}
    assert any(path.endswith(".part") and not path.startswith("tmp/") for path in leftovers)


def test_the_files_have_awkward_names_and_varied_sizes(sample: tuple) -> None:
    files = [path for path in sample[1].rglob("*") if path.is_file()]
    names = " ".join(path.name for path in files)
    for awkward in (" ", "#", "%", "+"):
        assert awkward in names
    assert re.search("[\u4e00-\u9fff]", names)
    sizes = [path.stat().st_size for path in files]
    assert min(sizes) < 100 and max(sizes) > 100_000
    assert {path.relative_to(sample[1]).parts[0] for path in files} == {
        "audio", "raw", "exports", "hotwords", "tmp",
    }


# --- the command --------------------------------------------------------------------------


def test_the_command_prints_the_counts_and_keeps_existing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database, uploads = tmp_path / "meeting_agent.db", tmp_path / "uploads"
    args = ["--rows", "300", "--db", str(database), "--uploads", str(uploads)]
    assert main(args) == 0
    printed = dict(line.rsplit(None, 1) for line in capsys.readouterr().out.splitlines())
    assert printed["total"] == "300"
    assert int(printed["tasks"]) == 30
    assert (uploads / "audio").is_dir()

    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
