"""Fixtures for the ws-rpc tests.

Run with:  /usr/bin/python3 -m pytest tests/rpc

`rpc(*flags, env=None, expect_exit=0)` starts ws-rpc through
tests/conftest.py's `server` fixture on 127.0.0.1 and a port of its
choosing (--port 0, read back from the listen log line); on teardown its
clients are closed, then SIGTERM, exit status 0, no child of the server
left over, no sanitizer or valgrind report. Without a --token-file in the
flags (or WS_TOKEN in env) it adds --no-auth. Tests marked `heavy` (floods,
200 execs, 100 pipelined) are skipped under WS_VALGRIND=1.
"""

import os

import pytest

import rpchelp
from lib import paths


@pytest.fixture(scope="session", autouse=True)
def _command_user(command_user):
    """As root, ws-rpc runs commands as ws-exec: it exists."""
    return command_user


@pytest.fixture(autouse=True)
def commands_reach_tmp_path(tmp_path):
    """Tests put scripts, working directories and output files in tmp_path:
    let the commands' user (not root) in, as a user's shared directory would."""
    path = str(tmp_path)
    os.chmod(path, 0o1777)
    parent = os.path.dirname(path)
    while parent.startswith("/tmp/") and parent != "/tmp":
        os.chmod(parent, os.stat(parent).st_mode | 0o111)
        parent = os.path.dirname(parent)


@pytest.fixture
def rpc(server):
    """Factory: rpc(*flags, env=None, expect_exit=0) -> rpchelp.RpcServer."""
    paths.require_binary(rpchelp.NAME)

    def start(*args, env=None, expect_exit=0):
        args = [str(a) for a in args]
        if "--token-file" not in args and not (env and "WS_TOKEN" in env):
            args.append("--no-auth")
        return server(rpchelp.NAME, *args, cls=rpchelp.RpcServer, env=env,
                      expect_exit=expect_exit)

    return start


@pytest.fixture
def srv(rpc):
    """ws-rpc with --no-auth and no rate limit (tests pipeline requests)."""
    return rpc("--rate-limit", "0")


@pytest.fixture
def ws(srv):
    """One connection to `srv`."""
    return srv.ws()


@pytest.fixture
def binary():
    return paths.require_binary(rpchelp.NAME)
