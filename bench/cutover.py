"""The freeze window of a whole cutover: cold, and after a presync.

    make bench-cutover          # 200,000 rows, 48 audio files of 20-60 MiB, 5,000 small files
    python -m bench.cutover --rows 20000 --audio-files 4 --small-files 500   # a quick look

Generates a dev setup: a dev database (``devtools.sample``) whose file-path columns name
the files of an uploads folder of about 2 GiB (audio files of random bytes, 20-60 MiB
each, and small files) and are NULL otherwise, so that revision 0004 rewrites every path
it finds. A throwaway PostgreSQL (``devtools.postgres_server``) takes the target
databases; the local TOS server, run as its own process with 20 ms per request and at
most 50 MB/s per connection, takes the buckets. Then, each on a fresh database and a
fresh bucket, as an operator runs them (subprocesses, settings in the environment):

(a) the cold cutover: ``alembic upgrade head``;
(b) ``alembic -x dry_run=true upgrade head`` (make plan: it measures the row copy) and
    ``python -m data_migrations.commands.presync`` while the app would still run; then 1% of the
    files rewritten with new bytes (one audio file among them) and a few new files
    added; then ``alembic upgrade head``.

Prints each cutover's freeze window and its steps from the JSON report the run writes in
REPORTS_DIR, the ratio (b)/(a) against the goal of 10%, and (b)'s files step against
2 s plus the changed bytes at the throughput of (a)'s files step, and the freeze window
(b)'s migrate predicted before its first step against the one it measured (within 25%?).
A benchmark: it asserts nothing; a command that fails is reported as FAILED with its last
lines.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.copy_rows import FAILURE_LINES, Measured, run_measured
from bench.upload_files import LATENCY, random_file, storage_environment, tos_server
from data_migrations.run.report import size_text, table
from devtools.postgres_server import PostgresServer, running_server
from devtools.sample import LARGEST_FILE, SMALLEST_FILE, UPLOADS_ALIAS, generate_dev_database
from settings import DECLARED
from storage.tos import MiB

BANDWIDTH_MIB = 50e6 / MiB  # the cap per connection: 50 MB/s
AUDIO_MIB = (20, 60)
CHANGED_SHARE = 0.01  # of the files, rewritten between the presync and the cutover
ADDED_FILES = 5  # new files after the presync, with no row naming them
ADDED_FOLDER = "audio/added-after-presync"
GOAL_SHARE = 0.10  # (b)'s freeze window against (a)'s
FILES_STEP_ALLOWANCE = 2.0  # seconds (b)'s files step may take besides sending changed bytes
PRESYNC_MODULE = "data_migrations.commands.presync"
PREDICTION_TOLERANCE = 0.25  # the predicted freeze window against the measured one

# The file-path columns revision 0004 rewrites, with each table's key.
PATH_COLUMNS = (("hotword_sets", "file_path", "id"), ("tasks", "audio_path", "id"),
                ("generated_artifacts", "file_path", "id"),
                ("transcripts", "raw_result_path", "id"))
# The prefixes of the stored path forms the sample generator writes, before the path
# relative to the uploads folder (backslashes turned into slashes first).
STORED_PREFIXES = (f"{UPLOADS_ALIAS}/", "./uploads/", "uploads/")


@dataclass(frozen=True)
class StoredPath:
    """One non-NULL file-path value of the dev database."""

    table: str
    column: str
    key: str
    value: str

    @property
    def relative_path(self) -> str:
        """The file it names, relative to the uploads folder."""
        slashed = self.value.replace("\\", "/")
        prefix = next(p for p in STORED_PREFIXES if slashed.startswith(p))
        return slashed[len(prefix):]


@dataclass(frozen=True)
class DevSetup:
    database: Path
    uploads: Path
    rows: int
    audio: list[Path]
    small: list[Path]

    @property
    def files(self) -> list[Path]:
        return self.audio + self.small

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)


# --- the dev setup ---------------------------------------------------------------------


def stored_paths(connection: sqlite3.Connection) -> Iterator[StoredPath]:
    for table_name, column, key in PATH_COLUMNS:
        query = (f"SELECT {key}, {column} FROM {table_name} WHERE {column} IS NOT NULL "
                 f"ORDER BY {key}")
        for row_key, value in connection.execute(query):
            yield StoredPath(table_name, column, str(row_key), value)


def small_file_size(rng: random.Random) -> int:
    """Log-uniform over the sample generator's range, as the app's small files are."""
    return int(math.exp(rng.uniform(math.log(SMALLEST_FILE), math.log(LARGEST_FILE))))


def keep_only(connection: sqlite3.Connection, kept: list[StoredPath],
              audio_sizes: dict[str, int]) -> None:
    """NULL every file-path value but ``kept``, so that each stored path names a file;
    a task's audio_size is its file's."""
    connection.execute("CREATE TEMP TABLE kept (table_name TEXT, key TEXT)")
    connection.executemany("INSERT INTO kept VALUES (?, ?)",
                           [(path.table, path.key) for path in kept])
    for table_name, column, key in PATH_COLUMNS:
        connection.execute(
            f"UPDATE {table_name} SET {column} = NULL WHERE CAST({key} AS TEXT) NOT IN "
            "(SELECT key FROM kept WHERE table_name = ?)", (table_name,))
    connection.execute("UPDATE tasks SET audio_size = NULL WHERE audio_path IS NULL")
    connection.executemany("UPDATE tasks SET audio_size = ? WHERE id = ?",
                           [(size, key) for key, size in audio_sizes.items()])


def generate_dev_setup(root: Path, rows: int, audio_files: int, small_files: int,
                       seed: int) -> DevSetup:
    """The dev database and an uploads folder of exactly the files its rows name:
    ``audio_files`` paths drawn among the tasks' audio paths get audio files,
    ``small_files`` drawn among the other paths get small files, the rest become NULL."""
    database, uploads = root / "meeting_agent.db", root / "uploads"
    counts = generate_dev_database(database, rows=rows, seed=seed)
    rng = random.Random(seed)
    connection = sqlite3.connect(database, isolation_level=None)
    try:
        paths = list(stored_paths(connection))
        tasks_audio = [path for path in paths if path.table == "tasks"]
        audio = rng.sample(tasks_audio, min(audio_files, len(tasks_audio)))
        chosen_audio = set(audio)
        rest = [path for path in paths if path not in chosen_audio]
        small = rng.sample(rest, min(small_files, len(rest)))
        audio_sizes = {path.key: rng.randint(*AUDIO_MIB) * MiB for path in audio}
        for path in audio:
            random_file(uploads / path.relative_path, audio_sizes[path.key])
        for path in small:
            random_file(uploads / path.relative_path, small_file_size(rng))
        connection.execute("BEGIN")
        keep_only(connection, audio + small, audio_sizes)
        connection.execute("COMMIT")
    finally:
        connection.close()
    return DevSetup(database, uploads, sum(counts.values()),
                    [uploads / path.relative_path for path in audio],
                    [uploads / path.relative_path for path in small])


def change_files(setup: DevSetup, seed: int) -> tuple[list[Path], list[Path]]:
    """Rewrite CHANGED_SHARE of the files with new random bytes of the same size (so only
    their modification time and content tell), one audio file among them, and add
    ADDED_FILES small files; return the changed and the added files."""
    rng = random.Random(f"{seed}/changes")
    count = max(1, round(len(setup.files) * CHANGED_SHARE))
    audio = rng.choice(setup.audio)
    others = [path for path in setup.files if path != audio]
    changed = [audio, *rng.sample(others, min(count - 1, len(others)))]
    for path in changed:
        random_file(path, path.stat().st_size)
    added = [setup.uploads / ADDED_FOLDER / f"clip-{index:02d}.m4a"
             for index in range(ADDED_FILES)]
    for path in added:
        random_file(path, small_file_size(rng))
    return changed, added


# --- the runs ------------------------------------------------------------------------


@dataclass
class Cutover:
    """One scenario's run: its report (None if it failed) and what went wrong."""

    name: str
    report: dict[str, Any] | None = None
    failure: str | None = None
    wall_seconds: float = 0.0  # the whole command, interpreter start to exit

    @property
    def window(self) -> float:
        assert self.report is not None
        return self.report["freeze_window"]["seconds"]

    def step(self, name: str) -> dict[str, Any]:
        assert self.report is not None
        return next(step for step in self.report["steps"] if step["step"] == name)


