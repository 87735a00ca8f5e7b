"""One running server binary: started on a loopback port, ready when it
writes the newline to --notify-fd (never a sleep), its stdout/stderr in a
log file; at the end SIGTERM, an exit-status check and a scan of the log for
sanitizer and valgrind reports.

    s = Server("ws-echo", ["--max-message", "1k"], log_path=tmp_path / "echo.log").start()
    ...
    problems = s.finish()       # [] when it exited as expected, cleanly

tests/conftest.py's `server` fixture does this for a test, and fails it on
any problem.
"""

import os
import re
import select
import signal
import subprocess
import time

from lib import paths
from lib.proc import EXIT_SYSTEM, VALGRIND, clean_env, command, free_port, rss_kib, \
    sanitizer_findings, t
from lib.proc import run_once as _run_once

READY_TIMEOUT = 10.0 * (6 if VALGRIND else 1)
STOP_TIMEOUT = 20.0 * (4 if VALGRIND else 1)

READY_TIMES = []  # (name, seconds from spawn to the readiness newline): for the summary


class ServerError(AssertionError):
    """The server did not start, or stopped in a way it should not have."""


ServerDied = ServerError


def run_once(name, args, env=None, timeout=10.0, tmp_path=None):
    """Run server `name` to completion (bad flags, --help...). Returns
    (returncode, stdout, stderr, valgrind_log_text)."""
    return _run_once(paths.require_binary(name), args, env=env, timeout=timeout,
                     tmp_path=tmp_path)


class Server:
    """One server process.

    port: None picks a free port here (and another when the start fails with
    exit 111, the port having been taken meanwhile); 0 lets the server pick
    and reads the port back from its `listen` log line; a number is used as
    it is. expect_exit: the exit status finish() wants (None: any).
    """

    def __init__(self, name, args=(), env=None, log_path=None, expect_exit=0,
                 host="127.0.0.1", port=None, notify=True, preexec=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.env = dict(env or {})
        self.log_path = str(log_path)
        self.vlog_path = self.log_path + ".valgrind"
        self.expect_exit = expect_exit
        self.host = host
        self.fixed_port = port
        self.notify = notify
        self.preexec = preexec  # run in the child before exec (e.g. drop to a uid)
        self.proc = None
        self.port = None
        self.ready_seconds = None
        self.notify_fd_r = None
        self.returncode = None
        self.cmd = None
        self.hung = False
        self.killed = False     # by kill9(), on purpose: finish() checks nothing
        self.finished = False

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        path = paths.require_binary(self.name)
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
                if self.fixed_port is not None or self.returncode != EXIT_SYSTEM:
                    raise
        raise last_error

    def _start_once(self, path):
        args = ["--host", self.host, "--port", str(self.port)] + self.args
        r = w = None
        if self.notify:
            r, w = os.pipe()
            args += ["--notify-fd", str(w)]
        self.cmd = command(path, args, self.vlog_path if VALGRIND else None)
        with open(self.log_path, "ab") as log:
            log_start = log.tell()  # a reused log: the port is in this run's lines
            log.write(("### %s\n" % " ".join(self.cmd)).encode())
            log.flush()
            t0 = time.monotonic()
            try:
                self.proc = subprocess.Popen(
                    self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(w,) if w is not None else (), env=clean_env(self.env),
                    start_new_session=True, preexec_fn=self.preexec)
            except BaseException:
                if w is not None:
                    os.close(r)
                    os.close(w)
                raise
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
                    self.returncode = self.proc.wait(timeout=t(5))
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
        if self.port == 0:
            self.port = self._listen_port(log_start)

    def _listen_port(self, log_start):
        with open(self.log_path, "rb") as f:
            f.seek(log_start)
            mine = f.read().decode(errors="replace")
        m = re.search(r"listen server=%s host=\S+ port=(\d+)" % re.escape(self.name), mine)
        if not m:
            raise ServerError("%s: no listen line in the log\n%s" % (self.name, self.log_tail()))
        return int(m.group(1))

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

    def kill9(self):
        """SIGKILL on purpose (a crash to recover from): finish() then checks
        neither the exit status nor the log."""
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=t(10))
        self.returncode = self.proc.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the server and wait for it; returns the exit status.
        Kills it (and finish() reports it) if it does not exit in time."""
        return self._signal_and_wait(sig, timeout)

    def _signal_and_wait(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
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

    def close_clients(self):
        """Teardown, before the clients still open are dropped: a subclass
        that keeps its clients closes them here as it sees fit."""

    def finish(self):
        """Stop if running (SIGTERM); a list of problems, [] when the server
        exited as expected and its log holds no sanitizer or valgrind report.
        Checks once: later calls return []."""
        if self.proc is None or self.finished or self.killed:
            self.finished = self.proc is not None
            self._close_notify_fd()
            return []
        self.finished = True
        problems = []
        rc = self._signal_and_wait()
        self._close_notify_fd()
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

    def _close_notify_fd(self):
        if self.notify_fd_r is not None:
            os.close(self.notify_fd_r)
            self.notify_fd_r = None

    # -- logs and state -----------------------------------------------------------
    def log_text(self):
        """The server's log and valgrind's."""
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
        return rss_kib(self.proc.pid)

    def url(self, path="/"):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "ws://%s:%d%s" % (host, self.port, path)
