"""Process harness for sandbox-ws integration tests: find, start, stop and
inspect server binaries (used by conftest.py's fixtures and by tests that
run a binary to completion)."""


import os
import select
import signal
import socket
import subprocess
import time

import pytest

import wsraw

BIN_DIR = os.environ.get("WS_BIN_DIR", "/work/main/build")
VALGRIND = wsraw.VALGRIND
SCALE = wsraw.SCALE
READY_TIMEOUT = 10.0 * (6 if VALGRIND else 1)
STOP_TIMEOUT = 15.0 * (4 if VALGRIND else 1)
TEST_TIMEOUT = 120.0 * (5 if VALGRIND else 1)

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
)

READY_TIMES = []  # (name, seconds) for the terminal summary


def binary_path(name):
    short = name[3:] if name.startswith("ws-") else name
    return os.path.join(BIN_DIR, "servers", short, name)


def require_binary(name):
    path = binary_path(name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip("%s is not built: %s is missing (build it, or point WS_BIN_DIR "
                    "at the build directory)" % (name, path))
    return path


def free_port(host="127.0.0.1"):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host not in ("127.0.0.1", "::1") and ":" not in host and not host[0].isdigit():
        host = "127.0.0.1"  # a name: any free loopback port will do
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The test runner's environment without any server variable (WS_*,
    NOTIFY_SOCKET), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WS_") and k != "NOTIFY_SOCKET"}
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if VALGRIND:
        # valgrind cannot run seccomp(2) (syscall 317): the server's own
        # seccomp filter must be off under it.
        env["WS_NO_SELF_SANDBOX"] = "1"
    if extra:
        env.update(extra)
    return env


def command(path, args, valgrind_log=None):
    cmd = [path] + list(args)
    if VALGRIND:
        vg = ["valgrind", "--error-exitcode=99", "--leak-check=full",
              "--errors-for-leak-kinds=definite", "--trace-children=no"]
        if valgrind_log:
            vg.append("--log-file=%s" % valgrind_log)
        cmd = vg + cmd
    return cmd


def sanitizer_findings(text):
    found = [p for p in SANITIZER_PATTERNS if p in text]
    if VALGRIND and "ERROR SUMMARY:" in text and "ERROR SUMMARY: 0 errors" not in text:
        found.append("valgrind errors")
    return found


def run_once(name, args, env=None, timeout=10.0, tmp_path=None):
    """Run a server binary to completion (for bad-flag / --help tests).
    Returns (returncode, stdout, stderr, valgrind_log_text)."""
    path = require_binary(name)
    vlog = None
    if VALGRIND and tmp_path is not None:
        vlog = str(tmp_path / ("valgrind-%s-%d.log" % (name, time.monotonic_ns())))
    p = subprocess.run(command(path, args, vlog), stdin=subprocess.DEVNULL,
                       capture_output=True, env=clean_env(env),
                       timeout=timeout * (6 if VALGRIND else 1))
    vtext = ""
    if vlog and os.path.exists(vlog):
        with open(vlog, errors="replace") as f:
            vtext = f.read()
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), vtext


class ServerError(AssertionError):
    pass


