"""The code the data revisions (0002-0004) run, and ``make verify`` that re-checks them.

This package belongs to the migrations alone, and its rule is that of the revisions:
the code a released revision runs is never edited in behaviour. A change in behaviour is a
new module and a new revision that uses it, so a database not yet cut over runs exactly
what the revisions meant when they were released. Nothing here imports ``models`` (the
schema as it is now): a revision names the tables and columns it needs, as they are at
that revision (tests/test_frozen_revisions.py checks the revisions). Settings come from
``settings`` (read once, handed in); development scaffolding lives in ``devtools``.
"""
