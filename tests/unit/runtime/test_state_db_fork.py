"""A forked child never closes the connections it inherited (closing one drops the parent's POSIX locks)."""

from __future__ import annotations

import os
from pathlib import Path

from agentparty.runtime import state_db as state_db_module
from agentparty.runtime.state_db import state_db


def test_a_forked_child_keeps_its_inherited_connections_and_opens_its_own(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with state_db(path, write=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    parent = state_db_module._local.connections[(os.getpid(), path)]
    pid = os.fork()
    if pid == 0:  # the child: its own connection, the parent's kept aside and open
        code = 1
        try:
            inherited_kept = any(c is parent for c in state_db_module._inherited)
            with state_db(path, write=True) as db:
                db.execute("INSERT INTO t VALUES (1)")
            code = 0 if inherited_kept and (os.getpid(), path) in state_db_module._local.connections else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with state_db(path, write=True) as db:  # the parent's connection still holds its locks and works
        db.execute("INSERT INTO t VALUES (2)")
    with state_db(path) as db:
        assert sorted(n for (n,) in db.execute("SELECT n FROM t")) == [1, 2]
