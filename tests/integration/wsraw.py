"""A small raw-socket RFC 6455 client for conformance tests.

Everything here is deliberately low level: the frame builder can produce any
opcode, FIN/RSV bits, masked or unmasked frames and any length encoding, so
tests can send exactly the bytes a broken or hostile client would send.

Every socket operation has a timeout (scaled up under valgrind via SCALE).
"""

import base64
import hashlib
import os
import socket
import struct
import time
import weakref

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

VALGRIND = os.environ.get("WS_VALGRIND") == "1"
SCALE = 10.0 if VALGRIND else 1.0

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OP_NAMES = {OP_CONT: "CONT", OP_TEXT: "TEXT", OP_BINARY: "BINARY",
            OP_CLOSE: "CLOSE", OP_PING: "PING", OP_PONG: "PONG"}


def t(seconds):
    """A timeout scaled for the current run (valgrind is ~10x slower)."""
    return seconds * SCALE


# --------------------------------------------------------------------------
# frames

def mask_bytes(data, key):
    """XOR data with the 4-byte key (fast enough for tens of MiB)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame_header(opcode, length, fin=True, rsv=0, mask=True, mask_key=None,
                 length_bits=None):
    """Header bytes for a frame declaring `length` payload bytes.

    length_bits forces the encoding: 7, 16 or 64 (default: minimal).
    Returns (header, mask_key or None).
    """
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    if length_bits is None:
        length_bits = 7 if length <= 125 else 16 if length <= 0xFFFF else 64
    mbit = 0x80 if mask else 0
    if length_bits == 7:
        assert length <= 125
        hdr = bytes([b0, mbit | length])
    elif length_bits == 16:
        assert length <= 0xFFFF
        hdr = bytes([b0, mbit | 126]) + struct.pack("!H", length)
    elif length_bits == 64:
        hdr = bytes([b0, mbit | 127]) + struct.pack("!Q", length)
    else:
        raise ValueError(length_bits)
    key = None
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        hdr += key
    return hdr, key


def build_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                length_bits=None):
    if isinstance(payload, str):
        payload = payload.encode()
    hdr, key = frame_header(opcode, len(payload), fin=fin, rsv=rsv, mask=mask,
                            mask_key=mask_key, length_bits=length_bits)
    if key is not None:
        payload = mask_bytes(payload, key)
    return hdr + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close_code(self):
        assert self.opcode == OP_CLOSE
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        assert self.opcode == OP_CLOSE
        return self.payload[2:]

    def __repr__(self):
        p = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        extra = ""
        if self.opcode == OP_CLOSE and len(self.payload) >= 2:
            extra = " code=%d" % self.close_code
        return "<Frame %s fin=%d rsv=%d masked=%d len=%d%s %r>" % (
            OP_NAMES.get(self.opcode, hex(self.opcode)), self.fin, self.rsv,
            self.masked, len(self.payload), extra, p)


def summarize(frames):
    if len(frames) <= 4:
        return repr(frames)
    return "%d frames, %d bytes, last: %r" % (len(frames), sum(len(f.payload) for f in frames),
                                              frames[-2:])


class ServerClosed(AssertionError):
    """The server closed the TCP connection while a frame was expected."""


# --------------------------------------------------------------------------
# HTTP

def make_key(raw=None):
    return base64.b64encode(raw if raw is not None else os.urandom(16)).decode()


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def http_request(path="/", method="GET", host="127.0.0.1", key=None, version="13",
                 upgrade="websocket", connection="Upgrade", extra=(), omit=(),
                 websocket=True, http_version="HTTP/1.1"):
    """Build an HTTP request (bytes). With websocket=True it is an upgrade.

    omit: lower-case header names to leave out. extra: (name, value) pairs.
    A value of None for key/version/upgrade/connection also leaves it out.
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
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


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

    def __repr__(self):
        return "<HttpResponse %s %s headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:200])


def parse_head(head):
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


# --------------------------------------------------------------------------
# the client

_clients = weakref.WeakSet()


def close_all():
    """Close every raw client still open (used by the fixture teardown)."""
    for c in list(_clients):
        c.close()


