"""What the files step and the presync tell the operator: where the objects go, the dry
run's plan, the summary of a run, the presync's orphaned objects, and the ``--sql``
comments (the upload runs only online).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from data_migrations.files import presync_record
from data_migrations.files.ledger import SENT, StorageSettingsSource, UploadReport
from data_migrations.files.scan import FolderScan, scan_folder
from data_migrations.run.report import bulleted, size_text, table
from settings import ConfigError
from settings.parsers import DEFAULT_EXCLUSIONS
from settings.steps import UploadOptions
from settings.storage import StorageSettings

log = logging.getLogger("cutover.files")

LARGEST_SHOWN = 10
ORPHANS_SHOWN = 5
STATUS_ROWS = (("presynced", "from the presync (unchanged, not read)"),
               ("uploaded", "uploaded"), ("replaced", "re-uploaded (content differed)"),
               ("resent", "re-uploaded (storage class or encryption differed)"),
               ("acl_set", "already in the bucket, ACL corrected"),
               ("skipped", "skipped (already in the bucket)"),
               ("vanished", "deleted while the run read them (not recorded)"),
               ("changing", "changing while read (left out, not recorded)"))


def describe_target(settings: StorageSettings) -> str:
    """Where the objects go, for people: never a credential. Through a proxy, the proxy
    too: the endpoint is then only what the requests are signed for, not whom they reach."""
    where = settings.location()
    if settings.provider == "tos" and settings.proxy:
        host, port = settings.proxy
        where += f" through the proxy {host}:{port} (STORAGE_PROXY)"
    written = [f"{name} {value}" for name, value in (
        ("ACL", settings.acl), ("storage class", settings.storage_class),
        ("SSE", settings.sse)) if value]
    return where + (f" ({', '.join(written)})" if written else "")


def refusal_message(scan: FolderScan) -> str:
    return (f"{len(scan.refused):,} entries in {scan.root} cannot be uploaded safely and were "
            f"not read; nothing was uploaded:\n{bulleted([str(r) for r in scan.refused])}\n"
            "Fix or move them, or run with -x unsafe_files=skip to upload everything else "
            "(the summary lists what was left out).")


def print_plan(scan: FolderScan, options: UploadOptions, settings: StorageSettings,
               who: str) -> None:
    """The dry run's report: what would be uploaded, excluded and refused; with a presync
    record of the folder and target, how much of it the presync has moved already (the
    bucket is not asked). ``who`` names the run to one that finds the record locked."""
    with presync_record.opened(options, settings, create=False, who=who) as record:
        presynced = [] if record is None else [
            file for file in scan.files if (entry := record.entries.get(file.relative_path))
            and (entry.size, entry.mtime_ns) == (file.size, file.mtime_ns)]
    presynced_bytes = sum(f.size for f in presynced)
    log.info("File upload plan (dry run, nothing uploaded):\n" + table(
        ("files", "count", "bytes"),
        [("unchanged since the presync", len(presynced), size_text(presynced_bytes)),
         ("to upload", len(scan.files) - len(presynced), size_text(scan.bytes - presynced_bytes)),
         ("excluded", len(scan.excluded), size_text(scan.excluded_bytes)),
         ("refused (not read)", len(scan.refused), "-")]))
    log.info(exclusions_text(options.exclude))
    largest = sorted(scan.files, key=lambda f: f.size, reverse=True)[:LARGEST_SHOWN]
    if largest:
        log.info("Largest files:\n" + "\n".join(
                 f"  {size_text(f.size):>10}  {f.relative_path}" for f in largest))
    if scan.refused:
        log.info(f"Refused:\n{bulleted([str(r) for r in scan.refused])}")


def exclusions_text(exclude: Sequence[str]) -> str:
    """What the upload leaves out, and how UPLOAD_EXCLUDE made it so."""
    if not exclude:
        return "Excluded: nothing (UPLOAD_EXCLUDE=none replaces the defaults tmp/, *.part)."
    return (f"Excluded: {', '.join(exclude)} (UPLOAD_EXCLUDE adds its globs to the defaults "
            f"{', '.join(DEFAULT_EXCLUSIONS)}; `none` leaves nothing out).")


def kinds(report: UploadReport) -> dict[str, Any]:
    """The files of a run per kind (count and bytes by how they reached the bucket), and
    those excluded and refused: the reports' figures of the files step and the presync."""
    return {"files": dict(report.files), "bytes": dict(report.bytes),
            "excluded": len(report.scan.excluded),
            "refused": [str(refused) for refused in report.scan.refused]}


