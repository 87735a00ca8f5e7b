"""Fixtures for the ws-broadcast tests.

Run with:  /usr/bin/python3 -m pytest tests/broadcast

`bc(*flags, db=None, port=0, env=None, expect_exit=0)` starts the server
through tests/conftest.py's `server` fixture (127.0.0.1, --notify-fd, the
log shown when a test fails, SIGTERM and checks on teardown) with a
database in the test's tmp dir; port 0 lets the server pick and reads the
port back from its listen line. Load tests are marked `heavy` (skipped
under WS_VALGRIND=1); `ws_timeout(seconds)` changes a test's time bound.
"""

import pytest

import bchelp
from lib import paths


@pytest.fixture
def bc(server, tmp_path):
    """Factory: bc(*flags, db=None, port=0, env=None, expect_exit=0) -> bchelp.BcServer."""
    paths.require_binary(bchelp.NAME)

    def start(*args, db=None, port=0, env=None, expect_exit=0):
        db = db if db is not None else tmp_path / "bc.db"
        return server(bchelp.NAME, *args, cls=bchelp.BcServer, db=db, port=port, env=env,
                      expect_exit=expect_exit)

    return start


@pytest.fixture
def binary():
    return paths.require_binary(bchelp.NAME)
