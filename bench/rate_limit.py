"""How closely STORAGE_RATE_LIMIT holds the upload to its rate, against the local TOS server.

For each limit (and none), a fresh local TOS server (20 ms per request) and a presync
(``python -m data_migrations.commands.presync``, as an operator runs it before the freeze) of a
folder of its own: one large file that goes up in 16 MiB parts and 40 files of 512 KiB, on
10 threads. The rate is the bytes over the upload phase the presync reports (``File upload
(scan …, upload Ns, …)``); the share is that rate over the limit (goal: within 20% of it).

A limited run is sized to last about ``--seconds`` (30) at its limit: the SDK's token bucket
starts empty and is refilled once a whole second has passed, so the first second sends
nothing, and a short run understates what a daytime presync of hours holds.

    python -m bench.rate_limit [--limits 5MB,10MB,20MB] [--seconds 30] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.upload_files import random_file, storage_environment, tos_server
from settings.parsers import rate as byte_rate
from storage.tos import MiB

UPLOAD_SECONDS = re.compile(r"^File upload \(.*upload ([\d.]+)s", re.M)
SMALL_FILES, SMALL_SIZE, THREADS = 40, 512 * 1024, 10
GOAL = 0.2


def folder_to_send(root: Path, total: int) -> int:
    """About ``total`` bytes to upload under ``root``: the small files and one large file
    for the rest; returns their bytes."""
    large = max(total - SMALL_FILES * SMALL_SIZE, MiB) // MiB * MiB
    random_file(root / "recordings" / "all-hands.wav", large)
    (root / "clips").mkdir()
    for index in range(SMALL_FILES):
        (root / "clips" / f"clip-{index:02d}.mp3").write_bytes(os.urandom(SMALL_SIZE))
    return large + SMALL_FILES * SMALL_SIZE


def upload_seconds(folder: Path, work: Path, port: int, limit: str | None) -> float:
    """The upload phase of a presync of ``folder`` with the limit."""
    environment = {
        **os.environ, **storage_environment(port), "MAX_CONCURRENT": str(THREADS),
        "UPLOADS_DIR": str(folder), "WORK_DIR": str(work), "UPLOAD_EXCLUDE": "none",
        "STORAGE_RATE_LIMIT": limit or "", "ENV": ""}
    finished = subprocess.run([sys.executable, "-m", "data_migrations.commands.presync"],
                              env=environment, capture_output=True, text=True, check=False)
    found = UPLOAD_SECONDS.search(finished.stderr)
    if finished.returncode != 0 or found is None:
        raise SystemExit(f"the presync failed:\n{finished.stderr}")
    return float(found[1])


def measure(root: Path, limit: str | None, total: int) -> str:
    """One presync of about ``total`` bytes under ``limit``, on a fresh server and folder
    (removed after), as a line of figures."""
    folder = root / f"uploads-{limit}"
    sent = folder_to_send(folder, total)
    with tos_server(root / f"tos-{limit}") as (port, _):
        seconds = upload_seconds(folder, root / f"work-{limit}", port, limit)
    for leftover in (folder, root / f"tos-{limit}", root / f"work-{limit}"):
        shutil.rmtree(leftover)
    rate = sent / seconds
    line = (f"  {limit or 'unlimited':>9}: {sent / 1e6:5,.0f} MB in {seconds:5.1f} s, "
            f"{rate / 1e6:6.2f} MB/s")
    if limit:
        share = rate / byte_rate("STORAGE_RATE_LIMIT", limit)
        verdict = "within" if abs(1 - share) <= GOAL else "OUTSIDE"
        line += f" = {share:.0%} of the limit ({verdict} {GOAL:.0%})"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", default="5MB,10MB,20MB")
    parser.add_argument("--seconds", type=int, default=30,
                        help="about how long each limited run lasts")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    limits = args.limits.split(",")
    largest = max(byte_rate("STORAGE_RATE_LIMIT", limit) for limit in limits) * args.seconds
    print(f"Each run: one large file in 16 MiB parts and {SMALL_FILES} files of "
          f"{SMALL_SIZE // 1024} KiB, {THREADS} threads, about {args.seconds} s of data at "
          "its limit")
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        for limit in [None, *limits]:
            total = largest if limit is None else \
                byte_rate("STORAGE_RATE_LIMIT", limit) * args.seconds
            print(measure(Path(scratch), limit, total), flush=True)


if __name__ == "__main__":
    main()
