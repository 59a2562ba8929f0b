"""The failure boundary: an expected failure is one FAILED line and exit 2 for a command, one
CommandError for an Alembic run; anything else keeps its traceback. A SIGINT or SIGTERM is
its own line and exit 128 + the signal, whatever the run unwinds as."""

from __future__ import annotations

import os
import signal
import time

import pytest
import sqlalchemy as sa
from alembic.util import CommandError

from data_migrations.run import failure, interrupts
from data_migrations.run.errors import DataMigrationError
from settings import ConfigError
from storage import StorageError


def driver_error(message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, Exception(message))


def raising(error: Exception) -> int:
    raise error


def test_a_command_that_succeeds_keeps_its_exit_code() -> None:
    assert failure.exit_code(lambda: 1) == 1


@pytest.mark.parametrize("error", [ConfigError("DATABASE_URL is not set"),
                                   StorageError("DATABASE_URL is not set"),
                                   DataMigrationError("DATABASE_URL is not set")],
                         ids=lambda error: type(error).__name__)
def test_an_expected_failure_is_one_failed_line_and_exit_2(
    error: Exception, capfd: pytest.CaptureFixture[str]
) -> None:
    assert failure.exit_code(lambda: raising(error), prefix="adopt: ") == 2
    assert capfd.readouterr().err.splitlines() == ["FAILED: adopt: DATABASE_URL is not set"]


def test_an_unreachable_database_is_the_drivers_first_line(
    capfd: pytest.CaptureFixture[str]
) -> None:
    error = driver_error("connection refused\n\tIs the server running on that host?\n")
    assert failure.exit_code(lambda: raising(error)) == 2
    assert capfd.readouterr().err.splitlines() == ["FAILED: cannot connect: connection refused"]


def test_a_command_may_expect_more() -> None:
    assert failure.exit_code(lambda: raising(ValueError("bad")), also=(ValueError,)) == 2
    with pytest.raises(ValueError):
        failure.exit_code(lambda: raising(ValueError("bad")))


def test_a_bug_keeps_its_traceback() -> None:
    with pytest.raises(KeyError):
        failure.exit_code(lambda: raising(KeyError("bug")))


def test_connect_names_the_masked_url_and_the_reason() -> None:
    engine = sa.create_engine("postgresql+psycopg2://cutover:s3cret@127.0.0.1:9/meetings",
                              poolclass=sa.pool.NullPool)
    with pytest.raises(ConfigError) as refused:
        failure.connect(engine)
    message = str(refused.value)
    assert message.startswith(
        "cannot connect to postgresql+psycopg2://cutover:***@127.0.0.1:9/meetings: ")
    assert "s3cret" not in message
    assert "\n" not in message


def test_an_alembic_run_gets_the_message_as_a_command_error() -> None:
    with pytest.raises(CommandError) as raised, failure.as_alembic_failure():
        raise DataMigrationError("0002: 3 rows refused")
    assert str(raised.value) == "0002: 3 rows refused"
    assert raised.value.__suppress_context__  # no traceback of the DataMigrationError
    with pytest.raises(KeyError), failure.as_alembic_failure():
        raise KeyError("bug")


def terminated() -> int:
    """Send this process SIGTERM and wait for it to arrive (it does at once)."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    raise AssertionError("SIGTERM did not interrupt")


def interrupted_then(error: Exception) -> int:
    """SIGTERM, unwound as ``error`` (as psycopg2 turns it into QueryCanceled)."""
    try:
        return terminated()
    except interrupts.Interrupted:
        raise error from None


@pytest.mark.parametrize("body", [terminated, lambda: interrupted_then(ConfigError("late"))],
                         ids=["as itself", "as an expected failure"])
def test_an_interrupted_command_is_its_line_and_128_plus_the_signal(
    caplog: pytest.LogCaptureFixture, body: object,
) -> None:
    with pytest.raises(SystemExit) as ended:
        failure.command("make sql", "no SQL file was written", body)  # type: ignore[arg-type]

    assert ended.value.code == 128 + signal.SIGTERM
    assert [r.getMessage() for r in caplog.records] == [
        "interrupted during make sql; no SQL file was written; run the same command again"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # given back


def test_an_interrupted_alembic_run_names_the_command_outside_a_revision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with pytest.raises(SystemExit) as ended, failure.alembic_run("alembic upgrade head"):
        terminated()

    assert ended.value.code == 128 + signal.SIGTERM
    assert [r.getMessage() for r in caplog.records] == [
        "interrupted during alembic upgrade head; nothing of this step was committed; run "
        "the same command again"]
