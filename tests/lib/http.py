"""One HTTP/1.1 exchange over a raw socket: a request builder that can
leave out or bend any header of a WebSocket upgrade, a response reader
that tolerates resets, and the one-call helpers built on them.

Every socket operation has a timeout (scaled up under valgrind).
"""

import base64
import hashlib
import os
import socket
import time

from lib.proc import t

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOOPBACK = "127.0.0.1"


class ServerClosed(AssertionError):
    """The server closed the TCP connection while more was expected."""


def make_key(raw=None):
    """A Sec-WebSocket-Key: base64 of 16 random bytes (or of `raw`)."""
    return base64.b64encode(raw if raw is not None else os.urandom(16)).decode()


def accept_for(key):
    """The Sec-WebSocket-Accept a server must answer `key` with."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# --------------------------------------------------------------------------
# requests

def http_request(path="/", method="GET", host=LOOPBACK, key=None, version="13",
                 upgrade="websocket", connection="Upgrade", extra=(), omit=(),
                 websocket=True, http_version="HTTP/1.1", encoding="latin-1"):
    """Build an HTTP request (bytes). With websocket=True it is an upgrade.

    omit: lower-case header names to leave out. extra: (name, value) pairs.
    A value of None for key/version/upgrade/connection also leaves it out.
    encoding: how text beyond ASCII goes on the wire.
    """
    headers = [("Host", host)]
    if websocket:
        if upgrade is not None:
            headers.append(("Upgrade", upgrade))
        if connection is not None:
            headers.append(("Connection", connection))
        if key is None:
            key = make_key()
        if key is not False:
            headers.append(("Sec-WebSocket-Key", key))
        if version is not None:
            headers.append(("Sec-WebSocket-Version", version))
    headers.extend(extra)
    omit = {o.lower() for o in omit}
    lines = ["%s %s %s" % (method, path, http_version)]
    lines += ["%s: %s" % (k, v) for k, v in headers if k.lower() not in omit]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(encoding)


def upgrade_request(path, key=None, extra_headers=()):
    """A plain upgrade request for path; returns (bytes, key)."""
    key = key or make_key()
    return http_request(path=path, key=key, extra=extra_headers, encoding="utf-8"), key


def get_request(path, headers=()):
    """GET path with Connection: close."""
    return http_request(path=path, websocket=False,
                        extra=[("Connection", "close")] + list(headers), encoding="utf-8")


# --------------------------------------------------------------------------
# responses

class HttpResponse:
    def __init__(self, status, reason, headers, body, raw, closed):
        self.status = status
        self.reason = reason
        self.headers = headers      # list of (lower-case name, value)
        self.body = body
        self.raw = raw
        self.closed = closed        # the server closed the connection after it
        self.trailing = b""

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def header_dict(self):
        """The headers as a dict (lower-case names; the last of repeats wins)."""
        return dict(self.headers)

    def __repr__(self):
        return "<HttpResponse %s %s headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def parse_head(head):
    """(status, reason, [(lower-case name, value)]) of a response head
    (without its final blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), "bad status line %r" % lines[0]
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    return status, reason, headers


class Conn:
    """A TCP connection to a server with a receive buffer: what an HTTP
    exchange and a WebSocket client both read through."""

    def __init__(self, port, host=LOOPBACK, timeout=5.0, rcvbuf=None, source=None,
                 nodelay=True):
        self.timeout_arg = timeout
        self.timeout = t(timeout)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            self.sock.bind((source, 0))
        self.sock.settimeout(self.timeout)
        try:
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def send_slowly(self, data, chunk=1):
        for i in range(0, len(data), chunk):
            self.send(data[i:i + chunk])

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, deadline):
        """Receive more bytes into buf. False on EOF/reset, raises on timeout."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server") from None
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                return False
        return True

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, timeout):
        """Read until the server closes (or `timeout` passes); True on EOF."""
        deadline = time.monotonic() + t(timeout)
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            pass
        return self.eof

    def read_http_response(self, timeout=5.0, read_body=True):
        """Read a response head (and body unless 101). Tolerates resets."""
        deadline = time.monotonic() + t(timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ServerClosed("connection closed before a complete HTTP "
                                   "response; got %r" % bytes(self.buf[:500]))
        idx = self.buf.index(b"\r\n\r\n")
        head = self._take(idx + 4)
        status, reason, headers = parse_head(head[:-4])
        body = b""
        closed = False
        if status != 101 and read_body:
            clen = None
            for k, v in headers:
                if k == "content-length":
                    clen = int(v)
            if clen is not None:
                ok = self._need(clen, deadline)
                body = self._take(min(clen, len(self.buf)))
                if not ok:
                    closed = True
            else:
                try:
                    while self._fill(deadline):
                        pass
                except TimeoutError:
                    pass
                closed = self.eof
                body = self._take(len(self.buf))
        return HttpResponse(status, reason, headers, body, head + body, closed)


# --------------------------------------------------------------------------
# one request, one connection

def exchange(port, request, timeout=5.0, host=LOOPBACK, check_close=False):
    """Send the request bytes on a connection of their own; return the
    HttpResponse. check_close=True also waits (up to timeout) for the server
    to close the connection after the response and records it in .closed
    (and any bytes after the response in .trailing)."""
    c = Conn(port, host=host, timeout=timeout)
    try:
        c.send(request)
        r = c.read_http_response(timeout)
        if check_close and not r.closed:
            r.closed = c.read_to_eof(timeout)
            r.trailing = bytes(c.buf)
        return r
    finally:
        c.close()


def http(port, path="/", method="GET", headers=(), timeout=5.0, host=LOOPBACK,
         websocket=False, check_close=False, **kw):
    """One plain HTTP request on its own connection; returns HttpResponse
    (see http_request for the keywords, exchange for check_close)."""
    req = http_request(path=path, method=method, websocket=websocket, extra=headers, **kw)
    return exchange(port, req, timeout, host=host, check_close=check_close)


def upgrade_status(port, path="/", timeout=5.0, **kw):
    """Send an upgrade request with tweaks (see http_request); return the response."""
    return exchange(port, http_request(path=path, **kw), timeout)


def http_exchange(port, request, timeout=10.0):
    """Send raw request bytes; read the response. Returns (status, headers
    dict, body bytes)."""
    try:
        r = exchange(port, request, timeout)
    except (ServerClosed, TimeoutError) as e:
        raise AssertionError("no complete HTTP response: %s" % e) from None
    return r.status, r.header_dict(), r.body


def http_get(port, path, headers=()):
    """GET path on a connection of its own: (status, headers dict, body)."""
    return http_exchange(port, get_request(path, headers))
