"""How closely STORAGE_RATE_LIMIT holds the upload to its rate, against the local TOS server.

For each limit (and none), a fresh local TOS server (20 ms per request) and a presync
(``python -m data_migrations.presync``, as an operator runs it before the freeze) of the
same folder: one large file that goes up in 16 MiB parts and 40 files of 512 KiB, on 10
threads. The rate is the bytes over the upload phase the presync reports (``File upload
(scan …, upload Ns, …)``); the share is that rate over the limit (goal: within 20% of it).

    python -m bench.rate_limit [--limits 5MB,10MB,20MB] [--large-mib 96] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.upload_files import large_file, storage_environment, tos_server
from settings.declared import rate as byte_rate
from storage.tos import MiB

UPLOAD_SECONDS = re.compile(r"^File upload \(.*upload ([\d.]+)s", re.M)
SMALL_FILES, SMALL_SIZE, THREADS = 40, 512 * 1024, 10
GOAL = 0.2


def folder_to_send(root: Path, large_mib: int) -> int:
    """The files to upload under ``root``; returns their bytes."""
    large_file(root / "recordings" / "all-hands.wav", large_mib * MiB)
    (root / "clips").mkdir()
    for index in range(SMALL_FILES):
        (root / "clips" / f"clip-{index:02d}.mp3").write_bytes(os.urandom(SMALL_SIZE))
    return large_mib * MiB + SMALL_FILES * SMALL_SIZE


def upload_seconds(folder: Path, work: Path, port: int, limit: str | None) -> float:
    """The upload phase of a presync of ``folder`` with the limit."""
    environment = {
        **os.environ, **storage_environment(port), "MAX_CONCURRENT": str(THREADS),
        "UPLOADS_DIR": str(folder), "WORK_DIR": str(work), "UPLOAD_EXCLUDE": "none",
        "STORAGE_RATE_LIMIT": limit or "", "ENV": ""}
    finished = subprocess.run([sys.executable, "-m", "data_migrations.presync"],
                              env=environment, capture_output=True, text=True, check=False)
    found = UPLOAD_SECONDS.search(finished.stderr)
    if finished.returncode != 0 or found is None:
        raise SystemExit(f"the presync failed:\n{finished.stderr}")
    return float(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limits", default="5MB,10MB,20MB")
    parser.add_argument("--large-mib", type=int, default=96)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        root = Path(scratch)
        total = folder_to_send(root / "uploads", args.large_mib)
        print(f"{total / 1e6:,.0f} MB: one {args.large_mib} MiB file in 16 MiB parts and "
              f"{SMALL_FILES} files of {SMALL_SIZE // 1024} KiB, {THREADS} threads")
        for limit in [None, *args.limits.split(",")]:
            with tos_server(root / f"tos-{limit}") as (port, _):
                seconds = upload_seconds(root / "uploads", root / f"work-{limit}", port, limit)
            rate = total / seconds
            line = f"  {limit or 'unlimited':>9}: {seconds:6.1f} s, {rate / 1e6:6.2f} MB/s"
            if limit:
                share = rate / byte_rate("STORAGE_RATE_LIMIT", limit)
                verdict = "within" if abs(1 - share) <= GOAL else "OUTSIDE"
                line += f" = {share:.0%} of the limit ({verdict} {GOAL:.0%})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
