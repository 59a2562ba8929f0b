"""Which presyncs and which verify a cutover's page shows around its freeze: those of the
same folder that belong to it, not to an earlier or later cutover."""

from __future__ import annotations

import json
from pathlib import Path

from data_migrations.report_page.page import related


def written(folder: Path, name: str, hour: int, outcome: str = "succeeded") -> dict:
    """A ``name`` run's report (cutover, presync, verify) from ``hour``:00 to ``hour``:30."""
    command = "migrate" if name == "cutover" else name
    document = {"command": command, "outcome": outcome,
                "started_at": f"2026-12-05T{hour:02d}:00:00.000+00:00",
                "ended_at": f"2026-12-05T{hour:02d}:30:00.000+00:00"}
    (folder / f"{name}-20261205T{hour:02d}3000Z.json").write_text(json.dumps(document))
    return document


def test_a_cutover_shows_its_own_presyncs_and_the_verify_before_the_next_cutover(
        tmp_path: Path) -> None:
    written(tmp_path, "presync", 1)
    written(tmp_path, "cutover", 2)  # a rehearsal on the same folder
    own = [written(tmp_path, "presync", 3), written(tmp_path, "presync", 4)]
    written(tmp_path, "cutover", 5, outcome="failed")  # the first attempt of the real one
    cutover = written(tmp_path, "cutover", 6)
    first_verify = written(tmp_path, "verify", 7)
    last_verify = written(tmp_path, "verify", 8)
    written(tmp_path, "cutover", 9)
    written(tmp_path, "verify", 10)

    around = related(tmp_path, cutover)
    assert around.presyncs == own
    assert around.verify == last_verify != first_verify


def test_only_a_cutovers_page_reads_the_folder(tmp_path: Path) -> None:
    written(tmp_path, "presync", 1)
    presync = written(tmp_path, "presync", 2)
    around = related(tmp_path, presync)
    assert (around.presyncs, around.verify) == ([], None)
