"""After go-live: what makes a schema change on the live database safe for the app.

The helpers that revisions import are frozen like revisions: a change of behaviour is a new
function, never an edit. They serve the revisions written after the cutover, which ``make
migrate`` runs against the live PostgreSQL while the app serves its users: ``indexes`` builds
and drops an index ``CONCURRENTLY``, ``backfill`` updates a live table in small committed
batches, ``lint`` waives a linter rule in a revision with a written reason; ``run`` tells
them whether the run is the plan (a dry run, where nothing may commit on its own).

Around the revisions, not imported by them: ``lock_retry`` (wired from alembic/env.py) runs
each one under a lock timeout, retried with backoff; ``sql_review`` writes what ``make sql``
and ``make sql-downgrade`` show the DBA. Like the rest of the package, they never import
``models``.
"""
