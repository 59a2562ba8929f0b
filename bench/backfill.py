"""A batched backfill of audit_logs while the app writes to it: the backfill's rate, and how
long the app's writes waited.

Starts a throwaway PostgreSQL (``devtools.postgres_server``), builds the baseline schema
(``alembic upgrade 0001``), fills ``audit_logs`` with ``--rows`` rows (generate_series) and
adds a nullable column ``currency_code``. Then an app writer runs a transaction every
``--every`` seconds (insert one audit_logs row, update a random existing one) while
``data_migrations.online.backfill`` sets ``currency_code = upper(currency)`` on every row in
batches. Prints the backfill's rows/s and the writer's p50, p99 and worst latency against
the goal (worst under 200 ms).

    python -m bench.backfill [--rows 1000000] [--batch-size 2000] [--pause 0.02]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from alembic import command

from data_migrations.commands.adopt_dev import alembic_config
from data_migrations.online.backfill import Backfill, run_backfill
from data_migrations.run.report import log_to_stderr
from devtools.postgres_server import running_server

GOAL_SECONDS = 0.2
FILL = """
INSERT INTO audit_logs (action, provider, cost, currency, ip_address, created_at)
SELECT 'asr.transcribe', 'volcengine', (n % 1000) / 100.0, 'cny', '10.0.0.1', now()
FROM generate_series(1, :rows) AS n"""


def prepared(url: str, rows: int) -> None:
    command.upgrade(alembic_config(url), "0001")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(FILL), {"rows": rows})
        connection.execute(sa.text("ALTER TABLE audit_logs ADD COLUMN currency_code text"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE audit_logs"))
    engine.dispose()


def app_writer(url: str, rows: int, every: float, stop: threading.Event,
               latencies: list[float]) -> Callable[[], None]:
    """The app: a short transaction every ``every`` seconds, its latency recorded."""
    def run() -> None:
        engine = sa.create_engine(url)
        chance = random.Random(7)
        with engine.connect() as connection:
            while not stop.is_set():
                began = time.monotonic()
                with connection.begin():
                    connection.execute(sa.text(
                        "INSERT INTO audit_logs (action, currency, created_at) "
                        "VALUES ('task.create', 'cny', now())"))
                    connection.execute(sa.text(
                        "UPDATE audit_logs SET provider = 'tos' WHERE id = :id"),
                        {"id": chance.randrange(1, rows)})
                latencies.append(time.monotonic() - began)
                time.sleep(every)
        engine.dispose()
    return run


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=1000)[int(share * 1000) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between batches")
    parser.add_argument("--every", type=float, default=0.005,
                        help="seconds between the app's transactions")
    args = parser.parse_args()
    log_to_stderr()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    job = Backfill(name="bench_currency_code", table="audit_logs",
                   set="currency_code = upper(currency)", batch_size=args.batch_size,
                   pause_seconds=args.pause)
    with running_server() as server, server.database("bench_backfill") as url:
        prepared(url, args.rows)
        stop, latencies = threading.Event(), []
        writer = threading.Thread(target=app_writer(url, args.rows, args.every, stop,
                                                    latencies))
        writer.start()
        time.sleep(1)  # the writer's latency before the backfill starts, as a baseline
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        began = time.monotonic()
        with engine.connect() as connection:
            updated = run_backfill(connection, job)
        seconds = time.monotonic() - began
        stop.set()
        writer.join()
        engine.dispose()
    worst = max(latencies)
    print(f"Backfill: {updated:,} rows in {seconds:.1f} s = {updated / seconds:,.0f} rows/s "
          f"(batches of {args.batch_size:,}, {args.pause * 1000:.0f} ms pause)")
    print(f"App writer: {len(latencies):,} transactions, p50 "
          f"{percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
          f"{percentile(latencies, 0.99) * 1000:.1f} ms, worst {worst * 1000:.1f} ms "
          f"({'within' if worst < GOAL_SECONDS else 'OVER'} the "
          f"{GOAL_SECONDS * 1000:.0f} ms goal)")


if __name__ == "__main__":
    main()
