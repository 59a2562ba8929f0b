"""make bench-online's revisions: each operation's files, added to a copy of the script
directory, load and make one chain from 0001 to a single head. No database: what the bench
measures is seen by running it."""

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from bench.online import OPERATIONS, Operation, script_copy


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.name)
def test_the_revisions_make_one_chain(operation: Operation, tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(Config(str(script_copy(tmp_path, operation))))
    added = [rev for rev, _ in operation.revisions()]
    chain = [s.revision for s in script.walk_revisions()]
    assert script.get_heads() == [added[-1]]
    assert chain == [*reversed(added), "0004", "0003", "0002", "0001"]
