"""The operator's commands (``python -m data_migrations.commands.<name>``): verify,
presync, adopt_dev, adopt_target and sql_review (make sql, make sql-downgrade)."""
