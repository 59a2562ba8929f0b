"""How Alembic reaches the target database.

The settings are read once here (settings/: the .env.<ENV> file, the environment, -x) and
left in ``config.attributes["settings"]`` for the revisions (``settings.of_run()``). The URL
comes from DATABASE_URL. A tool that drives Alembic from Python may instead pass
``config.attributes["connection"]`` (Alembic's cookbook recipe for sharing a connection) or
``config.attributes["database_url"]``. Offline (``--sql``) runs need no database: without
DATABASE_URL they render PostgreSQL SQL.
Before the first pending revision of an online upgrade (the plan too) writes anything,
the preflight runs the checks every pending revision declares (data_migrations/run/preflight.py).
Each revision waits for its locks at most LOCK_TIMEOUT and is retried
(data_migrations/run/lock_retry.py), except the cutover's data revisions.
Expected failures (settings, storage, a data step's findings) become one ``FAILED: ...``
line each instead of a traceback, and an interrupt its own line (data_migrations/run/failure.py).
A run that copied the rows watched the dev file from its snapshot (data_migrations/rows/watch.py):
rows written to it since are the run's last line, NOT READY TO GO LIVE, and exit 3.
"""

from __future__ import annotations

import logging
import os
import time
from logging.config import fileConfig

from alembic import context
from alembic.script import Script
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL, Connection, Engine

import models
import settings
from data_migrations.commands import freeze_prediction
from data_migrations.report_page import record
from data_migrations.rows import copy_record, difference, watch
from data_migrations.rows import preflight as rows_preflight
from data_migrations.run import failure, lock_retry, preflight, run_guard, run_lock
from data_migrations.run.predicted_freeze import PredictedFreeze, remember_rates
from data_migrations.run.report import recorded_steps
from settings import declared

log = logging.getLogger("cutover.run")

# The data steps' bookkeeping tables (cutover_copied_keys, cutover_file_manifest,
# cutover_path_rewrites, cutover_row_copy_runs) share this prefix.
BOOKKEEPING_PREFIX = "cutover_"

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def read_settings() -> settings.Settings:
    """Every setting, read once for this command and left where the revisions find it."""
    given = config.attributes.get("database_url")
    settings.load_environment(os.environ.get("ENV") or None)
    environ = {**os.environ, **({"DATABASE_URL": str(given)} if given is not None else {})}
    read = settings.read(context.get_x_argument(as_dictionary=True), load_env_file=False,
                         environ=environ)
    config.attributes[settings.ATTRIBUTE] = read
    run = record.current_run()
    if run is not None:
        run.settings = read
        run.command = "plan" if read[declared.DRY_RUN] else "migrate"
    return read


def target_url(required: bool) -> URL | None:
    """The configured target, or None when it is optional and absent."""
    cutover = settings.of_run()
    if not required and cutover[declared.DATABASE_URL] is None:
        return None
    return cutover.database_url()


def include_object(obj: object, name: str | None, type_: str, reflected: bool,
                   compare_to: object) -> bool:
    # The data steps' bookkeeping tables are not part of the app's schema: their
    # revisions create and drop them, and autogenerate must leave them alone.
    return not (type_ == "table" and name and name.startswith(BOOKKEEPING_PREFIX))


def configure_options(url_backend: str, dry_run: bool = False) -> dict:
    return {
        "target_metadata": models.metadata,
        "include_object": include_object,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
        "render_as_batch": url_backend == "sqlite",
        # One transaction per revision: a data step that fails rolls back alone, and
        # the version row moves in the same transaction as the work it records. A dry
        # run instead puts the whole chain in one transaction and rolls it back.
        "transaction_per_migration": not dry_run,
        "compare_type": True,
    }


def configure(**options: object) -> lock_retry.LockRetry:
    """Configure the run, each revision under its lock timeout."""
    context.configure(**options)
    retry = lock_retry.LockRetry.of(settings.of_run(), context.script, config)
    retry.install(context.get_context())
    return retry


