"""make demo runs the whole cutover and its rollback on sample data, by itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Starts servers or commands in fresh interpreters: not in make test-fast.
pytestmark = pytest.mark.slow


def test_the_demo_runs_the_cutover_and_rolls_it_back(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "demo"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    verified = re.search(r"^(\d+) passed, (\d+) failed$", output, re.M)  # make verify
    assert verified and int(verified[1]) > 0 and verified[2] == "0"
    rewritten = output[output.index("Rewritten paths:"):output.index("=== Roll back the path")]
    restored = output[output.index("Restored paths:"):output.index("=== Roll back everything")]
    assert rewritten.count("audio_path = http://127.0.0.1:") == 3
    assert restored.count("audio_path = ") == 3 and "http://" not in restored
    fetched = re.search(r"^fetch +URLs +pass +(\d+) fetched", output, re.M)
    assert fetched and int(fetched[1]) > 0
    uploaded = re.search(r"uploading (\d+) files", output)
    assert uploaded and f"deleted the {uploaded[1]} uploaded objects" in output
    # The presync moved them all before the cutover, which read none of them again.
    *_, cutover_files = re.findall(r"^From the presync: (\d+) files .* sent now: (\d+) files",
                                   output, re.M)
    assert cutover_files == (uploaded[1], "0")
    assert "Running downgrade 0001 -> " in output
    # It talks only to the local TOS server, and says so where it names the endpoint.
    server = re.search(r"the local TOS server on http://127\.0\.0\.1:(\d+)", output)
    assert server and (f"Uploading files from {tmp_path / 'work' / 'demo' / 'uploads'} to "
                       f"bucket 'meeting-agent-demo' at http://tos-cn-beijing.volces.com through "
                       f"the proxy 127.0.0.1:{server[1]} (STORAGE_PROXY)") in output
    assert (tmp_path / "work" / "demo" / "reports").is_dir()
    page = Path(re.findall(r"^The cutover's report page: (.+)$", output, re.M)[-1])
    assert page.parent == tmp_path / "work" / "demo" / "reports" and page.is_file()
    assert "Cutover finished and verified: go live" in page.read_text()
