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

Revision ID: {revision}
Revises: {down_revision}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from data_migrations.online.backfill import Backfill, backfill_in_batches
from data_migrations.online.indexes import create_index_concurrently
from data_migrations.online.lint import waive

revision: str = "{revision}"
down_revision: str | Sequence[str] | None = {down_revision!r}
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

__all__ = ["Backfill", "backfill_in_batches", "create_index_concurrently", "op", "sa",
           "waive"]  # each case uses some


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
    "rows changed in one statement": (
        'op.execute("UPDATE tasks SET title = upper(title)")',
        ["raw-dml"]),
    "rows deleted in one statement": (
        'op.execute("DELETE FROM audit_logs WHERE ip_address IS NULL")',
        ["raw-dml"]),
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
    # What --sql renders of the batched backfill is a comment: the batches run online only.
    "rows changed in one statement": (
        'backfill_in_batches(Backfill(name="0005_upper_titles", table="tasks",\n'
        '                                 set="title = upper(title)"))'),
    "rows deleted in one statement": (
        'waive("raw-dml", reason="a handful of rows: no address was ever logged empty")\n'
        '    op.execute("DELETE FROM audit_logs WHERE ip_address IS NULL")'),
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
        write(root, "0005", "0004", upgrade, downgrade)


def write(root: Path, rev_id: str, down_revision: str | tuple[str, ...], upgrade: str,
          downgrade: str = "pass", name: str = "change_tasks") -> str:
    """The revision file ``<rev_id>_<name>.py``; its path from the root."""
    path = root / "alembic" / "versions" / f"{rev_id}_{name}.py"
    path.write_text(REVISION.format(message=name.replace("_", " "), revision=rev_id,
                                    down_revision=down_revision, upgrade=upgrade,
                                    downgrade=downgrade), encoding="utf-8")
    return str(path.relative_to(root))


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
    text = text.replace("from collections.abc import Sequence\n",
                        "from collections.abc import Sequence\n\nfrom alembic import op\n").replace(
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


def test_a_dropped_column_the_models_still_map_fails_even_waived(repository: Path) -> None:
    """The app of this release still reads audit_logs.ip_address: its next query would fail
    the moment the revision commits. The waiver of squawk's ban-drop-column does not
    change that."""
    waived = ('waive("ban-drop-column", reason="contract step")\n'
              '    op.drop_column("audit_logs", "ip_address")')

    result = lint(repository, waived)

    assert failed_rules(result) == [(FILE, "drop-mapped")], result.stderr
    assert "drops AuditLog.ip_address (audit_logs.ip_address), which models/ still maps" in (
        result.stderr)
    assert result.returncode != 0


def test_a_dropped_table_the_models_still_map_fails(repository: Path) -> None:
    waived = ('waive("ban-drop-table", reason="contract step")\n'
              '    op.drop_table("hotword_sets")')

    result = lint(repository, waived)

    assert failed_rules(result) == [(FILE, "drop-mapped")], result.stderr
    assert "drops HotwordSet (table hotword_sets), which models/ still maps" in result.stderr


def test_a_column_the_models_no_longer_map_is_dropped_with_its_waiver(
    repository: Path,
) -> None:
    """The contract step: a column no model maps (here one an earlier revision added) goes
    with a waiver and its reason."""
    write(repository, "0005", "0004",
          'op.add_column("tasks", sa.Column("legacy_note", sa.Text()))',
          'op.drop_column("tasks", "legacy_note")', name="add_legacy_note")
    dropped = write(repository, "0006", "0005",
                    'waive("ban-drop-column", reason="no app release reads it since 2.14")\n'
                    '    op.drop_column("tasks", "legacy_note")',
                    name="drop_legacy_note")
    assert lint(repository).returncode == 0

    (repository / dropped).write_text((repository / dropped).read_text(
        encoding="utf-8").replace('    waive("ban-drop-column", reason="no app release reads '
                                  'it since 2.14")\n', ""), encoding="utf-8")
    assert failed_rules(lint(repository)) == [(dropped, "ban-drop-column")]


def test_a_downgrade_that_drops_what_its_upgrade_added_needs_no_waiver(
    repository: Path,
) -> None:
    # The index first: it commits on its own (commit-after-change).
    added = "\n    ".join([
        'create_index_concurrently("ix_tasks_title", "tasks", ["title"])',
        'op.create_table("task_labels", sa.Column("id", sa.Integer(), primary_key=True))',
        'op.add_column("tasks", sa.Column("priority", sa.Integer()))',
        'op.create_check_constraint(op.f("ck_tasks_priority"), "tasks", "priority > 0",\n'
        '                               postgresql_not_valid=True)'])
    dropped = "\n    ".join([
        'op.drop_constraint(op.f("ck_tasks_priority"), "tasks")',
        'op.drop_column("tasks", "priority")',
        'op.drop_table("task_labels")',
        'op.drop_index("ix_tasks_title", table_name="tasks")'])

    assert lint(repository, added, dropped).returncode == 0

    result = lint(repository, added, dropped + '\n    op.drop_column("tasks", "title")')

    assert failed_rules(result) == [(f"{FILE} (downgrade)", "ban-drop-column")], result.stderr
    assert "DROP COLUMN title" in result.stderr


def two_branches(repository: Path) -> tuple[str, str]:
    """Two revisions after 0004, written on two branches five minutes apart: git merges
    the two files without a conflict."""
    first = write(repository, "20261205_100000", "0004",
                  'op.add_column("tasks", sa.Column("priority", sa.Integer()))',
                  'op.drop_column("tasks", "priority")', name="add_task_priority")
    second = write(repository, "20261205_100500", "0004",
                   'op.add_column("audit_logs", sa.Column("reason", sa.Text()))',
                   'op.drop_column("audit_logs", "reason")', name="add_audit_reason")
    return first, second


def test_two_branches_revisions_are_refused_in_one_line_until_linearised(
    repository: Path,
) -> None:
    first, second = two_branches(repository)

    result = lint(repository)

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"FAILED: the chain has 2 heads, {first} (20261205_100000) and {second} "
        "(20261205_100500) (revisions written on two branches after the same one): "
        f"linearise it, pointing {second}'s down_revision (and its Revises: line) at "
        "20261205_100000, while neither branch's revisions have run on a shared database; "
        "or merge them with make merge-heads MSG='...' (a revision after both that does "
        "nothing)"]

    path = repository / second
    path.write_text(path.read_text(encoding="utf-8").replace(
        "= '0004'", "= '20261205_100000'").replace("Revises: 0004", "Revises: 20261205_100000"),
        encoding="utf-8")
    assert lint(repository).returncode == 0


