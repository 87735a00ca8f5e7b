"""Helpers for the ws-broadcast test suite: start/stop the server, a small
raw-socket WebSocket client (sync), an asyncio one, and plain HTTP.

Every wait here has a timeout; timeouts grow under WS_VALGRIND=1.
"""

import asyncio
import base64
import hashlib
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time
import weakref

BIN_DIR = os.environ.get("WS_BIN_DIR", "/work/main/build")
BINARY = os.path.join(BIN_DIR, "servers", "broadcast", "ws-broadcast")
VALGRIND = os.environ.get("WS_VALGRIND") == "1"
SCALE = 10.0 if VALGRIND else 1.0
READY_TIMEOUT = 10.0 * (6 if VALGRIND else 1)
STOP_TIMEOUT = 20.0 * (4 if VALGRIND else 1)

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                      "ThreadSanitizer", "MemorySanitizer")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

EXIT_USAGE = 100
EXIT_SYSTEM = 111


def t(seconds):
    """A timeout scaled for this run (valgrind is ~10x slower)."""
    return seconds * SCALE


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WS_") and k != "NOTIFY_SOCKET"}
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if extra:
        env.update(extra)
    return env


def command(args, valgrind_log=None):
    cmd = [BINARY] + [str(a) for a in args]
    if VALGRIND:
        vg = ["valgrind", "--error-exitcode=99", "--leak-check=full",
              "--errors-for-leak-kinds=definite", "--trace-children=no"]
        if valgrind_log:
            vg.append("--log-file=%s" % valgrind_log)
        cmd = vg + cmd
    return cmd


def sanitizer_findings(text):
    found = [p for p in SANITIZER_PATTERNS if p in text]
    if "ERROR SUMMARY:" in text and not re.search(r"ERROR SUMMARY: 0 errors", text):
        found.append("valgrind errors")
    return found


def port_is_listening(port, host="127.0.0.1"):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_once(args, env=None, timeout=15.0, tmp_path=None):
    """Run the binary to completion. Returns (rc, stdout, stderr, valgrind_text)."""
    vlog = None
    if VALGRIND and tmp_path is not None:
        vlog = str(tmp_path / ("valgrind-once-%d.log" % time.monotonic_ns()))
    p = subprocess.run(command(args, vlog), stdin=subprocess.DEVNULL, capture_output=True,
                       env=clean_env(env), timeout=t(timeout))
    vtext = ""
    if vlog and os.path.exists(vlog):
        with open(vlog, errors="replace") as f:
            vtext = f.read()
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), vtext


class ServerDied(AssertionError):
    pass


