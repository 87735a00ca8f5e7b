"""What every Python suite shares (tests/integration, broadcast, rpc,
sandbox): the `server` fixture, logs on failure, a per-test time bound,
load tests skipped under valgrind, and the readiness summary.

Run a suite with:  /usr/bin/python3 -m pytest tests/<suite>
(meson test -C build --suite <suite> runs it through tests/run-suite).

Environment:
  WS_BIN_DIR    build directory (default: build/ in this repository);
                servers are at $WS_BIN_DIR/servers/<short>/<name>, e.g.
                servers/echo/ws-echo
  WS_VALGRIND=1 run every server under valgrind (timeouts x10; tests
                marked `heavy` are skipped)

`server(name, *flags, ...)` starts a server on a free 127.0.0.1 port, waits
for the readiness newline on --notify-fd (no sleeps), logs its output to a
file shown when the test fails, and on teardown sends SIGTERM and checks
the exit status and that the log holds no sanitizer or valgrind report.
The helpers are the package tests/lib (`from lib.server import Server`).
"""

import os
import signal
import statistics
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import paths  # noqa: E402
from lib.proc import SCALE, VALGRIND, ensure_user  # noqa: E402
from lib.server import READY_TIMES, Server  # noqa: E402
from lib.wsclient import close_all  # noqa: E402

TEST_TIMEOUT = 120.0 * (5 if VALGRIND else 1)

# As root, ws-rpc and ws-sandbox-run run commands as this user
# (docs/security.md); the image and ./dev create it.
COMMAND_USER = "ws-exec"


# ------------------------------------------------------------------------------
# fixtures

@pytest.fixture
def server(request, tmp_path):
    """Factory: server(name="ws-echo", *flags, env=None, expect_exit=0,
    host="127.0.0.1", port=None, notify=True, preexec=None, cls=Server, **kw)
    -> a started Server (of class `cls`, given **kw)."""
    started = []
    request.node._ws_servers = started

    def start(name="ws-echo", *args, cls=Server, **kw):
        paths.require_binary(name)
        log = tmp_path / ("%s-%d.log" % (name, len(started)))
        s = cls(name, args, log_path=log, **kw)
        started.append(s)
        return s.start()

    yield start
    for s in started:
        s.close_clients()
    close_all()
    problems = []
    for s in started:
        problems += s.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def command_user():
    """The commands' user exists (created as a system user, no home, no
    login, when it is missing and we are root)."""
    if os.geteuid() == 0:
        ensure_user(COMMAND_USER)
    return COMMAND_USER


# ------------------------------------------------------------------------------
# hooks: logs on failure, a per-test time bound, readiness summary

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in getattr(item, "_ws_servers", []):
            rep.sections.append(("server log: %s port %s" % (s.name, s.port), s.log_tail()))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time bound")


def _bounded(item):
    marker = item.get_closest_marker("ws_timeout")
    limit = (marker.args[0] * SCALE) if marker else TEST_TIMEOUT
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    return old


def _unbound(old):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = _bounded(item)
    try:
        yield
    finally:
        _unbound(old)


# fixtures' set-up (a server's start) has the same bound as the test body
pytest_runtest_setup = pytest_runtest_call


def pytest_configure(config):
    config.addinivalue_line("markers", "ws_timeout(seconds): time bound for one test phase")
    config.addinivalue_line("markers", "heavy: load test, skipped under WS_VALGRIND=1")


def pytest_collection_modifyitems(config, items):
    if not VALGRIND:
        return
    skip = pytest.mark.skip(reason="load test: too slow under valgrind")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not READY_TIMES:
        return
    secs = [s for _, s in READY_TIMES]
    terminalreporter.write_sep("-", "server readiness (spawn -> notify newline)")
    terminalreporter.write_line(
        "%d starts: min %.1f ms, median %.1f ms, max %.1f ms%s"
        % (len(secs), min(secs) * 1e3, statistics.median(secs) * 1e3, max(secs) * 1e3,
           " (under valgrind)" if VALGRIND else ""))
