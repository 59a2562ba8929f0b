"""A linter rule waived in a revision, with the reason written down.

``make lint`` renders every revision after the cutover's own with ``--sql`` and runs squawk on
it (devtools/lint_revisions.py). squawk skips a finding when the line just before the
statement says ``-- squawk-ignore <rule>``; ``op.execute`` cannot write that line (it would
end it with ``;`` and a blank line, which squawk does not count), so this does. Call it right
before the operation it is about:

    from data_migrations.online.lint import waive

    def upgrade() -> None:
        waive("ban-drop-column",
              reason="contract step: since release 2.14 no app reads or writes it")
        op.drop_column("audit_logs", "ip_address")

The project's own rules read the same comment: ``waive("raw-dml", reason=...)`` lets a
revision change a few rows in one statement. ``drop-mapped`` (a column ``models/`` still
maps) takes no waiver.

Online it does nothing: the waiver is for the reviewer and the linter, not the database.
"""

from __future__ import annotations

from alembic import op


def waive(*rules: str, reason: str) -> None:
    """``-- squawk-ignore rule[, rule] -- reason`` on the line before the next statement."""
    reason = " ".join(reason.split())
    if not rules or not reason:
        raise ValueError("waive() needs the rules it waives and the reason, in words")
    context = op.get_context()
    if context.as_sql:
        assert context.output_buffer is not None
        context.output_buffer.write(f"-- squawk-ignore {', '.join(rules)} -- {reason}\n")