class Server:
    """One ws-broadcast process, on 127.0.0.1."""

    def __init__(self, args, db, log_path, port=0, expect_exit=0):
        self.args = [str(a) for a in args]
        self.db = str(db)
        self.log_path = str(log_path)
        self.vlog_path = self.log_path + ".valgrind"
        self.requested_port = port
        self.port = None
        self.expect_exit = expect_exit
        self.proc = None
        self.killed = False       # by SIGKILL on purpose: no exit check
        self.returncode = None
        self.ready_seconds = None

    def start(self):
        r, w = os.pipe()
        args = ["--host", "127.0.0.1", "--port", str(self.requested_port),
                "--notify-fd", str(w), "--db", self.db] + self.args
        self._log = open(self.log_path, "ab")
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                command(args, self.vlog_path if VALGRIND else None), stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=self._log, pass_fds=(w,), env=clean_env())
        finally:
            os.close(w)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            got = b""
            while b"\n" not in got:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerDied("ws-broadcast not ready within %.0fs\n%s"
                                     % (READY_TIMEOUT, self.log_tail()))
                rl, _, _ = select.select([r], [], [], left)
                if not rl:
                    continue
                chunk = os.read(r, 64)
                if not chunk:
                    self.proc.wait(timeout=t(5))
                    raise ServerDied("ws-broadcast exited with %s before readiness\n%s"
                                     % (self.proc.returncode, self.log_tail()))
                got += chunk
        finally:
            os.close(r)
        self.ready_seconds = time.monotonic() - t0
        self.port = self._listen_port()
        return self

    def _listen_port(self):
        if self.requested_port:
            return self.requested_port
        m = re.search(r"listen server=ws-broadcast host=\S+ port=(\d+)", self.log_text())
        if not m:
            raise ServerDied("no listen line in the log\n" + self.log_tail())
        return int(m.group(1))

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        self.killed = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=t(10))
        self.returncode = self.proc.returncode
        self._log.close()

    def stop(self):
        """SIGTERM, wait; returns a list of problems (empty when fine)."""
        if self.proc is None or self.killed:
            return []
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("ws-broadcast (pid %d) did not exit within %.0fs of SIGTERM"
                                % (self.proc.pid, STOP_TIMEOUT))
        self.returncode = self.proc.returncode
        self._log.close()
        if self.expect_exit is not None and self.returncode != self.expect_exit:
            problems.append("ws-broadcast exited with %r, expected %r"
                            % (self.returncode, self.expect_exit))
        found = sanitizer_findings(self.log_text())
        if found:
            problems.append("ws-broadcast log holds a sanitizer/valgrind report: %s"
                            % ", ".join(found))
        return problems

    def log_text(self):
        text = ""
        for p in (self.log_path, self.vlog_path):
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    text += f.read()
        return text

    def log_tail(self, max_chars=20000):
        text = self.log_text()
        if len(text) > max_chars:
            text = "...[%d chars cut]...\n" % (len(text) - max_chars) + text[-max_chars:]
        return "---- ws-broadcast log (%s) ----\n%s---- end ----" % (self.log_path, text)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def ws(self, path="/", **kw):
        return WS.connect(self.port, path, **kw)

    def get(self, path):
        return http_get(self.port, path)

    def get_json(self, path):
        status, headers, body = http_get(self.port, path)
        assert status == 200, (path, status, body)
        return json.loads(body)


# --------------------------------------------------------------------------
# HTTP

