"""Fixtures for sandbox-ws integration tests.

Run with:  /usr/bin/python3 -m pytest tests/integration

The `server` fixture, the per-test time bound (`ws_timeout`), logs on
failure and the readiness summary are tests/conftest.py's; the helpers are
tests/lib (wsraw.py is lib.wsclient under its old name).
"""

import pytest


@pytest.fixture
def echo(server):
    """ws-echo with its defaults (on 127.0.0.1, a free port)."""
    return server("ws-echo")
