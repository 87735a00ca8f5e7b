"""A real redis-server (Debian's) for the Redis engine's tests: started by
the test on a free loopback port, ready when it answers PING (polled a
bounded number of times, never a fixed sleep), with its AOF in the test's
tmp dir when asked, and ws-broadcast nodes on it."""

import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

import bchelp
from lib.http import http_get
from lib.proc import free_port, t, wait_until
from lib.server import Server

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PING_TRIES = 500


def require_redis():
    if not os.access(REDIS_SERVER, os.X_OK):
        pytest.fail("redis-server is missing: ./dev installs it (TEST_PACKAGES)", pytrace=False)


class Redis:
    def __init__(self, tmp_path, aof=False, extra=()):
        require_redis()
        self.extra = list(extra)  # more redis-server flags (--requirepass, --databases...)
        self.dir = tmp_path / ("redis-%d" % free_port())
        self.dir.mkdir()
        self.aof = aof
        self.port = free_port()
        self.proc = None
        self.log = self.dir / "redis.log"

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always", "--dir", str(self.dir), "--daemonize", "no"] + self.extra
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, start_new_session=True)
        for _ in range(PING_TRIES):
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited %s: %s"
                                     % (self.proc.returncode, self.log.read_text()[-2000:]))
            if self.ping():
                return self
            # the process has not bound yet: block on it briefly (it is what we wait for)
            try:
                self.proc.wait(timeout=0.02)
            except subprocess.TimeoutExpired:
                pass
        raise AssertionError("redis-server did not answer PING after %d tries" % PING_TRIES)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                # -NOAUTH: up, with --requirepass
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *words, auth=None):
        """One command over RESP (after AUTH auth, if given); the raw reply
        bytes (for test checks only)."""
        out = b""
        if auth is not None:
            out = self._resp(("AUTH",) + tuple(auth))
        out += self._resp(words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(out)
            reply = s.recv(1 << 20)
            if auth is not None and reply == b"+OK\r\n":
                reply = s.recv(1 << 20)
            elif auth is not None and reply.startswith(b"+OK\r\n"):
                reply = reply[5:]
            return reply

    @staticmethod
    def _resp(words):
        out = b"*%d\r\n" % len(words)
        for w in words:
            w = w if isinstance(w, bytes) else str(w).encode()
            out += b"$%d\r\n%s\r\n" % (len(w), w)
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=t(20))

    def restart(self):
        self.stop()
        return self.start()


def metrics(s):
    status, _, body = http_get(s.port, "/metrics")
    assert status == 200
    return body.decode() if isinstance(body, bytes) else body


def metric(s, name):
    for line in metrics(s).splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


def engine_up(s):
    return metric(s, "ws_broadcast_engine_up") == 1


def start_node(server, redis, *flags, url=None, env=None):
    """A ws-broadcast node on redis (or on url), once its engine reports up."""
    engine = ["--engine", url or redis.url] if url or not env or "WS_ENGINE" not in env else []
    s = server(bchelp.NAME, *engine, "--rate-limit", "0", "--ping-interval", "0",
               *flags, cls=Server, env=env)
    wait_until(lambda: engine_up(s), timeout=10, what="engine up on node %d" % s.port)
    return s


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.stop(signal.SIGKILL)


@pytest.fixture
def redis_aof(tmp_path):
    r = Redis(tmp_path, aof=True).start()
    yield r
    r.stop(signal.SIGKILL)


def elapsed(since):
    return time.monotonic() - since
