"""Benchmark the row copy against pgloader on the same generated dev database.

    make bench                  # 1,000,000 rows
    make bench ROWS=100000      # or: python -m bench.copy_rows --rows 100000

Generates a dev database (``devtools.sample``) in a temporary folder, starts a
throwaway PostgreSQL (``devtools.postgres_server``), creates a database there, builds the
baseline (``alembic upgrade 0001``) and then times the row copy the way an operator
runs it, as its own revision: ``alembic upgrade 0002`` in a subprocess, with
``SOURCE_DATABASE_URL`` naming the dev file and ``DATABASE_URL`` the target (the later
revisions move files, which this does not measure). When ``pgloader`` is installed it loads
the same file into a second fresh database for comparison. Prints wall time, rows per
second and peak RSS of each, and the ratios ours/pgloader.

A copy that fails, or finishes without copying every row, is reported as FAILED with
the reason; the bench itself still completes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from data_migrations.commands.adopt_dev import alembic_config
from devtools.postgres_server import PASSWORD, ROLE, PostgresServer, running_server
from devtools.sample import COLUMNS, generate_dev_database

ROOT = Path(__file__).resolve().parent.parent
ROW_COPY_REVISION = "0002"
MIB = 1024 * 1024
# pgloader keeps "prefetch rows" rows in flight per table, in its fixed SBCL heap. Its
# default (100,000) exhausts the heap on transcripts of ~7 KB each, and so does 10,000
# at a million rows ("Heap exhausted, game over" after ~250,000 rows). 1,000 loads
# them as fast (22 s for 1M rows here) in 450 MiB; 10,000 with a 4 GiB heap took 1.4 GiB.
PGLOADER_COMMANDS = """\
LOAD DATABASE
     FROM sqlite://{source}
     INTO postgresql://{role}:{password}@{host}:{port}/{dbname}
WITH include drop, create tables, create indexes, reset sequences,
     prefetch rows = 1000;
