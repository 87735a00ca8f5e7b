"""What the ws-broadcast tests need beyond tests/lib: the server with its
database, a client that speaks the room protocol (JSON messages, welcome
and join), an asyncio client for many connections, and the server's
binary for tests that start it by hand.
"""

import asyncio
import json
import struct

from lib import paths
from lib.http import http_get, parse_head, upgrade_request
from lib.proc import command as _command
from lib.proc import t
from lib.server import Server
from lib.server import run_once as _run_once
from lib.wsclient import (OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Closed,
                          HandshakeRefused, MessageClient, accept_for, client_frame, parse_frame)

NAME = "ws-broadcast"
BINARY = paths.binary_path(NAME)


def command(args, valgrind_log=None):
    """ws-broadcast's command line (under valgrind when WS_VALGRIND=1)."""
    return _command(BINARY, args, valgrind_log)


def run_once(args, env=None, timeout=15.0, tmp_path=None):
    """Run ws-broadcast to completion: (rc, stdout, stderr, valgrind_text)."""
    return _run_once(NAME, args, env=env, timeout=timeout, tmp_path=tmp_path)


class BcServer(Server):
    """ws-broadcast with its database (--db)."""

    def __init__(self, name, args=(), db=None, **kw):
        self.db = str(db)
        super().__init__(name, ["--db", self.db] + list(args), **kw)

    def ws(self, path="/", **kw):
        return WS.connect(self.port, path, **kw)

    def get(self, path):
        return http_get(self.port, path)

    def get_json(self, path):
        status, headers, body = http_get(self.port, path)
        assert status == 200, (path, status, body)
        return json.loads(body)


class Msg:
    """A message from the server: kind 'text' (obj = parsed JSON), 'binary'
    (data), 'pong' (data) or 'close' (code, reason)."""
    __slots__ = ("kind", "obj", "data", "code", "reason")

    def __init__(self, kind, data=b"", obj=None, code=None, reason=b""):
        self.kind, self.data, self.obj, self.code, self.reason = kind, data, obj, code, reason

    def __repr__(self):
        if self.kind == "text":
            return "<text %r>" % (self.obj,)
        if self.kind == "close":
            return "<close %r %r>" % (self.code, self.reason)
        return "<binary %r>" % (self.data[:60],)


def to_msg(op, payload):
    if op == OP_CLOSE:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        return Msg("close", payload, code=code, reason=payload[2:])
    if op == OP_PONG:
        return Msg("pong", payload)
    if op == OP_TEXT:
        return Msg("text", payload, obj=json.loads(payload))
    return Msg("binary", payload)


class WS(MessageClient):
    """A blocking client for one ws-broadcast connection."""

    @classmethod
    def connect(cls, port, path="/", timeout=10.0, rcvbuf=None, extra_headers=()):
        return cls.open(port, path, headers=extra_headers, timeout=timeout, rcvbuf=rcvbuf)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_close(self, code=1000, reason=b""):
        try:
            super().send_close(code, reason)
        except OSError:
            pass

    def recv(self, timeout=10.0, pongs=False):
        """The next message (pings answered; pongs skipped unless pongs=True)."""
        return to_msg(*self.recv_data(timeout, pongs))

    def recv_json(self, timeout=10.0):
        m = self.recv(timeout)
        assert m.kind == "text", "expected a text message, got %r" % (m,)
        return m.obj

    def recv_type(self, typ, timeout=10.0, max_skip=10000):
        """Skip messages until one of type `typ`; returns (it, skipped list)."""
        skipped = []
        for _ in range(max_skip):
            m = self.recv(timeout)
            if m.kind == "text" and m.obj.get("type") == typ:
                return m.obj, skipped
            skipped.append(m)
        raise AssertionError("no %r in %d messages: %r" % (typ, max_skip, skipped[-5:]))

    def join(self, timeout=10.0):
        """Read the welcome and then our own join; returns (welcome, join)."""
        w = self.recv_json(timeout)
        assert w.get("type") == "welcome", w
        j = self.recv_json(timeout)
        assert j.get("type") == "join" and j.get("id") == w["id"], (w, j)
        return w, j


class AsyncWS:
    """An asyncio client on raw frames (for hundreds of connections)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.buf = bytearray()

    @classmethod
    async def connect(cls, port, path="/", timeout=20.0):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20), t(timeout))
        req, key = upgrade_request(path)
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), t(timeout))
        status, _, headers = parse_head(head[:-4])
        headers = dict(headers)
        if status != 101:
            writer.close()
            raise HandshakeRefused(status, headers, b"")
        assert headers.get("sec-websocket-accept") == accept_for(key)
        return cls(reader, writer)

    def send_text(self, text):
        self.writer.write(client_frame(OP_TEXT, text))

    async def recv(self, timeout=20.0):
        while True:
            f = parse_frame(self.buf)
            if f is not None:
                del self.buf[:f[3]]
                fin, op, payload, _ = f
                if op == OP_PING:
                    self.writer.write(client_frame(OP_PONG, payload))
                    continue
                if op != OP_CLOSE:
                    assert fin, "unexpected fragmented message"
                return to_msg(OP_BINARY if op == OP_PONG else op, payload)
            chunk = await asyncio.wait_for(self.reader.read(262144), t(timeout))
            if not chunk:
                raise Closed("server closed the TCP connection")
            self.buf += chunk

    async def recv_json(self, timeout=20.0):
        m = await self.recv(timeout)
        assert m.kind == "text", m
        return m.obj

    async def close(self):
        try:
            self.writer.write(client_frame(OP_CLOSE, struct.pack("!H", 1000)))
            await self.writer.drain()
        except OSError:
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), t(5))
        except (OSError, asyncio.TimeoutError):
            pass


def presence_events(obj):
    """A join, leave or presence message as single join/leave events, in
    order, each with the room's count after it (a presence batch carries the
    count after its last event); [] for any other message."""
    if obj.get("type") in ("join", "leave"):
        return [obj]
    if obj.get("type") != "presence":
        return []
    kind, names = ("join", obj["joined"]) if "joined" in obj else ("leave", obj["left"])
    step = 1 if kind == "join" else -1
    first = obj["count"] - step * (len(names) - 1)
    infos = obj.get("joined_info") or [None] * len(names)
    out = []
    for i, (name, info) in enumerate(zip(names, infos)):
        e = {"type": kind, "id": name, "room": obj["room"], "count": first + step * i}
        if info is not None:
            e["info"] = info
        out.append(e)
    return out
