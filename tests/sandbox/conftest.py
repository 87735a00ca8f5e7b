"""Fixtures for the sandbox tests: ws-sandbox-run, the escape probes, the
small C helpers and a sibling process to attack.

Run with:  /usr/bin/python3 -m pytest tests/sandbox

Environment:
  WS_BIN_DIR  build directory (default: build/ in this repository):
              ws-sandbox-run is servers/sandbox-run/ws-sandbox-run, ws-echo
              servers/echo/ws-echo, the helpers tests/sandbox/{int80,sandbox-stack}

Every command runs with a subprocess timeout; limits in the bomb tests are
set low so that nothing here can exhaust the machine. Only loopback is used.
The shared fixtures (`server`, `command_user`) and hooks are
tests/conftest.py's; process helpers are tests/lib/proc.py.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import uuid

import pytest

from lib import paths
from lib.proc import pid_alive as alive  # noqa: F401 (the tests' name)
from lib.proc import processes_with_env, wait_gone  # noqa: F401

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "probe.py")) as f:
    PROBE_SOURCE = f.read()

SANDBOX_RUN = paths.binary_path("ws-sandbox-run")
ECHO = paths.binary_path("ws-echo")
INT80 = paths.build_path("tests", "sandbox", "int80")
STACK = paths.build_path("tests", "sandbox", "sandbox-stack")

SIGSYS_EXIT = 128 + signal.SIGSYS

# As root, commands run as this user unless told otherwise (docs/security.md).
COMMAND_USER = "ws-exec"
# The escape tests that compare a profile with `none` run as root, so that
# the filter (not the missing privilege) is what refuses the call.
ROOT = ["--run-as-self"]


@pytest.fixture(scope="session", autouse=True)
def _command_user(command_user):
    """The commands' user exists: the image and ./dev create it; so does
    this suite when it is missing."""
    return command_user


def need(path):
    """path, when it is built; otherwise skips the test."""
    return paths.require(path)


def run(options, command, timeout=30, env=None, **kw):
    """ws-sandbox-run OPTIONS -- COMMAND, to completion. Returns the
    CompletedProcess with text stdout/stderr."""
    cmd = [need(SANDBOX_RUN)] + list(options) + ["--"] + list(command)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/",
                          stdin=subprocess.DEVNULL, env=env, **kw)


def probe(options, name, *args, timeout=30):
    """Runs one probe.py attempt under ws-sandbox-run; returns (status, output)."""
    r = run(options, [PY, "-c", PROBE_SOURCE, name] + [str(a) for a in args],
            timeout=timeout)
    return r.returncode, r.stdout.strip(), r.stderr


def marked_env():
    """An environment carrying a unique marker, and the marker: every
    process started with it inherits it, so leftovers can be found."""
    mark = "WS_SANDBOX_TEST_MARK=%s" % uuid.uuid4().hex
    env = dict(os.environ)
    key, value = mark.split("=", 1)
    env[key] = value
    return env, mark.encode()


def marked_processes(mark):
    """Pids of live (not zombie) processes whose environment holds mark."""
    return processes_with_env(mark)


@pytest.fixture
def sibling():
    """A root process outside the sandbox (a `sleep`), to attack; its pid."""
    p = subprocess.Popen(["sleep", "120"], start_new_session=True)
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def shared_dir():
    """A fresh directory under /tmp that every user may enter and write."""
    d = tempfile.mkdtemp(prefix="ws-sandbox-test-", dir="/tmp")
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)