"""
FAILURE_LINES = 6  # of a failed command's output, enough to see why
RSS_SAMPLE_SECONDS = 0.05


@dataclass(frozen=True)
class Measured:
    """A finished subprocess: its exit code, wall time and peak resident memory."""

    exit_code: int
    seconds: float
    peak_rss_kib: int
    output: str


@dataclass(frozen=True)
class Result:
    """One line of the report."""

    step: str
    rows: int
    seconds: float
    peak_rss_kib: int
    failure: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def run_measured(argv: Sequence[str], env: dict[str, str], log: Path) -> Measured:
    """Run a command to its end. Its peak RSS is that of its whole process tree (the row
    copy's worker processes count), sampled while it runs; wait4 gives the peak of any
    single process, which also covers one too short-lived to sample."""
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
        tree_peak_kib = 0
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            tree_peak_kib = max(tree_peak_kib, tree_rss_kib(process.pid))
            time.sleep(RSS_SAMPLE_SECONDS)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    text = log.read_text(errors="replace").replace(PASSWORD, "***")
    return Measured(process.returncode, seconds, max(tree_peak_kib, usage.ru_maxrss), text)


def tree_rss_kib(pid: int) -> int:
    """The resident memory of a process and all its descendants, from /proc; 0 for one
    that has just ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    rss = next((int(line.split()[1]) for line in status.splitlines()
                if line.startswith("VmRSS:")), 0)
    return rss + sum(tree_rss_kib(int(child)) for child in children)


def count_rows(url: str) -> int:
    """Rows in the eight tables of the database at ``url`` (tables not there count 0)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            present = set(sa.inspect(connection).get_table_names())
            return sum(
                connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in COLUMNS if table in present
            )
    finally:
        engine.dispose()


def judge(step: str, measured: Measured, url: str, expected: int) -> Result:
    """The report line of a copy: FAILED unless it exited 0 with every row copied."""
    copied = count_rows(url)
    failure = None
    if measured.exit_code != 0:
        tail = " | ".join(measured.output.strip().splitlines()[-FAILURE_LINES:])
        failure = f"exit {measured.exit_code}: {tail}"
    elif copied != expected:
        failure = f"exited 0 but copied {copied:,} of {expected:,} rows"
    return Result(step, copied, measured.seconds, measured.peak_rss_kib, failure)


def copy_with_alembic(server: PostgresServer, source: Path, expected: int,
                      workdir: Path) -> Result:
    with server.database("bench_alembic") as url:
        config = alembic_config(url)
        command.upgrade(config, "0001")
        # Without ENV no .env.<name> file is read: the two URLs below are the whole setup.
        env = {key: value for key, value in os.environ.items() if key != "ENV"}
        env |= {"SOURCE_DATABASE_URL": f"sqlite:///{source}", "DATABASE_URL": url}
        measured = run_measured(
            [sys.executable, "-m", "alembic", "upgrade", ROW_COPY_REVISION], env,
            workdir / "alembic.log")
        return judge(f"row copy (alembic upgrade {ROW_COPY_REVISION})", measured, url,
                     expected)


def copy_with_pgloader(server: PostgresServer, source: Path, expected: int,
                       workdir: Path) -> Result:
    dbname = "bench_pgloader"
    with server.database(dbname) as url:
        commands = workdir / "load.pgloader"
        commands.touch(mode=0o600)  # it holds the password
        commands.write_text(PGLOADER_COMMANDS.format(
            source=source, role=ROLE, password=PASSWORD, host=server.host, port=server.port,
            dbname=dbname,
        ))
        measured = run_measured(["pgloader", str(commands)], dict(os.environ),
                                workdir / "pgloader.log")
        return judge("pgloader", measured, url, expected)


def generate(source: Path, rows: int, seed: int) -> Result:
    started = time.perf_counter()
    counts = generate_dev_database(source, rows=rows, seed=seed)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return Result("generate dev database", sum(counts.values()), seconds, peak)


def ratio(ours: Result, theirs: Result | None) -> str:
    if theirs is None or ours.failure or theirs.failure:
        return "n/a (needs two successful copies)"
    return (f"time {ours.seconds / theirs.seconds:.2f}x, "
            f"peak RSS {ours.peak_rss_kib / theirs.peak_rss_kib:.2f}x")


def report(results: list[Result], size_mib: float, comparison: str) -> str:
    lines = [
        f"{'step':<34}{'rows':>12}{'wall s':>10}{'rows/s':>12}{'peak RSS MiB':>14}  result",
    ]
    for result in results:
        lines.append(
            f"{result.step:<34}{result.rows:>12,}{result.seconds:>10.1f}"
            f"{result.rows_per_second:>12,.0f}{result.peak_rss_kib / 1024:>14.1f}  "
            f"{'FAILED: ' + result.failure if result.failure else 'ok'}"
        )
    lines.append(f"dev database file: {size_mib:,.1f} MiB; the generator's peak RSS is the"
                 " bench process's (it streams the rows)")
    lines.append(f"ours / pgloader: {comparison}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cutover-bench-") as folder:
        workdir = Path(folder)
        source = workdir / "meeting_agent.db"
        print(f"Generating {args.rows:,} rows ...", flush=True)
        generated = generate(source, args.rows, args.seed)
        size_mib = source.stat().st_size / MIB
        print(f"  {size_mib:,.1f} MiB in {generated.seconds:.1f} s", flush=True)
        with running_server() as server:
            print(f"Copying with alembic upgrade {ROW_COPY_REVISION} ...", flush=True)
            ours = copy_with_alembic(server, source, generated.rows, workdir)
            theirs = None
            if shutil.which("pgloader"):
                print("Loading with pgloader ...", flush=True)
                theirs = copy_with_pgloader(server, source, generated.rows, workdir)
    results = [generated, ours, *([theirs] if theirs else [])]
    print()
    print(report(results, size_mib, ratio(ours, theirs)))
    if theirs is None:
        print("pgloader is not installed: apt-get install -y pgloader to compare with it")
    return 1 if ours.failure else 0


if __name__ == "__main__":
    sys.exit(main())
