"""A synchronous raw-socket RFC 6455 client.

Everything here is deliberately low level: the frame builder can produce any
opcode, FIN/RSV bits, masked or unmasked frames and any length encoding, so
tests can send exactly the bytes a broken or hostile client would send.
`RawClient` reads frames and checks what the server sends; `MessageClient`
builds on it for suites that talk in whole messages (pings answered,
fragments reassembled).

Every socket operation has a timeout (scaled up under valgrind via SCALE).
"""

import os
import struct
import time
import weakref

from lib.http import (GUID, Conn, ServerClosed, accept_for, http_request,  # noqa: F401
                      make_key)
from lib.proc import SCALE, VALGRIND, t  # noqa: F401

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

OP_NAMES = {OP_CONT: "CONT", OP_TEXT: "TEXT", OP_BINARY: "BINARY",
            OP_CLOSE: "CLOSE", OP_PING: "PING", OP_PONG: "PONG"}

# the message-level clients' name for ServerClosed
Closed = ServerClosed


class HandshakeRefused(AssertionError):
    """The server answered the upgrade with another status than 101."""

    def __init__(self, status, headers, body):
        super().__init__("upgrade refused: %d %r %r" % (status, headers, body))
        self.status, self.headers, self.body = status, headers, body


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
    """One frame's bytes (a client's: masked with a random key by default)."""
    if isinstance(payload, str):
        payload = payload.encode()
    hdr, key = frame_header(opcode, len(payload), fin=fin, rsv=rsv, mask=mask,
                            mask_key=mask_key, length_bits=length_bits)
    if key is not None:
        payload = mask_bytes(payload, key)
    return hdr + payload


def client_frame(opcode, payload):
    """A final, masked client frame."""
    return build_frame(opcode, payload)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


def parse_frame(buf, pos=0):
    """Parse one frame at buf[pos:]. Returns (fin, opcode, payload, next_pos)
    or None when incomplete."""
    if len(buf) - pos < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    n = b1 & 0x7F
    p = pos + 2
    if n == 126:
        if len(buf) - p < 2:
            return None
        n = struct.unpack_from("!H", buf, p)[0]
        p += 2
    elif n == 127:
        if len(buf) - p < 8:
            return None
        n = struct.unpack_from("!Q", buf, p)[0]
        p += 8
    key = None
    if b1 & 0x80:
        if len(buf) - p < 4:
            return None
        key = bytes(buf[p:p + 4])
        p += 4
    if len(buf) - p < n:
        return None
    payload = bytes(buf[p:p + n])
    if key:
        payload = mask_bytes(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload, p + n


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


# --------------------------------------------------------------------------
# the client

_clients = weakref.WeakSet()


def close_all():
    """Close every client still open (the fixtures' teardown: so a failed test
    does not leave a server waiting out its drain timeout). The TCP
    connections just go: no close frame."""
    for c in list(_clients):
        c.abort()


class RawClient(Conn):
    """A TCP connection with a byte buffer and frame helpers."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0, rcvbuf=None,
                 source=None, nodelay=True):
        super().__init__(port, host=host, timeout=timeout, rcvbuf=rcvbuf, source=source,
                         nodelay=nodelay)
        self.frag_opcode = None
        self.frag_data = bytearray()
        _clients.add(self)

    def abort(self):
        """Drop the TCP connection without a close frame."""
        Conn.close(self)

    # -- HTTP ----------------------------------------------------------------
    def handshake(self, path="/", timeout=None, **kw):
        """Send an upgrade request and read the response (any status)."""
        req_kw = dict(kw)
        key = req_kw.pop("key", None) or make_key()
        self.key = key
        self.send(http_request(path=path, key=key, **req_kw))
        return self.read_http_response(self.timeout_arg if timeout is None else timeout)

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


# --------------------------------------------------------------------------
# whole messages

class MessageClient(RawClient):
    """A blocking WebSocket client that works in messages: pings are
    answered, pongs skipped, fragments reassembled; the server closing the
    TCP connection raises Closed. Suites subclass it for their protocol."""

    def __init__(self, port, **kw):
        super().__init__(port, **kw)
        self.closed = False  # the connection is over (EOF seen, or closed here)

    @classmethod
    def open(cls, port, path="/", headers=(), timeout=10.0, rcvbuf=None, host="127.0.0.1"):
        """Connects and upgrades; raises HandshakeRefused on any status but 101
        (with the response's headers as a dict and its body)."""
        c = cls(port, host=host, timeout=timeout, rcvbuf=rcvbuf)
        try:
            resp = c.handshake(path, extra=headers, encoding="utf-8")
        except ServerClosed as e:
            c.abort()
            raise Closed("connection closed during the handshake: %s" % e) from None
        except TimeoutError:
            c.abort()
            raise AssertionError("no handshake response within %.0fs" % c.timeout) from None
        if resp.status != 101:
            c.abort()
            raise HandshakeRefused(resp.status, resp.header_dict(), resp.body)
        assert resp.header("sec-websocket-accept") == accept_for(c.key), resp.headers
        return c

    def send_raw(self, data):
        self.send(data)

    def send_ping(self, data=b""):
        self.send_frame(OP_PING, data)

    def _fill(self, deadline):
        if self.sock is None:
            raise Closed("the connection is closed")
        return super()._fill(deadline)

    def next_frame(self, deadline):
        """(fin, opcode, payload) of the next frame; Closed on EOF."""
        try:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()) / SCALE)
        except ServerClosed:
            self.closed = True
            raise
        if f is None:
            self.closed = True
            raise Closed("the server closed the TCP connection")
        return f.fin, f.opcode, f.payload

    def recv_data(self, timeout=10.0, pongs=False):
        """The next message: (TEXT or BINARY, bytes), (OP_CLOSE, payload), or
        with pongs=True also (OP_PONG, payload). Pings are answered."""
        deadline = time.monotonic() + t(timeout)
        parts, first = [], None
        while True:
            fin, op, payload = self.next_frame(deadline)
            if op == OP_PING:
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                if pongs:
                    return op, payload
                continue
            if op == OP_CLOSE:
                return op, payload
            if op != OP_CONT:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    def close(self, code=1000):
        """Send a close frame (unless the server has gone) and drop the socket."""
        if self.sock is None:
            return
        if not self.closed:
            try:
                self.send_frame(OP_CLOSE, struct.pack("!H", code))
            except OSError:
                pass
        self.abort()

    def abort(self):
        """Drop the TCP connection without a close frame."""
        self.closed = True
        if self.sock is not None:
            Conn.close(self)
            self.sock = None
