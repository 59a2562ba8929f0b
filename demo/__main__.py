"""``make demo``: the whole cutover on sample data, with nothing to configure.

Generates a sample dev database and uploads folder, starts a throwaway PostgreSQL and
the local TOS server, moves the files before the freeze (the presync), runs the cutover
with ``alembic upgrade head`` (which reads only what changed since), verifies it (every
rewritten URL fetched as the app fetches it: the bucket is public-read and the server
serves it at ``http://127.0.0.1:<port>/<key>``, as a CDN bound to the bucket), shows
a few rewritten paths, rolls everything back with ``alembic downgrade`` (showing the
paths restored), and stops what it started. Everything it writes is under work/demo/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa

from devtools.postgres_server import running_server
from devtools.sample import UPLOADS_ALIAS, generate_dev_database
from devtools.tos_server import TosServer

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = Path("work") / "demo"
ROWS = 600
BUCKET = "meeting-agent-demo"
ACCESS_KEY, SECRET_KEY = "AKLT-demo", "demo-secret-key"
SHOWN_ROWS = 3


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(args: Sequence[str], env: dict[str, str]) -> None:
    """Run a command as the operator would; stop the demo if it fails."""
    print(f"$ {' '.join(args)}", flush=True)
    done = subprocess.run(args, env={**os.environ, **env}, cwd=Path.cwd())
    if done.returncode != 0:
        raise SystemExit(f"demo: '{' '.join(args)}' failed with exit code {done.returncode}")


def alembic(*args: str) -> list[str]:
    return [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), *args]


def show_paths(url: str, title: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = [(str(k), v) for k, v in conn.execute(sa.text(
            "SELECT id, audio_path FROM tasks WHERE audio_path IS NOT NULL "
            f"ORDER BY created_at, id LIMIT {SHOWN_ROWS}"))]
    engine.dispose()
    print(title)
    for key, value in rows:
        print(f"  tasks {key[:8]}…  audio_path = {value}")
    return rows


def cutover_environment(workspace: Path, database_url: str, tos_port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "SOURCE_DATABASE_URL": f"sqlite:///{workspace / 'meeting_agent.db'}",
        "UPLOADS_DIR": str(workspace / "uploads"),
        "UPLOADS_PATH_ALIASES": UPLOADS_ALIAS,
        "WORK_DIR": str(workspace / "work"),
        "REPORTS_DIR": str(workspace / "reports"),
        "STORAGE_PROVIDER": "tos",
        "STORAGE_BUCKET": BUCKET,
        "STORAGE_REGION": "cn-beijing",
        "STORAGE_ENDPOINT": "http://tos-cn-beijing.volces.com",
        "STORAGE_ACCESS_KEY": ACCESS_KEY,
        "STORAGE_SECRET_KEY": SECRET_KEY,
        "STORAGE_PROXY": f"http://127.0.0.1:{tos_port}",
        # 127.0.0.1 is bound to the bucket (a custom domain, as a CDN would be): the URLs
        # the cutover writes are fetched there by make verify, with no proxy.
        "STORAGE_PUBLIC_BASE_URL": f"http://127.0.0.1:{tos_port}",
        "ENV": "",
    }


def main() -> int:
    workspace = WORKSPACE.resolve()
    shutil.rmtree(workspace, ignore_errors=True)
    workspace.mkdir(parents=True)

    step(f"Sample dev data: {workspace / 'meeting_agent.db'} and {workspace / 'uploads'}")
    counts = generate_dev_database(workspace / "meeting_agent.db", rows=ROWS,
                                   uploads_dir=workspace / "uploads")
    print("  " + ", ".join(f"{table} {count}" for table, count in counts.items()))

    step("Starting a throwaway PostgreSQL and the local TOS server")
    with running_server() as postgres, postgres.database("meeting_agent") as url, \
            TosServer(workspace / "bucket", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                      buckets=[BUCKET], bucket_acls={BUCKET: "public-read"},
                      domains={"127.0.0.1": BUCKET}) as tos:
        print(f"  PostgreSQL on 127.0.0.1:{postgres.port}, the local TOS server on {tos.url}: "
              "every storage request goes to it (STORAGE_PROXY), signed for the endpoint "
              "named below; nothing leaves this machine")
        env = cutover_environment(workspace, url, tos.port)

        step("Before the freeze: make presync (the files go up while the app still runs)")
        run([sys.executable, "-m", "data_migrations.commands.presync"], env)

        step("The cutover: alembic upgrade head (schema, rows, files changed since the "
             "presync, paths)")
        run(alembic("upgrade", "head"), env)

        step("Verify: rows and checksums, sequences, every object, every URL fetched "
             "as the app does")
        run([sys.executable, "-m", "data_migrations.commands.verify"], env)
        rewritten = show_paths(url, "Rewritten paths:")

        step("Roll back the path rewrite: alembic downgrade 0003")
        run(alembic("downgrade", "0003"), env)
        restored = show_paths(url, "Restored paths:")
        if [k for k, _ in restored] != [k for k, _ in rewritten]:
            raise SystemExit("demo: the restored rows are not the rewritten ones")

        step("Roll back everything: alembic -x purge_objects=true downgrade base")
        run(alembic("-x", "purge_objects=true", "downgrade", "base"), env)

    step("Done: PostgreSQL and the TOS server are stopped; the files are under "
         f"{workspace}")
    # The page verify left on the cutover it checked: open it in a browser.
    [page] = (workspace / "reports").glob("cutover-*.html")
    print(f"The cutover's report page: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
