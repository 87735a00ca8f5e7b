"""What the ws-rpc tests need beyond tests/lib: the server (its clients,
children, descriptors, metrics), a client that speaks both of ws-rpc's
dialects, and the names the tests use from tests/lib.
"""

import json
import re
import struct
import time

from lib import paths
from lib.http import http_exchange, http_get, upgrade_request  # noqa: F401
from lib.proc import (EXIT_SYSTEM, EXIT_USAGE, SCALE, VALGRIND, clean_env,  # noqa: F401
                      failed_exec_status, fd_count, fd_targets, is_asan_build, pid_alive,
                      proc_children, sanitizer_findings, t, wait_until)
from lib.server import Server as BaseServer
from lib.server import run_once as _run_once
from lib.wsclient import OP_CLOSE, OP_TEXT, Closed, HandshakeRefused, MessageClient, \
    client_frame  # noqa: F401

NAME = "ws-rpc"
BINARY = paths.binary_path(NAME)

# memory bounds in the tests are for a plain build; AddressSanitizer's shadow
# memory and quarantine (or valgrind's bookkeeping) multiply RSS
MEM_SCALE = 4.0 if (VALGRIND or is_asan_build(BINARY)) else 1.0


def run_once(args, env=None, timeout=15.0, tmp_path=None):
    """Run ws-rpc to completion: (rc, stdout, stderr, valgrind_text)."""
    return _run_once(NAME, args, env=env, timeout=timeout, tmp_path=tmp_path)


def upgrade_status(port, path="/", headers=()):
    """Attempt an upgrade; return the HTTP status (101 when served)."""
    req, _ = upgrade_request(path, extra_headers=headers)
    status, _, _ = http_exchange(port, req)
    return status


class RpcServer(BaseServer):
    """ws-rpc on 127.0.0.1 and a port of its choosing, with the clients
    opened through ws(): they are closed (a close frame each) before the
    server is stopped, and no child of the server may outlive it."""

    def __init__(self, name=NAME, args=(), port=0, **kw):
        super().__init__(name, args, port=port, **kw)
        self.clients = []

    def close_clients(self):
        for c in self.clients:
            c.close()

    def finish(self, close_clients=True):
        """finish() after closing the clients (unless close_clients is False:
        then the server's drain closes them); commands still running then
        are the server's to kill on SIGTERM."""
        if close_clients:
            self.close_clients()
        kids = []
        if self.proc is not None and self.alive():
            kids = [k[0] for k in self.children() if k[1] != "Z"]
        problems = super().finish()
        problems += ["child %d of ws-rpc outlived it" % pid for pid in kids if pid_alive(pid)]
        return problems

    def children(self):
        return proc_children(self.pid)

    def zombies(self):
        return [c for c in self.children() if c[1] == "Z"]

    def fds(self):
        return fd_count(self.pid)

    def ws(self, path="/", token=None, **kw):
        c = WS.connect(self.port, path, token=token, **kw)
        self.clients.append(c)
        return c

    def get(self, path, headers=()):
        return http_get(self.port, path, headers)

    def metric(self, name, labels=""):
        status, _, body = self.get("/metrics")
        assert status == 200, status
        m = re.search(r"^%s\{[^}]*%s[^}]*\} (\d+)$" % (re.escape(name), re.escape(labels)),
                      body.decode(), re.M)
        return int(m.group(1)) if m else None


class Server(RpcServer):
    """The interface tests written before tests/lib use: Server(args,
    log_path, env=None, expect_exit=0), and stop() that finishes the server
    and returns the problems. New tests: RpcServer and finish()."""

    def __init__(self, args, log_path, env=None, expect_exit=0):
        super().__init__(NAME, args, log_path=log_path, env=env, expect_exit=expect_exit)

    def stop(self, close_clients=True):
        return self.finish(close_clients)


