"""Step 0002: the SQLite rows into PostgreSQL: the source, the conversion of values, the
refusals, the copy, the checksum verify reuses, the copy record and the rollback."""