def print_summary(report: UploadReport) -> None:
    scan = report.scan
    rows = [(label, report.files[status], size_text(report.bytes[status]))
            for status, label in STATUS_ROWS]
    rows += [("excluded", len(scan.excluded), size_text(scan.excluded_bytes)),
             ("refused (not read)", len(scan.refused), "-"),
             ("verified in the bucket", report.verified, "-")]
    times = ", ".join(f"{step} {seconds:.1f}s" for step, seconds in report.seconds.items())
    log.info(f"File upload ({times}):\n" + table(("files", "count", "bytes"), rows))
    sent = sum(report.files[status] for status in SENT)
    log.info(f"From the presync: {report.files['presynced']:,} files "
             f"({size_text(report.bytes['presynced'])}), not read; sent now: {sent:,} files "
             f"({size_text(sum(report.bytes[status] for status in SENT))}).")
    log.info(f"Incomplete multipart uploads left by a killed or failed attempt: "
             f"{report.resumed.count:,} resumed ({size_text(report.resumed.reused_bytes)} of "
             f"stored parts kept), {report.aborted:,} aborted (only uploads of these files' "
             "keys).")
    print_orphans(report)
    if report.changing:
        log.info(f"Changing each time they were read, left out (the next run sends them "
                 f"again):\n{bulleted(sorted(report.changing))}")
    if report.replaced:
        log.info(f"Re-uploaded because the bucket held other content:\n"
                 f"{bulleted(sorted(report.replaced))}")
    if scan.refused:
        log.info(f"Refused and left out (-x unsafe_files=skip):\n"
                 f"{bulleted([str(r) for r in scan.refused])}")


def print_orphans(report: UploadReport) -> None:
    """The presync's objects whose files are gone: pruned, or listed with how to prune."""
    if not report.orphans:
        return
    shown = [f"{key} (deleted)" if report.pruned else key for key in report.orphans]
    if report.pruned:
        log.info(f"Deleted {report.pruned:,} objects the presync stored whose files are gone "
                 f"from UPLOADS_DIR (-x prune=true):\n{bulleted(shown, len(shown))}")
    else:
        log.info(f"{len(report.orphans):,} objects the presync stored have no file in "
                 f"UPLOADS_DIR any more; they stay in the bucket (-x prune=true deletes exactly "
                 f"these):\n{bulleted(shown[:ORPHANS_SHOWN], len(shown))}")


def offline_comment(options: UploadOptions, storage_settings: StorageSettingsSource,
                    manifest: str) -> str:
    """What the upload would do, for ``--sql`` output: it needs live storage to run."""
    lines = [f"-- 0003 uploads the files under {options.uploads_dir.resolve()}"]
    try:
        lines.append(f"-- to {describe_target(storage_settings())}")
    except ConfigError as error:
        lines.append(f"-- to storage not configured yet ({error})")
    if options.uploads_dir.is_dir():
        scan = scan_folder(options.uploads_dir, options.exclude)
        lines.append(f"--   {len(scan.files):,} files, {size_text(scan.bytes)}; excluded "
                     f"{len(scan.excluded):,} ({', '.join(options.exclude) or 'no pattern'}); "
                     f"refused {len(scan.refused):,}")
    else:
        lines.append("--   (the folder does not exist on this machine)")
    lines.append(f"-- and records them in {manifest}. It runs only online (alembic upgrade "
                 "head);\n-- no SQL is emitted for it.\n\n")
    return "\n".join(lines)


def offline_downgrade_comment(manifest: str) -> str:
    return ("-- 0003 downgrade keeps the uploaded objects (online, -x purge_objects=true "
            "deletes\n-- the objects listed in the manifest first) and drops the manifest.\n"
            f"DROP TABLE IF EXISTS {manifest};\n\n")
