"""Fixtures for the ws-broadcast tests.

Run with:  /usr/bin/python3 -m pytest tests/broadcast

Environment:
  WS_BIN_DIR    build directory (default /work/main/build); the server is
                $WS_BIN_DIR/servers/broadcast/ws-broadcast
  WS_VALGRIND=1 run the server under valgrind (longer timeouts); the load
                tests (marked `heavy`) are skipped then

`bc(*flags, db=None, port=0)` starts the server on 127.0.0.1 with
--notify-fd (waits for the readiness newline, never sleeps) and a database
in the test's tmp dir, logs stderr to a file shown when the test fails, and
on teardown sends SIGTERM and checks exit status 0 and that the log holds no
sanitizer or valgrind report.
"""

import os
import signal
import statistics
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bchelp  # noqa: E402

READY = []
TEST_TIMEOUT = 120.0 * (5 if bchelp.VALGRIND else 1)


def _require_binary():
    if not (os.path.isfile(bchelp.BINARY) and os.access(bchelp.BINARY, os.X_OK)):
        pytest.skip("ws-broadcast is not built: %s is missing (build it, or point "
                    "WS_BIN_DIR at the build directory)" % bchelp.BINARY)


@pytest.fixture
def bc(request, tmp_path):
    """Factory: bc(*flags, db=None, port=0, expect_exit=0) -> bchelp.Server."""
    _require_binary()
    started = []
    request.node._bc_servers = started

    def start(*args, db=None, port=0, expect_exit=0):
        db = db if db is not None else tmp_path / "bc.db"
        s = bchelp.Server(args, db, tmp_path / ("server-%d.log" % len(started)), port=port,
                          expect_exit=expect_exit)
        started.append(s)
        s.start()
        READY.append(s.ready_seconds)
        return s

    yield start
    bchelp.close_all()
    problems = []
    for s in started:
        problems += s.stop()
    if problems:
        pytest.fail("\n".join(problems + [s.log_tail() for s in started]), pytrace=False)


@pytest.fixture
def binary():
    _require_binary()
    return bchelp.BINARY


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in getattr(item, "_bc_servers", []):
            rep.sections.append(("ws-broadcast log (port %s)" % s.port, s.log_tail()))


class TestTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TestTimeout("test exceeded its time bound")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    marker = item.get_closest_marker("bc_timeout")
    limit = marker.args[0] * bchelp.SCALE if marker else TEST_TIMEOUT
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_configure(config):
    config.addinivalue_line("markers", "bc_timeout(seconds): time bound for the test body")
    config.addinivalue_line("markers", "heavy: load test, skipped under WS_VALGRIND=1")


def pytest_collection_modifyitems(config, items):
    if not bchelp.VALGRIND:
        return
    skip = pytest.mark.skip(reason="load test: too slow under valgrind")
    for item in items:
        if "heavy" in item.keywords and str(item.fspath).startswith(
                os.path.dirname(os.path.abspath(__file__))):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if READY:
        terminalreporter.write_sep("-", "ws-broadcast readiness (spawn -> notify newline)")
        terminalreporter.write_line("%d starts: median %.1f ms, max %.1f ms%s" % (
            len(READY), statistics.median(READY) * 1e3, max(READY) * 1e3,
            " (valgrind)" if bchelp.VALGRIND else ""))
