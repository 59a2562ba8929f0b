"""How fast revision 0003 uploads, against the local TOS server with 20 ms per request.

Two runs of the upload step itself (data_migrations/files/upload.py, real SDK, real HTTP,
the manifest written to a throwaway PostgreSQL started as the tests start theirs):

* 5,000 small files at MAX_CONCURRENT=32, compared with the latency-bound ideal
  5000 x 0.02 s / 32 = 3.1 s (goal: at most 1.25 x that);
* one 1 GiB file (multipart), compared with reading the same file from disk.

The server runs in its own process, as TOS would: in this process its request handling
would compete with the client for the interpreter lock and measure Python, not the upload.
Each measurement has a fresh server, and the CPU both sides used is printed with it: on a
small machine the two share the cores, so either can be what limits the run.

    python bench/upload_files.py [--files 5000] [--large-mib 1024] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

import settings as cutover_settings
from data_migrations.files.ledger import ManifestLedger, manifest_table
from data_migrations.files.scan import scan_folder
from data_migrations.files.upload import FileUpload
from data_migrations.run.report import log_to_stderr
from data_migrations.run.storage_factory import build_storage
from devtools.postgres_server import running_server
from storage.tos import MiB

LATENCY = 0.02
WORKERS = 32
GOAL = 1.25
ACCESS_KEY, SECRET_KEY, BUCKET = "AKLT-bench", "bench-secret", "bench"
MANIFEST = "cutover_file_manifest"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(root: Path, port: int, bandwidth_mib: float = 0.0) -> subprocess.Popen:
    """The local TOS server with LATENCY per request and, given ``bandwidth_mib``, that
    many MiB/s per connection at most."""
    server = subprocess.Popen(
        [sys.executable, "-m", "devtools.tos_server", "--root", str(root), "--port", str(port),
         "--bucket", BUCKET, "--latency-ms", str(LATENCY * 1000),
         "--bandwidth-mib", str(bandwidth_mib)],
        env={**os.environ, "STORAGE_ACCESS_KEY": ACCESS_KEY, "STORAGE_SECRET_KEY": SECRET_KEY},
        stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    server.stdout.readline()  # "listening on ...": the socket is ready
    return server


def storage_environment(port: int) -> dict[str, str]:
    """The settings that send the uploads to the local TOS server on ``port`` (the SDK's
    HTTP proxy) on WORKERS threads."""
    return {
        "STORAGE_PROVIDER": "tos", "STORAGE_BUCKET": BUCKET, "STORAGE_REGION": "cn-beijing",
        "STORAGE_ENDPOINT": "http://tos-cn-beijing.volces.com", "STORAGE_ACCESS_KEY": ACCESS_KEY,
        "STORAGE_SECRET_KEY": SECRET_KEY, "STORAGE_PROXY": f"http://127.0.0.1:{port}",
        "MAX_CONCURRENT": str(WORKERS)}


def bench_settings(port: int, folder: Path, work: Path) -> cutover_settings.Settings:
    """The upload of ``folder`` (nothing excluded) to the server on ``port``."""
    return cutover_settings.read(load_env_file=False, environ={
        **storage_environment(port), "UPLOADS_DIR": str(folder), "WORK_DIR": str(work),
        "UPLOAD_EXCLUDE": "none"})


def upload(folder: Path, port: int, work: Path, database_url: str) -> dict[str, float]:
    """The upload step on ``folder``, in a transaction rolled back after; returns its phase
    times."""
    engine = sa.create_engine(database_url)
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(sa.text(
            f"CREATE TABLE {MANIFEST} (relative_path TEXT PRIMARY KEY, object_key TEXT, "
            "public_url TEXT, size BIGINT, mtime_ns BIGINT, crc64 NUMERIC(20, 0), status TEXT, "
            "acl TEXT, storage_class TEXT, sse TEXT)"))
        read = bench_settings(port, folder, work)
        configured = read.storage()
        storage = build_storage(configured, work)
        try:
            scan = scan_folder(folder, ())
            ledger = ManifestLedger(connection, manifest_table(MANIFEST), storage, configured)
            run = FileUpload(storage, configured, ledger, None, read.upload_options())
            return run.run(scan, 0.0).seconds
        finally:
            storage.close()
            transaction.rollback()


def small_files(folder: Path, count: int) -> None:
    for index in range(count):
        path = folder / f"audio/{index % 50:02d}/clip-{index:05d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1024))


def random_file(path: Path, size: int) -> None:
    """``size`` random bytes at ``path``, written a MiB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for offset in range(0, size, MiB):
            stream.write(os.urandom(min(MiB, size - offset)))


def read_seconds(path: Path) -> float:
    started = time.monotonic()
    with path.open("rb") as stream:
        while stream.read(8 * MiB):
            pass
    return time.monotonic() - started


@contextmanager
def tos_server(root: Path, bandwidth_mib: float = 0.0) -> Iterator[tuple[int, list[float]]]:
    """A fresh local TOS server for one measurement: its port, and a list that receives
    the CPU seconds it used once it has stopped."""
    port = free_port()
    server = start_server(root, port, bandwidth_mib)
    cpu: list[float] = []
    try:
        yield port, cpu
    finally:
        server.terminate()
        # wait4 reaps the process and tells its CPU time, which Popen.wait does not.
        _, status, usage = os.wait4(server.pid, 0)
        server.returncode = os.waitstatus_to_exitcode(status)
        cpu.append(usage.ru_utime + usage.ru_stime)


def cpu_text(client: float, server: float) -> str:
    return f"CPU {client:.1f} s client + {server:.1f} s server ({os.cpu_count()} CPUs)"


def bench_small_files(root: Path, count: int, database_url: str) -> None:
    small = root / "small"
    small_files(small, count)
    with tos_server(root / "tos-small") as (port, server_cpu):
        cpu = time.process_time()
        seconds = upload(small, port, root / "work", database_url)
        cpu = time.process_time() - cpu
    ideal = count * LATENCY / WORKERS
    ratio = seconds["upload"] / ideal
    print(f"{count:,} small files, {WORKERS} threads, {LATENCY * 1000:.0f} ms per request: "
          f"upload {seconds['upload']:.2f} s, ideal {ideal:.2f} s, {ratio:.2f}x "
          f"({'within' if ratio <= GOAL else 'OVER'} the {GOAL}x goal); verify "
          f"{seconds['verify']:.2f} s; {cpu_text(cpu, server_cpu[0])}, "
          f"{cpu / count * 1000:.2f} + {server_cpu[0] / count * 1000:.2f} ms per file")


def bench_large_file(root: Path, mib: int, database_url: str) -> None:
    large = root / "large" / "meeting.wav"
    random_file(large, mib * MiB)
    disk = read_seconds(large)
    with tos_server(root / "tos-large") as (port, server_cpu):
        cpu = time.process_time()
        seconds = upload(large.parent, port, root / "work", database_url)
        cpu = time.process_time() - cpu
    size_mb = mib * MiB / 1e6
    print(f"{mib:,} MiB file (multipart, 16 MiB parts): upload {seconds['upload']:.2f} s = "
          f"{size_mb / seconds['upload']:,.0f} MB/s; reading it from disk "
          f"{size_mb / disk:,.0f} MB/s; {cpu_text(cpu, server_cpu[0])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    log_to_stderr()  # the upload runs in this process: its progress and summaries
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch, running_server() as postgres, \
            postgres.database("bench_upload") as database_url:
        root = Path(scratch)
        if args.files:
            bench_small_files(root, args.files, database_url)
        if args.large_mib:
            bench_large_file(root, args.large_mib, database_url)


if __name__ == "__main__":
    main()