def cutover_environment(setup: DevSetup, folder: Path, database_url: str,
                        port: int) -> dict[str, str]:
    """Every setting a cutover of ``setup`` to the local TOS server on ``port`` needs, and
    none of this process's."""
    declared = {setting.name for setting in DECLARED}
    return {**{k: v for k, v in os.environ.items() if k not in declared},
            "DATABASE_URL": database_url, "SOURCE_DATABASE_URL": f"sqlite:///{setup.database}",
            "UPLOADS_DIR": str(setup.uploads), "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS,
            "WORK_DIR": str(folder / "work"), "REPORTS_DIR": str(folder / "reports"),
            **storage_environment(port)}


def command_failure(measured: Measured) -> str | None:
    if measured.exit_code == 0:
        return None
    tail = " | ".join(measured.output.strip().splitlines()[-FAILURE_LINES:])
    return f"exit {measured.exit_code}: {tail}"


def upgrade_head(name: str, env: dict[str, str], folder: Path) -> Cutover:
    """``alembic upgrade head``, and the cutover report it wrote."""
    reports = folder / "reports"
    before = set(reports.glob("cutover-*.json"))
    print("  alembic upgrade head ...", flush=True)
    measured = run_measured([sys.executable, "-m", "alembic", "upgrade", "head"], env,
                            folder / f"{name}-upgrade.log")
    print(f"  {measured.seconds:.1f} s", flush=True)
    failure = command_failure(measured)
    if failure:
        return Cutover(name, failure=failure)
    written = sorted(set(reports.glob("cutover-*.json")) - before)
    if not written:
        return Cutover(name, failure=f"no cutover report in {reports}")
    return Cutover(name, json.loads(written[-1].read_text(encoding="utf-8")),
                   wall_seconds=measured.seconds)


