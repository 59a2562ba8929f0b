"""The operator's commands (``python -m data_migrations.commands.<name>``): verify,
presync, adopt_dev and adopt_target."""
