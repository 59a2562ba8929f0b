"""The run's plumbing every Alembic run and command shares: the preflight, one run at a
time (run_lock, run_guard), a lost connection in one line, the report and its output, the
storage client the settings describe, and the failure boundary."""