def http_exchange(port, request, timeout=10.0):
    """Send raw request bytes; read to EOF. Returns (status, headers dict, body bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=t(timeout))
    try:
        s.sendall(request)
        data = b""
        deadline = time.monotonic() + t(timeout)
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                hdrs = _headers(head)
                if head.startswith(b"HTTP/1.1 101 "):
                    break                       # a WebSocket now: no body to wait for
                n = hdrs.get("content-length")
                if n is not None and len(body) >= int(n):
                    break
    finally:
        s.close()
    return parse_response(data)


def _headers(head):
    hdrs = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return hdrs


def parse_response(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no complete HTTP response: %r" % data[:300]
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    assert parts[0].startswith("HTTP/1."), status_line
    hdrs = _headers(head)
    if "content-length" in hdrs:
        body = body[:int(hdrs["content-length"])]
    return int(parts[1]), hdrs, body


def http_get(port, path):
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path).encode()
    return http_exchange(port, req)


def upgrade_request(path, key=None, extra_headers=()):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % kv for kv in extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), key


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# --------------------------------------------------------------------------
# frames

def mask(data, key):
    n = len(data)
    if not n:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def client_frame(opcode, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    if n <= 125:
        hdr = bytes([0x80 | opcode, 0x80 | n])
    elif n <= 0xFFFF:
        hdr = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        hdr = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return hdr + key + mask(payload, key)


def parse_frame(buf, pos=0):
    """Parse one server frame at buf[pos:]. Returns (fin, opcode, payload, next_pos)
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
        payload = mask(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload, p + n


class Closed(AssertionError):
    """The server closed the TCP connection."""


class HandshakeRefused(AssertionError):
    def __init__(self, status, headers, body):
        super().__init__("upgrade refused: %d %r %r" % (status, headers, body))
        self.status, self.headers, self.body = status, headers, body


class Msg:
    """A message from the server: kind 'text' (obj = parsed JSON), 'binary'
    (data), or 'close' (code, reason)."""
    __slots__ = ("kind", "obj", "data", "code", "reason")

    def __init__(self, kind, data=b"", obj=None, code=None, reason=b""):
        self.kind, self.data, self.obj, self.code, self.reason = kind, data, obj, code, reason

    def __repr__(self):
        if self.kind == "text":
            return "<text %r>" % (self.obj,)
        if self.kind == "close":
            return "<close %r %r>" % (self.code, self.reason)
        return "<binary %r>" % (self.data[:60],)


_OPEN = weakref.WeakSet()


def close_all():
    """Close every WS still open (fixture teardown: so a failed test does not
    leave the server waiting out its drain timeout)."""
    for ws in list(_OPEN):
        try:
            ws.sock.close()
        except OSError:
            pass
    _OPEN.clear()


class WS:
    """A blocking WebSocket client on a raw socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.closed = False
        _OPEN.add(self)

    @classmethod
    def connect(cls, port, path="/", timeout=10.0, rcvbuf=None, extra_headers=()):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(t(timeout))
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req, key = upgrade_request(path, extra_headers=extra_headers)
        s.sendall(req)
        data = b""
        deadline = time.monotonic() + t(timeout)
        while b"\r\n\r\n" not in data:
            if time.monotonic() > deadline:
                s.close()
                raise AssertionError("no handshake response within %.0fs" % t(timeout))
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            s.close()
            raise Closed("connection closed during the handshake: %r" % data)
        status = int(head.split(b" ", 2)[1])
        hdrs = _headers(head)
        if status != 101:
            # a refusal carries a body; read it to EOF
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                rest += chunk
            s.close()
            if "content-length" in hdrs:
                rest = rest[:int(hdrs["content-length"])]
            raise HandshakeRefused(status, hdrs, rest)
        assert hdrs.get("sec-websocket-accept") == accept_for(key), hdrs
        ws = cls(s)
        ws.buf += rest
        return ws

    # -- sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_text(self, text):
        self.sock.sendall(client_frame(OP_TEXT, text))

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_binary(self, data):
        self.sock.sendall(client_frame(OP_BINARY, data))

    def send_ping(self, data=b""):
        self.sock.sendall(client_frame(OP_PING, data))

    def send_close(self, code=1000, reason=b""):
        try:
            self.sock.sendall(client_frame(OP_CLOSE, struct.pack("!H", code) + reason))
        except OSError:
            pass

    # -- receiving
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no frame from the server in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("no frame from the server in time")
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed("server closed the TCP connection")
        self.buf += chunk

    def recv_frame(self, timeout=10.0):
        deadline = time.monotonic() + t(timeout)
        while True:
            f = parse_frame(self.buf)
            if f is not None:
                del self.buf[:f[3]]
                return f[0], f[1], f[2]
            self._fill(deadline)

    def recv(self, timeout=10.0, pongs=False):
        """The next message (pings answered; pongs skipped unless pongs=True)."""
        deadline = time.monotonic() + t(timeout)
        frags, fop = [], None
        while True:
            fin, op, payload = self.recv_frame(max(0.001, (deadline - time.monotonic()) / SCALE))
            if op == OP_PING:
                self.sock.sendall(client_frame(OP_PONG, payload))
                continue
            if op == OP_PONG:
                if pongs:
                    return Msg("pong", payload)
                continue
            if op == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return Msg("close", payload, code=code, reason=payload[2:])
            if op != OP_CONT:
                fop = op
            frags.append(payload)
            if not fin:
                continue
            data = b"".join(frags)
            if fop == OP_TEXT:
                return Msg("text", data, obj=json.loads(data))
            return Msg("binary", data)

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

    def close(self):
        if not self.closed:
            self.send_close()
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True


# --------------------------------------------------------------------------
# asyncio client (raw frames; for many connections)

class AsyncWS:
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
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            writer.close()
            raise HandshakeRefused(status, _headers(head[:-4]), b"")
        assert _headers(head[:-4]).get("sec-websocket-accept") == accept_for(key)
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
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return Msg("close", payload, code=code, reason=payload[2:])
                assert fin, "unexpected fragmented message"
                if op == OP_TEXT:
                    return Msg("text", payload, obj=json.loads(payload))
                return Msg("binary", payload)
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


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_until(pred, timeout=10.0, interval=0.01, what="condition"):
    """Poll pred() until true (bounded). For server-side effects that have no
    event to wait on (e.g. a close being processed)."""
    deadline = time.monotonic() + t(timeout)
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)"
                         % (t(timeout), what, last))
