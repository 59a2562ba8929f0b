"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""

<%
    # Only the imports the body uses: a revision fresh from make revision (its body `pass`)
    # and a merge revision pass ruff as written. Write `from alembic import op` and
    # `import sqlalchemy as sa` when the revision comes to use them.
    body = (upgrades or "") + (downgrades or "") + (imports or "")
%>
from collections.abc import Sequence
% if "sa." in body or "op." in body:

% endif
% if "sa." in body:
import sqlalchemy as sa
% endif
% if "op." in body:
from alembic import op
% endif
% if imports:
${imports}
% endif

revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


<%
    # After go-live (alembic.ini [cutover] released = true) a revision runs on the live
    # database: its template says what that asks of it.
    live = config.get_section_option("cutover", "released", "false").strip() == "true"
%>
def upgrade() -> None:
% if live:
    # Runs on the live database in one transaction under LOCK_TIMEOUT (-x lock_timeout):
    # a lock not granted in time rolls it back and retries it. Keep it short.
    # An index on an existing table: data_migrations.online.indexes.create_index_concurrently.
    # Changing rows of a live table: data_migrations.online.backfill (batches, a commit each).
    # Those two commit on their own: nothing of this revision's own may come before them
    # that a second run would stop at (make lint's commit-after-change).
    # A new constraint or foreign key: postgresql_not_valid=True (NOT VALID), and
    # VALIDATE CONSTRAINT in a later revision. Name indexes and constraints with op.f("...")
    # (the name as written, not run through models' naming convention a second time).
    # A column or table models/ still maps is dropped only in the release after the app
    # stopped using it. A rule broken on purpose: data_migrations.online.lint.waive(rule,
    # reason=...) right before the operation; make lint checks upgrade and downgrade alike.
    # Review the SQL: make sql ENV=prod.
% endif
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
% if live:
    # Undo exactly what upgrade() did, in reverse order, under the same lock timeout:
    # drop_index_concurrently for its indexes, data_migrations.online.columns.drop_added_column
    # for its columns (refused while they hold the app's values), and data a backfill
    # changed, if the old values can be known. Dropping what upgrade() added needs no
    # waiver; make lint checks the rest as it checks upgrade().
    # Review it: make sql-downgrade ENV=prod.
% endif
    ${downgrades if downgrades else "pass"}
