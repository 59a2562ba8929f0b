"""Start a multipart upload to the local TOS server and SIGKILL this process once a given
number of parts are stored: the incomplete upload a killed run leaves in the bucket.

``python -m tests.storage.killed_upload PORT WORK_DIR KEY SOURCE PARTS_BEFORE_KILL``
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from storage.tos import MiB, TosStorage
from tests.conftest import ACCESS_KEY, BUCKET, ENDPOINT, PUBLIC_BASE_URL, REGION, SECRET_KEY

PART_SIZE = 5 * MiB
MULTIPART_THRESHOLD = 6 * MiB


def main(port: str, work_dir: str, key: str, source: str, parts_before_kill: str) -> None:
    # One part at a time: the parts stored when the kill comes are exactly the first ones.
    storage = TosStorage(bucket=BUCKET, endpoint=ENDPOINT, region=REGION,
                         access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                         public_base_url=PUBLIC_BASE_URL, work_dir=Path(work_dir),
                         proxy=("127.0.0.1", int(port)), part_size=PART_SIZE,
                         multipart_threshold=MULTIPART_THRESHOLD, part_concurrency=1)
    stored: list[int] = []

    def on_part(length: int) -> None:
        stored.append(length)
        if len(stored) == int(parts_before_kill):
            os.kill(os.getpid(), signal.SIGKILL)

    storage.put_file(key, Path(source), on_part=on_part)
    sys.exit("the upload finished before the kill")


if __name__ == "__main__":
    main(*sys.argv[1:])
