"""Fixtures for the sandbox tests: ws-sandbox-run, the escape probes, the
small C helpers and a sibling process to attack.

Run with:  /usr/bin/python3 -m pytest tests/sandbox

Environment:
  WS_BIN_DIR  build directory (default /work/main/build): ws-sandbox-run is
              servers/sandbox-run/ws-sandbox-run, ws-echo servers/echo/ws-echo,
              the helpers tests/sandbox/{int80,sandbox-stack}

Every command runs with a subprocess timeout; limits in the bomb tests are
set low so that nothing here can exhaust the machine. Only loopback is used.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

BIN_DIR = os.environ.get("WS_BIN_DIR", "/work/main/build")
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "probe.py")) as f:
    PROBE_SOURCE = f.read()

SANDBOX_RUN = os.path.join(BIN_DIR, "servers", "sandbox-run", "ws-sandbox-run")
ECHO = os.path.join(BIN_DIR, "servers", "echo", "ws-echo")
INT80 = os.path.join(BIN_DIR, "tests", "sandbox", "int80")
STACK = os.path.join(BIN_DIR, "tests", "sandbox", "sandbox-stack")

SIGSYS_EXIT = 128 + signal.SIGSYS

# As root, commands run as this user unless told otherwise (docs/security.md).
COMMAND_USER = "ws-exec"
# The escape tests that compare a profile with `none` run as root, so that
# the filter (not the missing privilege) is what refuses the call.
ROOT = ["--run-as-self"]


@pytest.fixture(scope="session", autouse=True)
def command_user():
    """The commands' user exists: the image and ./dev create it; so does
    this suite (a system user, no home, no login) when it is missing."""
    import pwd
    try:
        pwd.getpwnam(COMMAND_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        COMMAND_USER], check=True, timeout=30)
    return COMMAND_USER


def need(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("%s is not built (build it, or point WS_BIN_DIR at the build "
                    "directory)" % path)
    return path


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
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                env = f.read()
            with open("/proc/%s/stat" % entry) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if mark in env.split(b"\0") and state != "Z":
            found.append(int(entry))
    return found


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


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
