"""Shared helpers for the Python test suites (tests/integration,
tests/broadcast, tests/rpc, tests/sandbox).

    paths     the repository, the build directory (WS_BIN_DIR), binaries
    proc      timeouts, environments, valgrind, /proc inspection, users
    server    start a server binary on a free loopback port, wait on
              --notify-fd, capture its log, SIGTERM teardown with checks
    http      build, send and parse one HTTP/1.1 exchange
    wsclient  a synchronous raw RFC 6455 client (frames, masking,
              handshake, close) and a message-level client built on it

tests/conftest.py puts tests/ on sys.path, so a suite imports
`from lib.server import Server`.
"""
