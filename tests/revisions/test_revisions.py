"""pytest-alembic's built-in checks on PostgreSQL: one head, upgrade base→head, the
models match the DDL the revisions produce (no drift), and every revision goes up, down
and up again (the stairway)."""

from pytest_alembic.tests import (  # noqa: F401  (collected as tests)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
