"""devtools/revision.py (``make revision``, ``make upgrade-dev``): where a new schema revision
goes, before or after the data revisions, on a copy of alembic/ and alembic.ini."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from devtools import revision
from tests.runs import repository_copy

DATA_REVISIONS = ["0002", "0003", "0004"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    copy = repository_copy(tmp_path / "repo", ["alembic", "alembic.ini"])
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

    assert (first.name, second.name) == ("0005_add_task_priority.py",
                                         "0006_rename_raw_result_path.py")
    assert chain(config) == ["0001", "0005", "0006", *DATA_REVISIONS]
    assert ScriptDirectory.from_config(config).get_heads() == ["0004"]
    assert revision.dev_head(config) == "0006"
    data_step = first_data_revision_file(config).read_text(encoding="utf-8")
    assert 'down_revision: str | Sequence[str] | None = "0006"' in data_step
    assert "\nRevises: 0006\n" in data_step


def test_after_release_a_new_revision_goes_after_the_last_one(config: Config) -> None:
    config = released(config)
    before = first_data_revision_file(config).read_bytes()

    revision.new_revision(config, "add task priority")

    assert chain(config) == ["0001", *DATA_REVISIONS, "0005"]
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