class WS(MessageClient):
    """A blocking WebSocket client for one connection to ws-rpc.

    Messages are decoded JSON. `recv()` takes the next message; `request()`
    sends one and returns the first reply carrying its id (others are kept in
    `backlog` for later `recv()` calls)."""

    def __init__(self, port, **kw):
        super().__init__(port, **kw)
        self.backlog = []
        self.close_code = None
        self.next_id = 1

    @classmethod
    def connect(cls, port, path="/", token=None, headers=(), timeout=10.0, rcvbuf=None):
        headers = list(headers)
        if token is not None:
            headers.append(("Authorization", "Bearer " + token))
        try:
            return cls.open(port, path, headers=headers, timeout=timeout, rcvbuf=rcvbuf)
        except HandshakeRefused as e:
            raise Closed(str(e)) from None

    def send(self, obj):
        """Sends obj as JSON text (bytes go out as they are)."""
        if isinstance(obj, (bytes, bytearray)):
            return super().send(obj)
        self.send_text(json.dumps(obj))

    def recv_frame_message(self, timeout=10.0):
        """Next data message as (opcode, bytes); answers pings; raises Closed on close."""
        op, payload = self.recv_data(timeout)
        if op == OP_CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.close(self.close_code or 1000)
            raise Closed("ws-rpc closed the connection (code %r, %r)"
                         % (self.close_code, payload[2:]))
        return op, payload

    def recv(self, timeout=10.0):
        """Next JSON message (the backlog first)."""
        if self.backlog:
            return self.backlog.pop(0)
        op, data = self.recv_frame_message(timeout)
        assert op == OP_TEXT, "ws-rpc sent a non-text message: %r" % data[:100]
        return json.loads(data.decode("utf-8"))

    def recv_timed(self, timeout=10.0):
        """(message, monotonic arrival time): no backlog, straight off the socket."""
        assert not self.backlog
        op, data = self.recv_frame_message(timeout)
        return json.loads(data.decode("utf-8")), time.monotonic()

    def expect_silence(self, seconds=0.3):
        """Assert no message arrives within `seconds`."""
        assert not self.backlog, self.backlog
        try:
            m = self.recv(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError("expected no reply, got %r" % (m,))

    def wait_for(self, pred, timeout=10.0, keep=True):
        """The first message matching pred; others go to the backlog (if keep)."""
        deadline = time.monotonic() + t(timeout)
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        while True:
            left = (deadline - time.monotonic()) / SCALE
            if left <= 0:
                raise TimeoutError("no matching message in time; backlog %r" % self.backlog[-5:])
            op, data = self.recv_frame_message(left)
            m = json.loads(data.decode("utf-8"))
            if pred(m):
                return m
            if keep:
                self.backlog.append(m)

    def reply_to(self, rid, timeout=10.0, keep=True):
        """The reply (a final one: result/error/pong..., or a JSON-RPC response) for rid."""
        def final(m):
            if not isinstance(m, dict) or m.get("id") != rid or type(m.get("id")) is not type(rid):
                return False
            if "jsonrpc" in m:
                return "method" not in m
            return m.get("type") not in ("start", "stdout", "stderr")
        return self.wait_for(final, timeout, keep)

    # -- dialect helpers

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def request(self, msg, timeout=10.0):
        """Type dialect: send msg (an id is added if missing), return the reply."""
        msg = dict(msg)
        msg.setdefault("id", self.new_id())
        self.send(msg)
        return self.reply_to(msg["id"], timeout)

    def exec(self, timeout=30.0, **params):
        """Type dialect exec; returns the result (or error) message."""
        return self.request(dict(type="exec", **params), timeout)

    def rpc(self, method, params=None, rid=None, timeout=10.0):
        """JSON-RPC call; returns the whole response object."""
        rid = self.new_id() if rid is None else rid
        msg = {"jsonrpc": "2.0", "method": method, "id": rid}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return self.reply_to(rid, timeout)

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def drain_stream(self, rid, timeout=30.0):
        """Type dialect streaming: (events with arrival times, result) for rid."""
        events = []
        deadline = time.monotonic() + t(timeout)
        while True:
            left = (deadline - time.monotonic()) / SCALE
            if left <= 0:
                raise TimeoutError("stream %r did not finish" % rid)
            if self.backlog:
                m, at = self.backlog.pop(0), time.monotonic()
            else:
                m, at = self.recv_timed(left)
            if m.get("id") != rid:
                continue
            if m.get("type") in ("start", "stdout", "stderr"):
                events.append((m, at))
                continue
            return events, m
