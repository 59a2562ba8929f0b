"""devtools/revision.py (``make revision``, ``make upgrade-dev``, ``make merge-heads``): where
a new schema revision goes, before or after the data revisions, under which id, and a chain
forked by two branches refused in one line; on a copy of alembic/ and alembic.ini."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from devtools import revision
from devtools.revision_chain import next_id
from tests.runs import one_failure, repository_copy

DATA_REVISIONS = ["0002", "0003", "0004"]
TIMESTAMP_ID = re.compile(r"^\d{8}_\d{6}$")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    copy = repository_copy(tmp_path / "repo", ["alembic", "alembic.ini", "Makefile", "devtools"])
    return Config(str(copy / "alembic.ini"))


def released(config: Config) -> Config:
    ini = Path(str(config.config_file_name))
    text = ini.read_text(encoding="utf-8")
    assert text.count("released = false") == 1
    ini.write_text(text.replace("released = false", "released = true"), encoding="utf-8")
    return Config(str(ini))


def chain(config: Config) -> list[str]:
    """The revisions in the order they run, base first."""
    script = ScriptDirectory.from_config(config)
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def first_data_revision_file(config: Config) -> Path:
    path = ScriptDirectory.from_config(config).get_revision("0002").path
    assert path is not None
    return Path(path)


def test_before_release_a_new_revision_goes_before_the_data_revisions(config: Config) -> None:
    assert revision.dev_head(config) == "0001"

    first = revision.new_revision(config, "add task priority")
    second = revision.new_revision(config, "rename raw result path")

    first_id, second_id = first.name[:15], second.name[:15]
    assert (first.name, second.name) == (f"{first_id}_add_task_priority.py",
                                         f"{second_id}_rename_raw_result_path.py")
    assert chain(config) == ["0001", first_id, second_id, *DATA_REVISIONS]
    assert ScriptDirectory.from_config(config).get_heads() == ["0004"]
    assert revision.dev_head(config) == second_id
    data_step = first_data_revision_file(config).read_text(encoding="utf-8")
    assert f'down_revision: str | Sequence[str] | None = "{second_id}"' in data_step
    assert f"\nRevises: {second_id}\n" in data_step


def test_ids_are_the_utc_second_written_and_sort_in_the_order_written(config: Config) -> None:
    """Two revisions in one second (a script, a test) take the next free second; the files
    list in the order they were written, after 0001-0004."""
    paths = [revision.new_revision(config, f"change {n}") for n in range(3)]

    ids = [p.name[:15] for p in paths]
    assert all(TIMESTAMP_ID.match(i) for i in ids), ids
    assert len(set(ids)) == 3
    names = sorted(p.name for p in paths[0].parent.glob("*.py"))
    assert names[4:] == [p.name for p in paths]
    noon = datetime(2026, 12, 5, 12, 0, 0, 999, tzinfo=UTC)
    assert next_id(set(ids), noon) == "20261205_120000"
    assert next_id({"20261205_120000", "20261205_120001"}, noon) == "20261205_120002"


def test_after_release_a_new_revision_goes_after_the_last_one(config: Config) -> None:
    config = released(config)
    before = first_data_revision_file(config).read_bytes()

    created = revision.new_revision(config, "add task priority")

    assert chain(config) == ["0001", *DATA_REVISIONS, created.name[:15]]
    assert first_data_revision_file(config).read_bytes() == before
    assert revision.dev_head(config) == "head"


def test_a_data_revision_it_cannot_rewire_leaves_the_chain_as_it_was(config: Config) -> None:
    path = first_data_revision_file(config)
    path.write_text(path.read_text(encoding="utf-8").replace(
        'down_revision: str | Sequence[str] | None = "0001"',
        'down_revision = "0001"'), encoding="utf-8")
    versions = sorted(p.name for p in path.parent.glob("*.py"))

    with pytest.raises(revision.RevisionError, match=r"0002_copy_sqlite_rows\.py: expected one"):
        revision.new_revision(config, "add task priority")

    assert sorted(p.name for p in path.parent.glob("*.py")) == versions


def test_a_chain_section_without_its_settings_is_one_failed_line(
    config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    ini = Path(str(config.config_file_name))
    ini.write_text(ini.read_text(encoding="utf-8").replace("released = false", "released = soon"),
                   encoding="utf-8")

    assert revision.main(["--config", str(ini), "dev-head"]) == 1

    assert capsys.readouterr().err.splitlines() == [
        f"FAILED: {ini}: [cutover] needs first_data_revision and released = true|false"]


def two_branches(config: Config) -> tuple[Path, Path]:
    """Two revisions after 0004, each written on its own branch (the other not yet merged
    in) five minutes apart, then both in one tree, as git merges them."""
    first = revision.new_revision(config, "add task priority", "20261205_100000")
    kept = first.read_bytes()
    first.unlink()  # the other branch does not have it
    second = revision.new_revision(config, "add audit reason", "20261205_100500")
    first.write_bytes(kept)
    return first, second


@pytest.mark.slow  # make and a fresh interpreter
def test_make_revision_on_a_chain_two_branches_forked_is_one_failed_line(
    config: Config,
) -> None:
    config = released(config)
    first, second = two_branches(config)
    root = Path(str(config.config_file_name)).parent
    versions = sorted(root.joinpath("alembic", "versions").iterdir())

    result = subprocess.run(["make", "-s", "-o", "install", "revision", "MSG=add x",
                             f"BIN={Path(sys.executable).parent}"],
                            cwd=root, capture_output=True, text=True, timeout=120)

    failure = one_failure(result)
    assert failure.startswith(
        f"FAILED: the chain has 2 heads, alembic/versions/{first.name} ({first.name[:15]}) "
        f"and alembic/versions/{second.name} ({second.name[:15]})"), failure
    assert (f"pointing alembic/versions/{second.name}'s down_revision (and its Revises: "
            f"line) at {first.name[:15]}") in failure
    assert "make merge-heads" in failure
    assert sorted(root.joinpath("alembic", "versions").iterdir()) == versions


def test_merge_heads_joins_the_branches_and_make_revision_goes_after_the_merge(
    config: Config,
) -> None:
    config = released(config)
    first, second = two_branches(config)

    merged = revision.merge_heads(config, "join priority and audit reason")
    after = revision.new_revision(config, "add x")

    script = ScriptDirectory.from_config(config)
    merge = script.get_revision(merged.name[:15])
    assert merge is not None
    assert set(merge.down_revision or ()) == {first.name[:15], second.name[:15]}
    assert script.get_heads() == [after.name[:15]]


def test_before_the_release_a_fork_is_linearised_not_merged(
    config: Config, capsys: pytest.CaptureFixture[str],
) -> None:
    """Two branches each put a revision before the data revisions; git asks which one 0002
    revises, and the other one is left a head beside 0004."""
    first = revision.new_revision(config, "add task priority")
    second = revision.new_revision(config, "add audit reason")
    second.write_text(second.read_text(encoding="utf-8").replace(
        f'= "{first.name[:15]}"', '= "0001"'), encoding="utf-8")
    path = first_data_revision_file(config)
    path.write_text(path.read_text(encoding="utf-8").replace(
        f'= "{second.name[:15]}"', f'= "{first.name[:15]}"'), encoding="utf-8")
    ini = str(config.config_file_name)

    assert revision.main(["--config", ini, "new", "add x"]) == 1
    assert revision.main(["--config", ini, "merge", "join"]) == 1

    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "FAILED: the chain has 2 heads, alembic/versions/0004_rewrite_file_paths.py (0004) and "
        f"alembic/versions/{second.name} ({second.name[:15]}) (revisions written on two "
        "branches before the release): the data revisions stay last until released, so "
        "linearise it: point "
        f"alembic/versions/{second.name}'s down_revision (and its Revises: line) at "
        f"{first.name[:15]} and alembic/versions/0002_copy_sqlite_rows.py's at "
        f"{second.name[:15]}",
        "FAILED: before the release the data revisions stay last: linearise the chain "
        "instead of merging it (make lint says how)"]
