"""``make lint``'s revision check (devtools/lint_revisions.py): squawk on the SQL of every
revision after the cutover's own. Each unsafe revision fails it with a FAILED line naming the
rule and the revision file; its safe version passes, and so does a rule waived with a reason.
Every case checks a copy of the repository, released, with one revision after 0004 written
into it. One case runs ``make lint`` end to end; the others run the check's driver itself
(``main(["--config", <the copy's alembic.ini>])``, what ``make lint`` runs after ruff), each
``make lint`` costing a ruff run and a Python start on top."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config

from devtools import lint_revisions, revision
from tests.runs import repository_copy

# Runs make lint (ruff, lint-imports, squawk) in fresh processes: not in make test-fast.
pytestmark = pytest.mark.slow

COPIED = ("alembic", "alembic.ini", ".squawk.toml", "Makefile", "pyproject.toml", "devtools",
          "data_migrations")
REVISION = '''"""{message}

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data_migrations.online.indexes import create_index_concurrently
from data_migrations.online.lint import waive

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

__all__ = ["create_index_concurrently", "op", "sa", "waive"]  # each case uses some


def upgrade() -> None:
    {upgrade}


def downgrade() -> None:
    {downgrade}
'''
FILE = "alembic/versions/0005_change_tasks.py"

UNSAFE = {
    "plain index": (
        'op.create_index("ix_tasks_title", "tasks", ["title"])',
        ["require-concurrent-index-creation"]),
    "not null without default": (
        'op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=False))',
        ["adding-required-field"]),
    "constraint validated at once": (
        'op.create_check_constraint("ck_tasks_title", "tasks", "title <> \'\'")',
        ["constraint-missing-not-valid"]),
    "foreign key validated at once": (
        'op.create_foreign_key("fk_tasks_owner", "tasks", "users", ["user_id"], ["id"])',
        ["constraint-missing-not-valid", "adding-foreign-key-constraint"]),
    "type change": (
        'op.alter_column("tasks", "title", type_=sa.Text())',
        ["changing-column-type"]),
    "rename": (
        'op.alter_column("tasks", "title", new_column_name="name")',
        ["renaming-column"]),
}
SAFE = {
    "plain index": 'create_index_concurrently("ix_tasks_title", "tasks", ["title"])',
    "not null without default": (
        'op.add_column("tasks", sa.Column("priority", sa.Integer(), nullable=False, '
        'server_default="0"))'),
    "constraint validated at once": (
        'op.create_check_constraint("ck_tasks_title", "tasks", "title <> \'\'", '
        'postgresql_not_valid=True)'),
    "foreign key validated at once": (
        'op.create_foreign_key("fk_tasks_owner", "tasks", "users", ["user_id"], ["id"],\n'
        '                          postgresql_not_valid=True)'),
    # A type change or a rename is a new column the app moves to (expand and contract).
    "type change": 'op.add_column("tasks", sa.Column("title_text", sa.Text()))',
    "rename": 'op.add_column("tasks", sa.Column("name", sa.String(255)))',
}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = repository_copy(tmp_path / "repo", COPIED)
    ini = root / "alembic.ini"
    ini.write_text(ini.read_text(encoding="utf-8").replace("released = false",
                                                           "released = true"), encoding="utf-8")
    return root


def write_revision(root: Path, upgrade: str | None, downgrade: str = "pass") -> None:
    """A revision 0005 after the cutover's own, whose upgrade is ``upgrade`` (none: none)."""
    if upgrade is not None:
        (root / FILE).write_text(REVISION.format(message="change tasks", upgrade=upgrade,
                                                 downgrade=downgrade), encoding="utf-8")


def make_lint(root: Path, upgrade: str | None = None) -> subprocess.CompletedProcess:
    """``make lint`` in the copy (its virtualenv not set up again)."""
    write_revision(root, upgrade)
    return subprocess.run(["make", "-s", "-o", "install", "lint",
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=root, capture_output=True, text=True, timeout=300)


def lint(root: Path, upgrade: str | None = None,
         downgrade: str = "pass") -> subprocess.CompletedProcess:
    """The revision check's driver on the copy's alembic.ini, in this process: it keeps no
    state between runs, renders each revision in its own ``alembic`` process (with the
    copy's code) and runs squawk in another."""
    write_revision(root, upgrade, downgrade)
    argv = ["--config", str(root / "alembic.ini")]
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        code = lint_revisions.main(argv)
    return subprocess.CompletedProcess(argv, code, "", stderr.getvalue())


def failed_rules(result: subprocess.CompletedProcess) -> list[tuple[str, str]]:
    """(revision file, rule) of each FAILED line."""
    return [tuple(line.removeprefix("FAILED: ").split(": ")[:2])  # type: ignore[misc]
            for line in result.stderr.splitlines() if line.startswith("FAILED: ")]


def test_make_lint_fails_on_an_unsafe_revision_naming_the_rule_and_the_file(
    repository: Path,
) -> None:
    upgrade, rules = UNSAFE["plain index"]

    result = make_lint(repository, upgrade)

    assert result.returncode != 0
    assert failed_rules(result) == [(FILE, rule) for rule in rules], result.stderr


@pytest.mark.parametrize("case", list(UNSAFE))
def test_an_unsafe_revision_fails_naming_the_rule_and_the_file(
    repository: Path, case: str,
) -> None:
    upgrade, rules = UNSAFE[case]

    result = lint(repository, upgrade)

    assert result.returncode != 0
    assert failed_rules(result) == [(FILE, rule) for rule in rules], result.stderr


@pytest.mark.parametrize("case", list(SAFE))
def test_its_safe_version_passes(repository: Path, case: str) -> None:
    result = lint(repository, SAFE[case])

    assert result.returncode == 0, result.stdout + result.stderr
    assert failed_rules(result) == []


def test_an_unsafe_downgrade_fails_naming_the_file_and_the_way_back(
    repository: Path,
) -> None:
    """``make downgrade ENV=prod`` runs the way back on the live database too: a plain
    CREATE INDEX on an existing table there blocks its writes as much as in an upgrade."""
    result = lint(repository, SAFE["type change"],
                  downgrade='op.create_index("ix_tasks_title", "tasks", ["title"])')

    assert result.returncode != 0
    assert failed_rules(result) == [(f"{FILE} (downgrade)",
                                     "require-concurrent-index-creation")], result.stderr


def test_a_rule_waived_with_its_reason_passes(repository: Path) -> None:
    waived = ('waive("renaming-column", reason="no app release reads tasks.title: "\n'
              '          "2.14 moved it to name")\n'
              '    op.alter_column("tasks", "title", new_column_name="name")')

    result = lint(repository, waived)

    assert result.returncode == 0, result.stdout + result.stderr
    ini = repository / "alembic.ini"
    sql = lint_revisions.rendered_sql(ini, lint_revisions.live_revisions(Config(str(ini)))[0],
                                      "upgrade")
    assert ("-- squawk-ignore renaming-column -- no app release reads tasks.title: 2.14 "
            "moved it to name\nALTER TABLE tasks RENAME title TO name;") in sql


def test_a_revision_of_the_cutover_itself_is_exempt(tmp_path: Path) -> None:
    """Written before the release, a revision goes before the data revisions and runs on
    the empty target on the day of the cutover: its plain CREATE INDEX stalls no one."""
    root = repository_copy(tmp_path / "unreleased", COPIED)
    created = revision.new_revision(Config(str(root / "alembic.ini")), "index task titles")
    text = created.read_text(encoding="utf-8")
    text = text.replace("import sqlalchemy as sa\n", "").replace(
        "def upgrade() -> None:\n    pass",
        'def upgrade() -> None:\n    op.create_index("ix_tasks_title", "tasks", ["title"])')
    created.write_text(text, encoding="utf-8")
    assert "op.create_index(" in created.read_text(encoding="utf-8")

    result = lint(root)

    assert result.returncode == 0, result.stdout + result.stderr
    assert lint_revisions.live_revisions(Config(str(root / "alembic.ini"))) == []


def test_without_its_rule_set_the_check_fails_in_one_line(repository: Path) -> None:
    (repository / ".squawk.toml").unlink()

    result = lint(repository, UNSAFE["rename"][0])

    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.startswith("FAILED")] == [
        f"FAILED: {repository / '.squawk.toml'} does not exist: the rule set of the "
        "revision check"]


def test_the_cutover_revisions_are_the_ones_its_alembic_ini_names(repository: Path) -> None:
    """The exemption follows ``[cutover] last_data_revision`` of the config the check is
    given (the key that also runs those revisions without lock timeout), not a constant."""
    ini = repository / "alembic.ini"
    assert lint(repository, UNSAFE["plain index"][0]).returncode != 0
    ini.write_text(ini.read_text(encoding="utf-8").replace(
        "last_data_revision = 0004", "last_data_revision = 0005"), encoding="utf-8")

    result = lint(repository)

    assert result.returncode == 0, result.stderr
    assert lint_revisions.live_revisions(Config(str(ini))) == []


@pytest.mark.parametrize(("edit", "message"), [
    (("last_data_revision = 0004\n", ""),
     "{ini}: [cutover] needs first_data_revision and last_data_revision"),
    (("last_data_revision = 0004", "last_data_revision = 0099"),
     "revision 0099 (last_data_revision, the cutover's last) is not in {versions}"),
])
def test_without_the_cutover_revisions_in_its_config_the_check_fails_in_one_line(
    repository: Path, edit: tuple[str, str], message: str,
) -> None:
    ini = repository / "alembic.ini"
    ini.write_text(ini.read_text(encoding="utf-8").replace(*edit), encoding="utf-8")

    result = lint(repository, UNSAFE["rename"][0])

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "FAILED: " + message.format(ini=ini, versions=repository / "alembic" / "versions")]