def cold_cutover(server: PostgresServer, setup: DevSetup, root: Path) -> Cutover:
    folder = root / "cold"
    print("(a) Cold cutover: fresh database, fresh bucket", flush=True)
    with server.database("bench_cold") as url, \
            tos_server(folder / "tos", BANDWIDTH_MIB) as (port, _):
        return upgrade_head("cold", cutover_environment(setup, folder, url, port), folder)


@dataclass(frozen=True)
class Changes:
    presync_seconds: float
    changed: list[Path]
    added: list[Path]
    presync_predicted: dict[str, Any] | None  # at the presync's end, before the changes

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.changed + self.added)


def presync_cutover(server: PostgresServer, setup: DevSetup, root: Path,
                    seed: int) -> tuple[Cutover, Changes | None]:
    folder = root / "presync"
    print("(b) Presync, then changes, then the cutover: fresh database, fresh bucket",
          flush=True)
    with server.database("bench_presync") as url, \
            tos_server(folder / "tos", BANDWIDTH_MIB) as (port, _):
        env = cutover_environment(setup, folder, url, port)
        if importlib.util.find_spec(PRESYNC_MODULE) is None:
            return Cutover("presync", failure=f"{PRESYNC_MODULE} is not in this checkout: "
                           "(b) needs the presync command"), None
        print("  alembic -x dry_run=true upgrade head (make plan) ...", flush=True)
        planned = run_measured([sys.executable, "-m", "alembic", "-x", "dry_run=true",
                                "upgrade", "head"], env, folder / "plan.log")
        print(f"  {planned.seconds:.1f} s", flush=True)
        failure = command_failure(planned)
        if failure:
            return Cutover("presync", failure=f"plan {failure}"), None
        print(f"  python -m {PRESYNC_MODULE} ...", flush=True)
        presync = run_measured([sys.executable, "-m", PRESYNC_MODULE], env,
                               folder / "presync.log")
        print(f"  {presync.seconds:.1f} s", flush=True)
        failure = command_failure(presync)
        if failure:
            return Cutover("presync", failure=f"presync {failure}"), None
        changed, added = change_files(setup, seed)
        changes = Changes(presync.seconds, changed, added,
                          predicted_in(folder / "reports", "presync"))
        print(f"  {len(changed):,} files changed and {len(added):,} added "
              f"({size_text(changes.bytes)})", flush=True)
        return upgrade_head("presync", env, folder), changes


def predicted_in(reports: Path, kind: str) -> dict[str, Any] | None:
    """The predicted freeze window of the last ``kind`` report in ``reports``."""
    written = sorted(reports.glob(f"{kind}-*.json"))
    if not written:
        return None
    return json.loads(written[-1].read_text(encoding="utf-8")).get("predicted_freeze")


# --- the figures -----------------------------------------------------------------------


def window_table(cutover: Cutover) -> str:
    assert cutover.report is not None
    window = cutover.report["freeze_window"]
    rows = [(share["step"], f"{share['seconds']:.1f} s", f"{share['percent']:.1f}%")
            for share in window["shares"]]
    rows.append(("freeze window", f"{window['seconds']:.1f} s", "100.0%"))
    rows.append(("make migrate wall time", f"{cutover.wall_seconds:.1f} s", ""))
    return table(("step", "time", "share"), rows)


