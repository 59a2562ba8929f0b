"""Database URLs as people write them: the forms that mean psycopg2 work, the drivers we do
not install are refused in one line, and a password with reserved characters is never
printed, not even in part."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from devtools.postgres_server import PostgresServer
from settings import ConfigError, mask_url
from settings.urls import parse_source_url, parse_target_url
from tests.runs import copied_users, cutover_environment, upgrade_head

ODD_PASSWORD = "Xq7@Zr9:Wmq/Kpz#v5x"
# Every piece of the password between reserved characters: none may be printed. Each has
# letters, so that none turns up in a timestamp or a count by chance.
ODD_PIECES = [piece for piece in re.split(r"[@:/#]", ODD_PASSWORD) if len(piece) > 1]
ENCODED_PASSWORD = "Xq7%40Zr9%3AWmq%2FKpz%23v5x"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_the_forms_people_write_mean_psycopg2(scheme: str) -> None:
    url = parse_target_url("DATABASE_URL", f"{scheme}://u:pw@db:5432/meetings")
    assert url.drivername == "postgresql+psycopg2"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "u", "pw", "db", 5432, "meetings")


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql+asyncpg",
                                    "postgres+pg8000"])
def test_other_drivers_are_refused_with_the_form_to_use(scheme: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_target_url("DATABASE_URL", f"{scheme}://u:secret-pw@db/meetings")
    message = str(caught.value)
    assert "DATABASE_URL" in message and "\n" not in message
    assert "postgresql:// or postgresql+psycopg2://" in message
    assert "secret-pw" not in message


@pytest.mark.parametrize("written", [
    f"postgresql://cutover:{ODD_PASSWORD}@db.internal:5432/meetings",
    "postgresql://cutover:Xq7@Zr9@db.internal:5432/meetings",
    "postgresql://cutover:Xq7@Zr9/Wm@db.internal/meetings",
])
def test_an_unencoded_reserved_character_is_refused_without_any_of_the_password(
    written: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_target_url("DATABASE_URL", written)
    message = str(caught.value)
    assert message.startswith("DATABASE_URL is not a valid database URL: percent-encode")
    assert "@ → %40, : → %3A, / → %2F, # → %23" in message
    for piece in ("Xq7", "Zr9", "Wm", *ODD_PIECES):
        assert piece not in message and piece not in mask_url(written)


def test_the_percent_encoded_password_is_read_whole() -> None:
    url = parse_target_url("DATABASE_URL",
                           f"postgresql://cutover:{ENCODED_PASSWORD}@db:5432/meetings")
    assert url.password == ODD_PASSWORD
    assert mask_url(url) == "postgresql+psycopg2://cutover:***@db:5432/meetings"


@pytest.mark.parametrize("written", ["postgresql://u:pw@db/meetings", "mysql://u:pw@db/m",
                                     "sqlite://"])
def test_the_source_speaks_of_sqlite_only(written: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_source_url("SOURCE_DATABASE_URL", written)
    message = str(caught.value)
    assert "SOURCE_DATABASE_URL must name a SQLite file, such as " \
           "sqlite:///path/to/meeting_agent.db" in message
    assert "postgresql://" not in message.split(", got ")[0]
    assert "pw" not in message


# ------------------------------------------------------------------ on the real PostgreSQL

@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_a_whole_cutover_with_each_form(scheme: str, pg_url: str, tmp_path: Path) -> None:
    written = make_url(pg_url).set(drivername=scheme).render_as_string(hide_password=False)
    result = upgrade_head(cutover_environment(tmp_path, written), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Running upgrade 0001 -> 0002" in result.stderr
    assert copied_users(pg_url) > 0


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "postgresql+asyncpg"])
def test_an_unsupported_driver_stops_before_anything(scheme: str, pg_url: str,
                                                     tmp_path: Path) -> None:
    written = make_url(pg_url).set(drivername=scheme).render_as_string(hide_password=False)
    result = upgrade_head(cutover_environment(tmp_path, written), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output
    failures = [line for line in output.splitlines() if line.startswith("FAILED:")]
    assert len(failures) == 1 and "postgresql:// or postgresql+psycopg2://" in failures[0]
    assert not sa.inspect(sa.create_engine(pg_url)).has_table("users")


@pytest.fixture
def odd_password_owner(postgres_server: PostgresServer, pg_url: str) -> Iterator[str]:
    """A role whose password holds every reserved character, allowed to create the tables
    in the test database; made and removed by the server's superuser (over its socket)."""
    role = f"odd_{uuid.uuid4().hex[:8]}"
    superuser = sa.create_engine(
        f"postgresql+psycopg2://postgres@/{make_url(pg_url).database}"
        f"?host={postgres_server.socket_dir}&port={postgres_server.port}",
        isolation_level="AUTOCOMMIT")
    with superuser.connect() as connection:
        connection.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD :pw").bindparams(
            pw=ODD_PASSWORD))
        connection.execute(sa.text(f"GRANT CREATE, USAGE ON SCHEMA public TO {role}"))
    yield role
    with superuser.connect() as connection:
        connection.execute(sa.text(f"DROP OWNED BY {role}"))
        connection.execute(sa.text(f"DROP ROLE {role}"))
    superuser.dispose()


def test_a_password_with_reserved_characters(odd_password_owner: str, pg_url: str,
                                             tmp_path: Path) -> None:
    url = make_url(pg_url)
    where = f"{url.host}:{url.port}/{url.database}"
    unencoded = f"postgresql://{odd_password_owner}:{ODD_PASSWORD}@{where}"
    refused = upgrade_head(cutover_environment(tmp_path, unencoded), tmp_path)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in output
    assert "percent-encode reserved characters in the password" in output
    for piece in ODD_PIECES:
        assert piece not in output
    encoded = f"postgresql://{odd_password_owner}:{ENCODED_PASSWORD}@{where}"
    accepted = upgrade_head(cutover_environment(tmp_path, encoded), tmp_path)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    for piece in ODD_PIECES:
        assert piece not in accepted.stdout + accepted.stderr
    as_owner = make_url(encoded).set(drivername="postgresql+psycopg2")
    assert copied_users(as_owner.render_as_string(hide_password=False)) > 0