class RawClient:
    """A TCP connection with a byte buffer and frame helpers."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None,
                 source=None, nodelay=True):
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
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.frag_opcode = None
        self.frag_data = bytearray()
        _clients.add(self)

    # -- raw bytes --------------------------------------------------------
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

    # -- HTTP ----------------------------------------------------------------
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

    def handshake(self, path="/", **kw):
        """Send an upgrade request and read the response (any status)."""
        req_kw = dict(kw)
        key = req_kw.pop("key", None) or make_key()
        self.key = key
        self.send(http_request(path=path, key=key, **req_kw))
        return self.read_http_response()

    # -- frames --------------------------------------------------------------
    def send_frame(self, opcode, payload=b"", **kw):
        self.send(build_frame(opcode, payload, **kw))

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def recv_frame(self, timeout=5.0):
        """Next frame from the server, or None on a clean EOF between frames.

        Raises ServerClosed on EOF in the middle of a frame and TimeoutError
        when nothing arrives in time.
        """
        deadline = time.monotonic() + t(timeout)
        if not self._need(2, deadline):
            if self.buf:
                raise ServerClosed("EOF inside a frame header: %r" % bytes(self.buf))
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            hlen = 4
        elif n == 127:
            hlen = 10
        masked = bool(b1 & 0x80)
        if masked:
            hlen += 4
        if not self._need(hlen, deadline):
            raise ServerClosed("EOF inside a frame header: %r" % bytes(self.buf))
        if n == 126:
            n = struct.unpack("!H", self.buf[2:4])[0]
            assert n >= 126, "server used a non-minimal 16-bit length for %d bytes" % n
        elif n == 127:
            n = struct.unpack("!Q", self.buf[2:10])[0]
            assert n >= 65536, "server used a non-minimal 64-bit length for %d bytes" % n
            assert n < (1 << 63), "server set the MSB of a 64-bit length"
        if not self._need(hlen + n, deadline):
            raise ServerClosed("EOF inside a frame payload (%d of %d bytes)"
                               % (len(self.buf) - hlen, n))
        hdr = self._take(hlen)
        self.last_header = hdr
        payload = self._take(n)
        if masked:
            payload = mask_bytes(payload, hdr[-4:])
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload)

    def recv_message(self, timeout=5.0):
        """Next complete data message (reassembled) or control frame.

        Returns (opcode, payload) where opcode is TEXT/BINARY for a data
        message or the control opcode. Returns (None, None) on EOF.
        Server frames are checked: unmasked, RSV 0.
        """
        deadline = time.monotonic() + t(timeout)
        while True:
            f = self.recv_frame(timeout=max(0.0, deadline - time.monotonic()) / SCALE)
            if f is None:
                return None, None
            assert not f.masked, "server sent a masked frame: %r" % f
            assert f.rsv == 0, "server sent RSV bits: %r" % f
            if f.opcode >= 8:
                assert f.fin, "server sent a fragmented control frame: %r" % f
                return f.opcode, f.payload
            if f.opcode == OP_CONT:
                assert self.frag_opcode is not None, "server sent a stray continuation: %r" % f
                self.frag_data += f.payload
            else:
                assert f.opcode in (OP_TEXT, OP_BINARY), "server sent opcode %r" % f
                assert self.frag_opcode is None, "server began a message inside another: %r" % f
                self.frag_opcode = f.opcode
                self.frag_data = bytearray(f.payload)
            if f.fin:
                op, data = self.frag_opcode, bytes(self.frag_data)
                self.frag_opcode, self.frag_data = None, bytearray()
                return op, data

    def expect_message(self, opcode, payload, timeout=5.0):
        op, data = self.recv_message(timeout)
        assert op is not None, "server closed the connection instead of echoing"
        if op == OP_CLOSE:
            raise AssertionError("expected %s echo, server sent close %r"
                                 % (OP_NAMES[opcode], data[:2] and struct.unpack("!H", data[:2])))
        assert op == opcode, "expected %s, got %s" % (OP_NAMES[opcode], OP_NAMES.get(op, op))
        assert len(data) == len(payload), "echo length %d != %d" % (len(data), len(payload))
        assert data == payload, "echo payload differs"

    def echo(self, opcode, payload, timeout=5.0, **kw):
        self.send_frame(opcode, payload, **kw)
        self.expect_message(opcode, payload, timeout)

    def wait_close(self, timeout=5.0, allow=(OP_PONG,)):
        """Read until a close frame; return (close Frame, frames before it).

        Frames before the close whose opcode is not in `allow` fail the test.
        """
        deadline = time.monotonic() + t(timeout)
        before = []
        while True:
            remaining = (deadline - time.monotonic()) / SCALE
            try:
                f = self.recv_frame(timeout=max(remaining, 0.0))
            except TimeoutError:
                raise AssertionError("no close frame from the server within %.1fs "
                                     "(frames so far: %s)" % (t(timeout), summarize(before))) from None
            if f is None:
                raise AssertionError("server closed TCP without a close frame%s "
                                     "(frames so far: %s)"
                                     % (" (RST)" if self.reset else "", summarize(before)))
            if f.opcode == OP_CLOSE:
                assert not f.masked, "server close frame is masked"
                assert f.fin, "server close frame has FIN=0"
                return f, before
            assert f.opcode in allow, ("unexpected frame before close: %r "
                                       "(earlier: %s)" % (f, summarize(before)))
            before.append(f)

    def expect_eof(self, timeout=5.0):
        """Assert the server closes TCP (recv returns b'' or RST) in time and
        sends nothing more."""
        deadline = time.monotonic() + t(timeout)
        extra = bytes(self.buf)
        self.buf.clear()
        while not self.eof:
            try:
                if not self._fill(deadline):
                    break
            except TimeoutError:
                raise AssertionError("server did not close the TCP connection within "
                                     "%.1fs after the close frame" % t(timeout)) from None
            extra += bytes(self.buf)
            self.buf.clear()
        assert extra == b"", "server sent bytes after its close frame: %r" % extra[:100]

    def expect_close(self, code, timeout=5.0, reply=False, allow=(OP_PONG,), reason=None):
        """Expect a close frame with `code` (None = empty payload), then EOF.

        reply=True sends a close back first, as a well-behaved client does.
        """
        f, before = self.wait_close(timeout, allow)
        got = f.close_code
        if isinstance(code, (tuple, list, set, frozenset)):
            assert got in code, "expected close code in %r, got %r (frame %r)" % (code, got, f)
        else:
            assert got == code, "expected close code %r, got %r (frame %r)" % (code, got, f)
        assert len(f.payload) != 1, "close payload of 1 byte"
        if len(f.payload) > 2:
            f.close_reason.decode("utf-8")  # must be valid UTF-8
        if reason is not None:
            assert f.close_reason == reason.encode(), "close reason %r, expected %r" % (
                f.close_reason, reason)
        if reply:
            try:
                self.send_close(got if got is not None else None)
            except OSError:
                pass
        self.expect_eof(timeout)
        return f, before


def connect(port, path="/", timeout=5.0, headers=(), host="127.0.0.1", **kw):
    """Open a WebSocket with the raw client; assert 101 and a correct accept."""
    c = RawClient(port, host=host, timeout=timeout, **kw)
    resp = c.handshake(path, extra=headers)
    assert resp.status == 101, "upgrade failed: %r" % resp
    assert resp.header("sec-websocket-accept") == accept_for(c.key), resp
    return c


def http(port, path="/", method="GET", headers=(), timeout=5.0, host="127.0.0.1",
         websocket=False, check_close=False, **kw):
    """One plain HTTP request on its own connection; returns HttpResponse.

    check_close=True also waits (up to timeout) for the server to close the
    connection after the response and records it in .closed."""
    c = RawClient(port, host=host, timeout=timeout)
    try:
        c.send(http_request(path=path, method=method, websocket=websocket,
                            extra=headers, **kw))
        r = c.read_http_response(timeout)
        if check_close and not r.closed:
            deadline = time.monotonic() + t(timeout)
            try:
                while c._fill(deadline):
                    pass
            except TimeoutError:
                pass
            r.closed = c.eof
            r.trailing = bytes(c.buf)
        return r
    finally:
        c.close()


def upgrade_status(port, path="/", timeout=5.0, **kw):
    """Send an upgrade request with tweaks (see http_request); return the response."""
    c = RawClient(port, timeout=timeout)
    try:
        c.send(http_request(path=path, **kw))
        return c.read_http_response(timeout)
    finally:
        c.close()