def files_throughput(cutover: Cutover) -> tuple[int, float]:
    """The bytes (a)'s files step moved and its bytes per second."""
    files = cutover.step("files")
    moved = sum(files["bytes"].values())
    return moved, moved / files["seconds"]


def print_figures(setup: DevSetup, cold: Cutover, presync: Cutover,
                  changes: Changes | None) -> None:
    print(f"\nDev setup: {setup.rows:,} rows, {len(setup.audio):,} audio files and "
          f"{len(setup.small):,} small files ({size_text(setup.bytes)}); TOS server "
          f"{LATENCY * 1000:.0f} ms per request, {BANDWIDTH_MIB * MiB / 1e6:.0f} MB/s per "
          "connection")
    for cutover, title in ((cold, "(a) cold cutover"), (presync, "(b) after a presync")):
        print(f"\n{title}")
        print(f"  FAILED: {cutover.failure}" if cutover.failure else window_table(cutover))
    if cold.failure:
        return
    moved, throughput = files_throughput(cold)
    print(f"\n(a) files step: {size_text(moved)} in {cold.step('files')['seconds']:.1f} s = "
          f"{throughput / 1e6:.1f} MB/s")
    if presync.failure or changes is None:
        return
    share = presync.window / cold.window
    print(f"(b) presync took {changes.presync_seconds:.1f} s before the freeze")
    print(f"(b)/(a) freeze window: {presync.window:.1f} s / {cold.window:.1f} s = "
          f"{share:.1%} ({'within' if share <= GOAL_SHARE else 'OVER'} the goal of "
          f"{GOAL_SHARE:.0%})")
    allowed = FILES_STEP_ALLOWANCE + changes.bytes / throughput
    files_seconds = presync.step("files")["seconds"]
    print(f"(b) files step: {files_seconds:.1f} s against {FILES_STEP_ALLOWANCE:.0f} s + "
          f"{size_text(changes.bytes)} changed / {throughput / 1e6:.1f} MB/s = {allowed:.1f} s "
          f"({'within' if files_seconds <= allowed else 'OVER'})")
    phases = ", ".join(f"{phase} {seconds:.2f} s"
                       for phase, seconds in presync.step("files")["phases"].items())
    print(f"(b) files step by phase: {phases}")
    print_prediction(presync, changes)


def print_prediction(cutover: Cutover, changes: Changes) -> None:
    """The freeze window (b)'s migrate predicted before its first step against the one
    it measured, step by step, and the ratio against the goal of PREDICTION_TOLERANCE."""
    assert cutover.report is not None
    predicted = cutover.report.get("predicted_freeze")
    if predicted is None:
        print("(b) FAILED: the cutover report holds no predicted_freeze")
        return
    rows = [(step, f"{predicted[f'{step}_seconds']:.1f} s",
             f"{cutover.step(step)['seconds']:.1f} s") for step in ("rows", "files", "paths")]
    rows.append(("freeze window", f"{predicted['total_seconds']:.1f} s",
                 f"{cutover.window:.1f} s"))
    print("\n(b) predicted at the start of the migrate (after the presync and the changes) "
          "against measured:\n" + table(("step", "predicted", "measured"), rows))
    print(f"    basis: {predicted['basis']}")
    ratio = predicted["total_seconds"] / cutover.window
    print(f"(b) predicted/measured freeze window: {predicted['total_seconds']:.1f} s / "
          f"{cutover.window:.1f} s = {ratio:.2f} "
          f"({'within' if abs(ratio - 1) <= PREDICTION_TOLERANCE else 'OVER'} "
          f"{PREDICTION_TOLERANCE:.0%})")
    if changes.presync_predicted is not None:
        print(f"(b) the presync's own prediction, before the changes: "
              f"{changes.presync_predicted['total_seconds']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--audio-files", type=int, default=48)
    parser.add_argument("--small-files", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the scratch folder goes (it needs about 3x the uploads)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cutover-bench-", dir=args.workdir) as scratch:
        root = Path(scratch)
        print(f"Generating {args.rows:,} rows, {args.audio_files} audio files and "
              f"{args.small_files:,} small files in {root} ...", flush=True)
        setup = generate_dev_setup(root, args.rows, args.audio_files, args.small_files,
                                   args.seed)
        with running_server() as server:
            cold = cold_cutover(server, setup, root)
            presync, changes = presync_cutover(server, setup, root, args.seed)
        print_figures(setup, cold, presync, changes)
    return 1 if cold.failure or presync.failure else 0


if __name__ == "__main__":
    sys.exit(main())