def run_migrations_offline() -> None:
    url = target_url(required=False)
    if url is None:
        configure(dialect_name="postgresql", literal_binds=True,
                  **configure_options("postgresql"))
    else:
        configure(url=url, literal_binds=True, **configure_options(url.get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    cutover = settings.of_run()
    dry_run = cutover[declared.DRY_RUN]
    # One run at a time, no create_all() target, a lost connection in one line.
    with run_guard.guarded(connection, config.cmd_opts, dry_run):
        migrate_on(connection, dry_run, cutover)


def pending_revisions(connection: Connection) -> list[Script]:
    """The revisions this command will upgrade through: none for a downgrade or stamp."""
    if run_lock.command_name(config.cmd_opts) not in (None, "upgrade"):
        return []
    try:
        destination = context.get_revision_argument()
    except KeyError:  # a command with no destination (check, a test runner's own steps)
        return []
    started_here = not connection.in_transaction()
    current = context.get_context().get_current_heads()
    if started_here:  # end the read, so no lock on alembic_version is held meanwhile
        connection.rollback()
    pending = preflight.pending_revisions(context.script, current, destination)
    run = record.current_run()
    if run is not None:
        run.note_revisions(current, pending)
    return pending


def migrate_on(connection: Connection, dry_run: bool, cutover: settings.Settings) -> None:
    retry = configure(connection=connection,
                      **configure_options(connection.dialect.name, dry_run))
    pending = pending_revisions(connection)
    preflight_run(cutover, pending)
    if not dry_run:
        predicted = prediction(cutover, pending)
        if predicted is not None:
            predicted.log("now (this run)")
            record.note(predicted_freeze=predicted.as_json())
        retry.run(migrate)
        found = left_in_dev_file(connection, pending)
        remember_rates(cutover[declared.WORK_DIR], recorded_steps(), "make migrate")
        if found is not None:
            record.note(left_behind=difference.as_report(found))
        record.write_now()
        told_last(found, cutover)
        return
    retry.run(lambda: rolled_back(connection))
    log.info("Dry run: every change was rolled back; the database is as it was.")
    remember_rates(cutover[declared.WORK_DIR], recorded_steps(forget=True), "make plan")
    predicted = prediction(cutover, pending)  # after the copy: at the rate it just took
    if predicted is not None:
        freeze_prediction.announce(predicted)


def prediction(cutover: settings.Settings, pending: list[Script]) -> PredictedFreeze | None:
    """The freeze window of the data steps among ``pending``; None when there is none to
    do or no dev file to take them from (a schema-only or after-go-live run)."""
    steps = {freeze_prediction.DATA_STEPS[script.revision] for script in pending
             if script.revision in freeze_prediction.DATA_STEPS}
    if not steps or cutover.source_database_path() is None:
        return None
    return freeze_prediction.predict(cutover, steps)


def left_in_dev_file(connection: Connection,
                     pending: list[Script]) -> list[difference.TableDifference] | None:
    """What the dev file holds beyond the snapshot the rows were copied from: watched when
    this run took it; compared whole when this run resumed the cutover after its rows step
    (a data revision that reads the source ran, and the target records a copy); None when
    the run had no part in the cutover."""
    found = watch.since_snapshot()
    if found is not None or rows_preflight.source_intact not in preflight.declared_checks(pending):
        return found
    started_here = not connection.in_transaction()
    copied = copy_record.read_record(connection)
    if started_here:  # end the read, as pending_revisions does
        connection.rollback()
    return None if copied is None else watch.since_record(copied.source, copied.snapshot)


def told_last(found: list[difference.TableDifference] | None,
              cutover: settings.Settings) -> None:
    """Rows written to the dev file after the snapshot this run copied: the run's last
    line, and the exit code that says the target is not ready to go live."""
    if found is None:
        return
    code = watch.tell(found, str(cutover.source_database_path()), cutover[declared.LEAVE_DEV_ROWS],
                      os.environ.get("ENV") or None, failure.NOT_READY_EXIT)
    if code:
        raise SystemExit(code)


def preflight_run(cutover: settings.Settings, pending: list[Script]) -> None:
    """The preflight, its time kept for the report: the freeze window holds it."""
    started = time.time()
    try:
        preflight.run(cutover, pending)
    finally:
        run = record.current_run()
        if run is not None:
            run.preflight_seconds = time.time() - started


def migrate() -> None:
    with context.begin_transaction():
        context.run_migrations()


def rolled_back(connection: Connection) -> None:
    """The dry run: the whole chain in one transaction, rolled back."""
    transaction = connection.begin()
    try:
        context.run_migrations()
    finally:
        transaction.rollback()


def run_migrations_online() -> None:
    shared = config.attributes.get("connection")
    if isinstance(shared, Engine):
        with shared.connect() as connection:
            run_on(connection)
        return
    if shared is not None:
        run_on(shared)
        return
    url = target_url(required=True)
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with failure.connect(engine) as connection:
        run_on(connection)
    engine.dispose()


def reported_command() -> str | None:
    """The report this run writes (data_migrations/report_page/record.py): an upgrade's,
    as make plan or make migrate; none for an offline run, a downgrade or a stamp."""
    if context.is_offline_mode():
        return None
    if run_lock.command_name(config.cmd_opts) not in (None, "upgrade"):
        return None
    given = context.get_x_argument(as_dictionary=True).get(declared.DRY_RUN.x or "", "")
    return "plan" if given.lower() in ("true", "1", "yes") else "migrate"


def run_command() -> None:
    read_settings()
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


# Expected failures become one FAILED line; Ctrl-C or SIGTERM one line naming the revision
# and exit 130 or 143 (data_migrations/run/failure.py). Each upgrade writes its report and
# page, failed or not; one driven from Python (no command line) only when a data step ran.
with failure.alembic_run(f"alembic {run_lock.describe(config.cmd_opts, False)}"):
    reporting = reported_command()
    if reporting is None:
        run_command()
    else:
        with record.reported(reporting, always=config.cmd_opts is not None):
            run_command()