def test_two_branches_revisions_pass_once_merged(repository: Path) -> None:
    """make merge-heads's revision, as written: it revises both heads and does nothing."""
    two_branches(repository)
    merged = revision.merge_heads(Config(str(repository / "alembic.ini")), "join branches")

    result = lint(repository)

    assert result.returncode == 0, result.stderr
    assert lint_revisions.rendered_sql(
        repository / "alembic.ini",
        lint_revisions.live_revisions(Config(str(repository / "alembic.ini")))[-1],
        "upgrade") == ""
    assert merged.name.endswith("_join_branches.py")


def test_one_id_in_two_files_is_refused_naming_both(repository: Path) -> None:
    """Alembic would keep one of the two and only warn: the other's plain CREATE INDEX would
    be neither run nor linted."""
    first = write(repository, "0005", "0004",
                  'op.add_column("tasks", sa.Column("priority", sa.Integer()))',
                  name="add_task_priority")
    second = write(repository, "0005", "0004",
                   'op.create_index("ix_tasks_title", "tasks", ["title"])',
                   name="index_task_titles")

    result = lint(repository)

    assert result.returncode != 0
    (failure,) = result.stderr.splitlines()
    assert failure.startswith(f"FAILED: revision id 0005 is declared by 2 files, {first} and "
                              f"{second} (written on two branches)"), failure
    assert "Warning" not in result.stderr


def make(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-o", "install", *args,
                           f"BIN={Path(sys.executable).parent}"],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_a_fresh_revision_passes_make_lint_and_make_lint_reports_every_tool(
    repository: Path,
) -> None:
    created = make(repository, "revision", "MSG=add task priority")
    assert created.returncode == 0, created.stderr

    assert make(repository, "lint").returncode == 0

    # An unused import (ruff) and a plain CREATE INDEX (squawk) in one more revision: both
    # are reported, then make lint fails.
    (path,) = [p for p in (repository / "alembic" / "versions").glob("2*.py")]
    written = repository / write(repository, "29991231_000000", path.name[:15],
                                 'op.create_index("ix_tasks_title", "tasks", ["title"])',
                                 name="index_titles")
    written.write_text(written.read_text(encoding="utf-8").replace(
        "from collections.abc import Sequence\n", "from collections.abc import Sequence\n"
        "from os import sep\n"), encoding="utf-8")
    result = make(repository, "lint")

    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "F401 [*] `os.sep` imported but unused" in output
    assert ("FAILED: alembic/versions/29991231_000000_index_titles.py: "
            "require-concurrent-index-creation") in output
    assert "make lint: failed: ruff lint_revisions" in output


def test_rows_written_into_a_table_the_revision_creates_are_no_raw_dml(
    repository: Path,
) -> None:
    """No app reads or writes a table before its revision commits: its first rows lock no
    one. The same INSERT into a table the app uses is refused."""
    seeded = ('labels = op.create_table("task_labels", sa.Column("name", sa.String(32),\n'
              '                                                   primary_key=True))\n'
              '    op.bulk_insert(labels, [{"name": "urgent"}, {"name": "later"}])')

    assert lint(repository, seeded, 'op.drop_table("task_labels")').returncode == 0

    result = lint(repository, 'op.execute("INSERT INTO hotword_sets (name) VALUES (\'x\')")')
    assert failed_rules(result) == [(FILE, "raw-dml")], result.stderr
