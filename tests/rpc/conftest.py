"""Fixtures for the ws-rpc tests.

Run with:  /usr/bin/python3 -m pytest tests/rpc

Environment:
  WS_BIN_DIR    build directory (default /work/main/build); the server is
                $WS_BIN_DIR/servers/rpc/ws-rpc
  WS_VALGRIND=1 run the server under valgrind (longer timeouts); the tests
                marked `heavy` (floods, 200 execs, 100 pipelined) are skipped

`rpc(*flags, env=None, expect_exit=0)` starts ws-rpc on 127.0.0.1 and a free
port (--port 0, read back from the listen log line) with --notify-fd (an
os.pipe passed with pass_fds; waits for the readiness newline, never
sleeps), logs stderr to a file shown when the test fails, and on teardown
sends SIGTERM and checks exit status 0, that no child of the server is left
over, and that the log holds no sanitizer or valgrind report. Without a
--token-file in the flags it adds --no-auth.
"""

import os
import signal
import statistics
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpchelp  # noqa: E402

# As root, ws-rpc runs commands as this user (docs/security.md); the image
# and ./dev create it, and so does this suite when it is missing.
COMMAND_USER = "ws-exec"

READY = []
TEST_TIMEOUT = 120.0 * (5 if rpchelp.VALGRIND else 1)


def _require_binary():
    if not (os.path.isfile(rpchelp.BINARY) and os.access(rpchelp.BINARY, os.X_OK)):
        pytest.skip("ws-rpc is not built: %s is missing (build it, or point WS_BIN_DIR "
                    "at the build directory)" % rpchelp.BINARY)


@pytest.fixture(scope="session", autouse=True)
def command_user():
    """The commands' user exists (created as a system user if missing)."""
    if os.geteuid() == 0:
        rpchelp.ensure_user(COMMAND_USER)
    return COMMAND_USER


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
def rpc(request, tmp_path):
    """Factory: rpc(*flags, env=None, expect_exit=0, auth=False) -> rpchelp.Server."""
    _require_binary()
    started = []
    request.node._rpc_servers = started

    def start(*args, env=None, expect_exit=0):
        args = [str(a) for a in args]
        if "--token-file" not in args and not (env and "WS_TOKEN" in env):
            args.append("--no-auth")
        s = rpchelp.Server(args, tmp_path / ("server-%d.log" % len(started)), env=env,
                           expect_exit=expect_exit)
        started.append(s)
        s.start()
        READY.append(s.ready_seconds)
        return s

    yield start
    problems = []
    for s in started:
        if s.proc is not None and s.alive():
            kids = [k for k in s.children() if k[1] != "Z"]
            # commands still running at teardown are the server's to kill on
            # SIGTERM; record them to check they are gone afterwards
            s._kids_at_stop = [k[0] for k in kids]
        problems += s.stop()
        for pid in getattr(s, "_kids_at_stop", []):
            if rpchelp.pid_alive(pid):
                problems.append("child %d of ws-rpc outlived it" % pid)
    if problems:
        pytest.fail("\n".join(problems + [s.log_tail() for s in started]), pytrace=False)


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
    _require_binary()
    return rpchelp.BINARY


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in getattr(item, "_rpc_servers", []):
            rep.sections.append(("ws-rpc log (port %s)" % s.port, s.log_tail()))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time bound")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("rpc_timeout")
    limit = marker.args[0] * rpchelp.SCALE if marker else TEST_TIMEOUT
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers", "rpc_timeout(seconds): time bound for the test body")
    config.addinivalue_line("markers", "heavy: load test, skipped under WS_VALGRIND=1")


def pytest_collection_modifyitems(config, items):
    if not rpchelp.VALGRIND:
        return
    skip = pytest.mark.skip(reason="load test: too slow under valgrind")
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if "heavy" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if READY:
        terminalreporter.write_sep("-", "ws-rpc readiness (spawn -> notify newline)")
        terminalreporter.write_line("%d starts: median %.1f ms, max %.1f ms%s" % (
            len(READY), statistics.median(READY) * 1e3, max(READY) * 1e3,
            " (valgrind)" if rpchelp.VALGRIND else ""))
