"""The run's plumbing every Alembic run and command shares: the preflight, one run at a
time (run_lock, run_guard), a lost connection in one line, each revision's lock timeout
with retries (lock_retry), the report and its output, the storage client the settings
describe, the dev file and SQL quoting (sql), UPLOAD_EXCLUDE's globs (exclusions), and the
failure boundary (failure) with the signals it tells (interrupts)."""
