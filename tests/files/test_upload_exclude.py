"""UPLOAD_EXCLUDE is checked before anything is written: a malformed or meaningless glob,
and a glob that leaves out files the rows reference, are one line each; the defaults
(tmp/, *.part) always apply unless it is `none`, and the plan says so. Real processes and
a real PostgreSQL, as an operator runs the cutover."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.runs import cutover_environment, failed_lines, one_failure, upgrade_head


@pytest.fixture
def env(tmp_path: Path, pg_url: str) -> dict[str, str]:
    """A generated dev file with its uploads, cut over to a local bucket."""
    return {**cutover_environment(tmp_path, pg_url), "VERIFY_URLS": "none"}


def bucket_keys(env: dict[str, str]) -> set[str]:
    root = Path(env["STORAGE_LOCAL_ROOT"])
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("value", "pattern", "problem"), [
    ("[", "pattern '['", "opens a [character class] it never closes"),
    ("audio/[!", "pattern 'audio/[!'", "opens a [character class] it never closes"),
    ("/", "pattern '/'", "names no file or folder"),
    (",", "',' holds an empty pattern", "two commas, or one at an end"),
    ("*.log,,*.bak", "'*.log,,*.bak' holds an empty pattern", "two commas"),
    ("\\", "pattern '\\\\'", "holds a backslash"),
    ("../*", "pattern '../*'", "holds a .. segment"),
    ("./tmp/", "pattern './tmp/'", "holds a . segment, which no path below UPLOADS_DIR has: "
                                    "write 'tmp/'"),
    ("audio/./*.wav", "pattern 'audio/./*.wav'", "write 'audio/*.wav'"),
    ("./", "pattern './'", "names no file or folder"),
    ("none,*.log", "'none,*.log' holds none among other patterns",
     "none stands alone (it leaves out nothing, not even the defaults)"),
    ("*.log, NONE", "'*.log, NONE' holds none among other patterns", "none stands alone"),
])
def test_a_malformed_glob_is_one_line_before_anything_is_written(
    value: str, pattern: str, problem: str, env: dict[str, str], tmp_path: Path,
    pg_engine: sa.Engine
) -> None:
    failure = one_failure(upgrade_head({**env, "UPLOAD_EXCLUDE": value}, tmp_path))
    assert failure.startswith(f"FAILED: UPLOAD_EXCLUDE (-x exclude) {pattern}"), failure
    assert problem in failure
    assert sa.inspect(pg_engine).get_table_names() == []
    assert bucket_keys(env) == set()


@pytest.mark.parametrize(("value", "example"), [
    ("*", "e.g. audio/"),
    ("**", "e.g. audio/"),
    ("raw/", "e.g. raw/"),
    ("*.mp3,hotwords/", "e.g. audio/"),
])
def test_a_glob_leaving_out_files_rows_reference_is_refused_before_anything_is_written(
    value: str, example: str, env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine
) -> None:
    result = upgrade_head({**env, "UPLOAD_EXCLUDE": value}, tmp_path)
    assert result.returncode != 0, result.stdout + result.stderr
    failures = failed_lines(result)
    patterns = value.split(",")
    assert len(failures) == len(patterns), failures
    for failure, pattern in zip(failures, patterns, strict=True):
        assert failure.startswith(f"FAILED: UPLOAD_EXCLUDE pattern {pattern!r} leaves out "), \
            failure
        assert "files that rows reference, e.g. " in failure
        assert "Take the pattern out of UPLOAD_EXCLUDE" in failure
    assert example in failures[0]
    assert sa.inspect(pg_engine).get_table_names() == []
    assert bucket_keys(env) == set()


def test_the_defaults_always_apply_and_the_plan_says_so(
    env: dict[str, str], tmp_path: Path, pg_engine: sa.Engine
) -> None:
    uploads = Path(env["UPLOADS_DIR"])
    for relative in ("tmp/upload_123.part", "audio/half.mp3.part", "notes.log"):
        (uploads / relative).parent.mkdir(parents=True, exist_ok=True)
        (uploads / relative).write_bytes(b"left out")
    mine = {**env, "UPLOAD_EXCLUDE": "*.log"}

    plan = upgrade_head({**mine, "DRY_RUN": "true"}, tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "Excluded: tmp/, *.part, *.log (UPLOAD_EXCLUDE adds its globs to the defaults " \
           "tmp/, *.part; `none` leaves nothing out)." in plan.stderr
    nothing = upgrade_head({**env, "UPLOAD_EXCLUDE": "none", "DRY_RUN": "true"}, tmp_path)
    assert "Excluded: nothing (UPLOAD_EXCLUDE=none replaces the defaults tmp/, *.part)." \
           in nothing.stderr

    result = upgrade_head(mine, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    keys = bucket_keys(env)
    assert keys and not {"tmp/upload_123.part", "audio/half.mp3.part", "notes.log"} & keys
    assert not any(key.startswith("tmp/") for key in keys)
