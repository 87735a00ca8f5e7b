"""Fixtures for sandbox-ws integration tests.

Run with:  /usr/bin/python3 -m pytest tests/integration

Environment:
  WS_BIN_DIR    build directory (default /work/main/build); servers are at
                $WS_BIN_DIR/servers/<short>/<name>, e.g. servers/echo/ws-echo
  WS_VALGRIND=1 run every server under valgrind (longer timeouts)

The `server` fixture starts a server on a free 127.0.0.1 port, waits for the
readiness newline on --notify-fd (no sleeps), logs stderr to a file that is
shown when a test fails, and on teardown sends SIGTERM and checks the exit
status and that the log holds no sanitizer or valgrind report.
"""

import os
import signal
import statistics
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wsraw  # noqa: E402
from harness import READY_TIMES, SCALE, TEST_TIMEOUT, VALGRIND, Server, require_binary  # noqa: E402


# ------------------------------------------------------------------------------
# fixtures

@pytest.fixture
def server(request, tmp_path):
    """Factory: server(name="ws-echo", *flags, env=None, expect_exit=0, ...)."""
    started = []
    request.node._ws_servers = started

    def start(name="ws-echo", *args, env=None, expect_exit=0, host="127.0.0.1",
              port=None, notify=True, preexec=None):
        require_binary(name)
        s = Server(name, args, env, tmp_path / ("%s-%d.log" % (name, len(started))),
                   expect_exit=expect_exit, host=host, port=port, notify=notify,
                   preexec=preexec)
        started.append(s)
        s.start()
        return s

    yield start
    wsraw.close_all()
    problems = []
    for s in started:
        problems += s.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def echo(server):
    """ws-echo with its defaults (on 127.0.0.1, a free port)."""
    return server("ws-echo")


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    old = _bounded(item)
    try:
        yield
    finally:
        _unbound(old)


def pytest_configure(config):
    config.addinivalue_line("markers", "ws_timeout(seconds): time bound for one test phase")


def pytest_terminal_summary(terminalreporter):
    if not READY_TIMES:
        return
    secs = [s for _, s in READY_TIMES]
    terminalreporter.write_sep("-", "server readiness (spawn -> notify newline)")
    terminalreporter.write_line(
        "%d starts: min %.1f ms, median %.1f ms, max %.1f ms%s"
        % (len(secs), min(secs) * 1e3, statistics.median(secs) * 1e3, max(secs) * 1e3,
           " (under valgrind)" if VALGRIND else ""))
