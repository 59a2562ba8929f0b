"""The files step's share of a predicted freeze window (data_migrations/run/predicted_freeze.py).

The files step of a cutover after a presync sends what changed since (a file the record
holds with another size or modification time, or not at all) and, for every file, pays
its share of the scan, of the two listings of the bucket (the one the record is checked
against, the one that verifies the manifest) and of the manifest's rows. The presync
measured the first two and its upload rate on this machine against this bucket (its
record's ``runs``); ``make plan`` measured the scan and the manifest's rows against the
target (its files step fills the manifest it rolls back). Only the folder and the record
are read: nothing is asked of the bucket, nothing is written.
"""

from __future__ import annotations

from data_migrations.files import presync_record
from data_migrations.files.presync_record import PresyncRun, RecordedFile
from data_migrations.files.scan import LocalFile, scan_folder
from data_migrations.run.predicted_freeze import MARGIN, Estimate
from data_migrations.run.report import size_text
from settings.steps import UploadOptions
from settings.storage import StorageSettings

# Below the 2-core figures of docs/benchmarks.md (50-60 MB/s to the local TOS server; a
# scan and two listings of 5,050 files in about 1.2 s), for a folder never presynced.
ASSUMED_BYTES_PER_SECOND = 10e6
ASSUMED_SECONDS_PER_FILE = 0.0005
LISTINGS = 2  # of the bucket in a cutover's files step, against one in the presync


def unchanged(entry: RecordedFile | None, file: LocalFile) -> bool:
    """The presync recorded the file as it is now (size and modification time)."""
    return entry is not None and (entry.size, entry.mtime_ns) == (file.size, file.mtime_ns)


def files_estimate(options: UploadOptions, settings: StorageSettings,
                   planned_per_file: float | None) -> Estimate:
    """The files step's predicted seconds for the folder as it is now; ``planned_per_file``
    is what each file cost a plan's files step (its scan and manifest row), when one ran."""
    scan = scan_folder(options.uploads_dir, options.exclude)
    with presync_record.opened(options, settings, create=False,
                               who="the freeze prediction") as record:
        entries = {} if record is None else record.entries
        run = None if record is None else record.measured_run()
    changed = [f for f in scan.files if not unchanged(entries.get(f.relative_path), f)]
    changed_bytes = sum(f.size for f in changed)
    what = (f"{len(changed):,} of {len(scan.files):,} files ({size_text(changed_bytes)}) "
            f"{'changed since the presync' if record else 'to send (no presync)'}")
    if run is None or not run.sent_bytes or not run.upload_seconds or not run.files:
        seconds = (len(scan.files) * ASSUMED_SECONDS_PER_FILE
                   + changed_bytes / ASSUMED_BYTES_PER_SECOND)
        return Estimate(MARGIN * seconds, f"{what} at an assumed "
                        f"{ASSUMED_BYTES_PER_SECOND / 1e6:.0f} MB/s (no upload measured: "
                        "run make presync)")
    rate = run.sent_bytes / run.upload_seconds
    per_file = per_file_seconds(run) + (planned_per_file or 0.0)
    seconds = len(scan.files) * per_file + changed_bytes / rate
    manifest = ", its manifest row as the plan wrote it" if planned_per_file else ""
    return Estimate(MARGIN * seconds, f"{what} at {rate / 1e6:.1f} MB/s (measured by the "
                    f"presync); per file {per_file * 1000:.2f} ms: the scan and {LISTINGS} "
                    f"listings as the presync took them{manifest}")


def per_file_seconds(run: PresyncRun) -> float:
    """The scan and the cutover's listings of the bucket, per file, as the presync's
    scan and its one verifying listing took them."""
    return (run.scan_seconds + LISTINGS * run.verify_seconds) / run.files
