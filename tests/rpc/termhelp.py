"""A client for ws-rpc's kept processes and terminal endpoint on Python's
`websockets` (not code of this project): `Conn` speaks the `type` and
JSON-RPC dialects, `Term` the Sandbox SDK's terminal protocol. Tests are
plain functions that call run(coroutine)."""

import asyncio
import base64
import json
import time

import websockets

from rpchelp import t

__all__ = ["run", "Conn", "Term", "url"]


def run(coro):
    return asyncio.run(coro)


def url(srv, path="/"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


class Conn:
    """One ws-rpc connection; messages decoded, a backlog for the ones
    skipped while waiting for another."""

    def __init__(self, ws):
        self.ws = ws
        self.backlog = []
        self.next_id = 1

    @classmethod
    async def open(cls, srv, path="/", **kw):
        ws = await websockets.connect(url(srv, path), max_size=None, **kw)
        return cls(ws)

    async def close(self):
        await self.ws.close()

    def abort(self):
        """Drop the TCP connection without a close frame (a client that vanished)."""
        self.ws.transport.abort()

    async def send(self, obj):
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout=10.0):
        if self.backlog:
            return self.backlog.pop(0)
        return json.loads(await asyncio.wait_for(self.ws.recv(), t(timeout)))

    async def wait_for(self, pred, timeout=10.0):
        for i, m in enumerate(self.backlog):
            if pred(m):
                return self.backlog.pop(i)
        deadline = time.monotonic() + t(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message; last %r" % self.backlog[-3:])
            m = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if pred(m):
                return m
            self.backlog.append(m)

    async def request(self, msg, timeout=10.0):
        """Type dialect: the reply to msg (by its id and a reply's type)."""
        msg = dict(msg)
        if "id" not in msg:
            msg["id"] = "r%d" % self.next_id
            self.next_id += 1
        await self.send(msg)
        rid = msg["id"]
        return await self.wait_for(
            lambda m: m.get("id") == rid and m.get("type") not in ("output", "lost", "exit"),
            timeout)

    async def rpc(self, method, params, timeout=10.0):
        rid = self.next_id
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "method": method, "params": params, "id": rid})
        return await self.wait_for(lambda m: m.get("id") == rid and "method" not in m, timeout)

    async def start(self, timeout=10.0, **params):
        """exec with keep (and whatever else): the process id."""
        params.setdefault("keep", True)
        params.setdefault("encoding", "base64")
        r = await self.request(dict(type="exec", **params), timeout)
        assert r["type"] == "start", r
        return r["process"]

    async def processes(self):
        r = await self.request({"type": "list"})
        return {p["id"]: p for p in r["processes"]}

    async def collect(self, pid, timeout=30.0, until_exit=True, stop=None):
        """Events of process pid until its exit (or stop(bytes) is true):
        (stdout bytes, stderr bytes, [(stream, from, to) lost], first offsets, exit)."""
        out = {"stdout": bytearray(), "stderr": bytearray()}
        first = {}
        nxt = {}
        lost = []
        deadline = time.monotonic() + t(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("process %s did not finish; got %d bytes"
                                   % (pid, len(out["stdout"])))
            m = await self.wait_for(lambda m: m.get("id") == pid and
                                    m.get("type") in ("output", "lost", "exit"), left)
            if m["type"] == "exit":
                return bytes(out["stdout"]), bytes(out["stderr"]), lost, first, m
            s = m["stream"]
            if m["type"] == "lost":
                lost.append((s, m["from"], m["to"]))
                nxt[s] = m["to"]
                continue
            data = base64.b64decode(m["data"])
            first.setdefault(s, m["offset"])
            assert nxt.get(s, m["offset"]) == m["offset"], ("a gap or overlap", nxt, m["offset"])
            nxt[s] = m["offset"] + len(data)
            out[s] += data
            if stop and stop(out):
                return bytes(out["stdout"]), bytes(out["stderr"]), lost, first, None


class Term:
    """One connection to the terminal endpoint: binary frames are the
    terminal's bytes, text frames JSON control (chunk headers checked)."""

    def __init__(self, ws):
        self.ws = ws
        self.screen = bytearray()
        self.controls = []
        self.cursor = None
        self.ready = None
        self.exit = None

    @classmethod
    async def open(cls, srv, query="", path="/ws/terminal", **kw):
        ws = await websockets.connect(url(srv, path + ("?" + query if query else "")),
                                      max_size=None, **kw)
        term = cls(ws)
        term.ready = await term.control("ready")
        term.cursor = int(term.ready["cursor"])
        return term

    async def _next(self, timeout):
        m = await asyncio.wait_for(self.ws.recv(), t(timeout))
        if isinstance(m, bytes):
            raise AssertionError("a binary frame without its chunk header")
        c = json.loads(m)
        if c["type"] == "chunk":
            data = await asyncio.wait_for(self.ws.recv(), t(timeout))
            assert isinstance(data, bytes) and len(data) == c["byteLength"], c
            self.screen += data
            self.cursor = int(c["cursor"])
            return None
        if c["type"] == "truncated":
            self.cursor = int(c["cursor"])
        if c["type"] == "exit":
            self.exit = c
        self.controls.append(c)
        return c

    async def control(self, kind, timeout=10.0):
        for i, c in enumerate(self.controls):
            if c["type"] == kind:
                return self.controls.pop(i)
        deadline = time.monotonic() + t(timeout)
        while True:
            c = await self._next(max(0.01, deadline - time.monotonic()))
            if c is not None and c["type"] == kind:
                self.controls.remove(c)
                return c

    async def expect(self, needle, timeout=10.0, start=0):
        """Reads until needle (bytes) is on the screen past `start`; returns its index."""
        deadline = time.monotonic() + t(timeout)
        while needle not in self.screen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("%r not seen; screen ends %r" % (needle, bytes(self.screen[-300:])))
            try:
                await self._next(left)
            except asyncio.TimeoutError:
                raise TimeoutError("%r not seen; screen ends %r"
                                   % (needle, bytes(self.screen[-300:]))) from None
        return self.screen.index(needle, start)

    async def type(self, text):
        await self.ws.send(text.encode() if isinstance(text, str) else text)

    async def send_control(self, obj):
        await self.ws.send(json.dumps(obj) if not isinstance(obj, str) else obj)

    async def resize(self, cols, rows):
        await self.send_control({"type": "resize", "cols": cols, "rows": rows})

    async def until_closed(self, timeout=10.0):
        deadline = time.monotonic() + t(timeout)
        try:
            while True:
                await self._next(max(0.01, deadline - time.monotonic()))
        except websockets.ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None

    def abort(self):
        self.ws.transport.abort()

    async def close(self):
        await self.ws.close()
