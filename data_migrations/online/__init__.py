"""After go-live: what makes a schema change on the live database safe for the app.

The helpers that revisions import are frozen like revisions: a change of behaviour is a new
function, never an edit. They serve the revisions written after the cutover, which ``make
migrate`` runs against the live PostgreSQL while the app serves its users: ``indexes`` builds
and drops an index ``CONCURRENTLY``, ``backfill`` updates a live table in small committed
batches, ``constraints`` adds a foreign key, a check, ``NOT NULL`` or a unique constraint
in steps that scan nothing under a lock, ``column_type`` changes a column's type by expand
and contract (``column_carries`` and ``column_swap`` serve it), ``lint`` waives a linter
rule in a revision with a written reason; ``run`` tells
them whether the run is the plan (a dry run, where nothing may commit on its own).
Nothing in the package imports ``models``.

Around the revisions, and not here: the lock timeout with retries each one runs under is
the run's plumbing (data_migrations/run/lock_retry.py, wired from alembic/env.py); what
``make sql`` and ``make sql-downgrade`` show the DBA is an operator's command
(data_migrations/commands/sql_review.py).
"""
