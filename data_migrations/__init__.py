"""The cutover: the code the data revisions (0002-0004) run, and the operator's commands.

One subpackage per step, each with what its step, its verification and its rollback need:
``rows`` (0002: SQLite rows into PostgreSQL), ``files`` (0003: uploads/ into the object
store), ``paths`` (0004: file paths rewritten to object keys); beside them ``online``, the
helpers revisions written after go-live import. ``run`` is the plumbing every run shares
(preflight, the run lock and guard, a lost connection, each revision's lock timeout with
retries, the report, the failure boundary with Ctrl-C and SIGTERM); ``commands`` are the
operator's entry points (verify, presync, adopt-dev, adopt-target, make sql). The steps and
``online`` import ``run`` and never each other; ``commands`` sit on top (pyproject.toml
[tool.importlinter] checks the layers).

The rule of the revisions holds here: the code a released revision runs is never edited
in behaviour. A change in behaviour is a new module and a new revision that uses it, so a
database not yet cut over runs exactly what the revisions meant when they were released.
Nothing a revision imports reaches ``models`` (the schema as it is now): a revision names
the tables and columns it needs, as they are at that revision
(tests/revisions/test_frozen_revisions.py checks the revisions). Settings come from ``settings``
(read once, handed in); development scaffolding lives in ``devtools``.
"""