class Server:
    """One running server process."""

    def __init__(self, name, args, env, log_path, expect_exit=0, host="127.0.0.1",
                 port=None, notify=True, preexec=None):
        self.name = name
        self.preexec = preexec  # run in the child before exec (e.g. drop to a uid)
        self.args = list(args)
        self.env = dict(env or {})
        self.log_path = str(log_path)
        self.vlog_path = self.log_path + ".valgrind"
        self.expect_exit = expect_exit  # None = any status
        self.host = host
        self.fixed_port = port
        self.notify = notify
        self.proc = None
        self.port = None
        self.ready_seconds = None
        self.notify_fd_r = None
        self.returncode = None
        self.cmd = None
        self.hung = False

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        path = require_binary(self.name)
        last_error = None
        for _attempt in range(3):
            self.port = self.fixed_port if self.fixed_port is not None else free_port(self.host)
            try:
                self._start_once(path)
                return self
            except ServerError as e:
                last_error = e
                self.expect_exit = None  # already reported by this error
                # 111 = a start-up system call failed (probably the port was
                # taken between free_port() and bind): try another port.
                if self.fixed_port is not None or self.returncode != 111:
                    raise
        raise last_error

    def _start_once(self, path):
        args = ["--host", self.host, "--port", str(self.port)] + self.args
        r = w = None
        if self.notify:
            r, w = os.pipe()
            args += ["--notify-fd", str(w)]
        self.cmd = command(path, args, self.vlog_path)
        with open(self.log_path, "ab") as log:
            log.write(("### %s\n" % " ".join(self.cmd)).encode())
            log.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                pass_fds=(w,) if w is not None else (), env=clean_env(self.env),
                start_new_session=True, preexec_fn=self.preexec)
        self.returncode = None
        if w is None:
            return
        os.close(w)
        self.notify_fd_r = r
        deadline = t0 + READY_TIMEOUT
        got = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise ServerError("%s did not write the readiness newline within %.0fs\n%s"
                                  % (self.name, READY_TIMEOUT, self.log_tail()))
            ready, _, _ = select.select([r], [], [], remaining)
            if not ready:
                continue
            data = os.read(r, 64)
            if data == b"":
                # The server closed the notify fd without "\n" (or exited).
                try:
                    self.returncode = self.proc.wait(timeout=5 * SCALE)
                except subprocess.TimeoutExpired:
                    self._kill()
                os.close(r)
                self.notify_fd_r = None
                raise ServerError("%s closed --notify-fd without a newline (got %r); exit "
                                  "status %r\n%s" % (self.name, got, self.returncode,
                                                     self.log_tail()))
            got += data
            if b"\n" in got:
                break
        self.ready_seconds = time.monotonic() - t0
        READY_TIMES.append((self.name, self.ready_seconds))
        assert got == b"\n", "notify fd got %r, expected exactly a newline" % got

    def notify_fd_closed(self, timeout=2.0):
        """True when the readiness fd reached EOF (the server closed it)."""
        r = self.notify_fd_r
        if r is None:
            return True
        ready, _, _ = select.select([r], [], [], t(timeout))
        if not ready:
            return False
        data = os.read(r, 64)
        assert data == b"", "more data on the notify fd: %r" % data
        return True

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the status or raises subprocess.TimeoutExpired."""
        self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.returncode = self.proc.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the server and wait for it; returns the exit status.
        Kills it (and reports a failure later) if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self.hung = True
        self.returncode = self.proc.returncode
        return self.returncode

    def finish(self):
        """Teardown: stop if running; return a list of problems."""
        problems = []
        self.hung = False
        if self.proc is None:
            return problems
        rc = self.stop()
        if self.notify_fd_r is not None:
            os.close(self.notify_fd_r)
            self.notify_fd_r = None
        if self.hung:
            problems.append("%s (pid %d) did not exit within %.0fs of SIGTERM; killed"
                            % (self.name, self.proc.pid, STOP_TIMEOUT))
        elif self.expect_exit is not None and rc != self.expect_exit:
            problems.append("%s exited with status %r, expected %r"
                            % (self.name, rc, self.expect_exit))
        found = sanitizer_findings(self.log_text())
        if found:
            problems.append("%s log contains a sanitizer/valgrind report: %s"
                            % (self.name, ", ".join(found)))
        if problems:
            problems.append(self.log_tail())
        return problems

    # -- logs -------------------------------------------------------------------
    def log_text(self):
        text = ""
        for p in (self.log_path, self.vlog_path):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text

    def stderr_text(self):
        """The server's own stdout/stderr (without valgrind's log)."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_tail(self, max_chars=30000):
        text = self.log_text()
        if len(text) > max_chars:
            text = "...[%d chars cut]...\n" % (len(text) - max_chars) + text[-max_chars:]
        return "---- %s log (%s) ----\n%s---- end of log ----" % (self.name, self.log_path, text)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "ws://%s:%d%s" % (host, self.port, path)


def t(seconds):
    return wsraw.t(seconds)


