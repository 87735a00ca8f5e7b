"""Helpers for the ws-rpc test suite: start and stop the server, a small
synchronous WebSocket client that speaks both of ws-rpc's dialects, plain
HTTP, and /proc inspection (descriptors, children, zombies, RSS).

Every wait here has a timeout; timeouts grow under WS_VALGRIND=1.
"""

import base64
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import time

BIN_DIR = os.environ.get("WS_BIN_DIR", "/work/main/build")
BINARY = os.path.join(BIN_DIR, "servers", "rpc", "ws-rpc")
VALGRIND = os.environ.get("WS_VALGRIND") == "1"
SCALE = 10.0 if VALGRIND else 1.0
READY_TIMEOUT = 10.0 * (6 if VALGRIND else 1)
STOP_TIMEOUT = 20.0 * (4 if VALGRIND else 1)


def _is_asan_build(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# memory bounds in the tests are for a plain build; AddressSanitizer's shadow
# memory and quarantine (or valgrind's bookkeeping) multiply RSS
MEM_SCALE = 4.0 if (VALGRIND or _is_asan_build(BINARY)) else 1.0

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
        # an absolute path: tests may start the server with their own PATH
        vg = [shutil.which("valgrind") or "valgrind", "--error-exitcode=99", "--leak-check=full",
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


def failed_exec_status(code):
    """The exit status the server reports for a child whose execve failed.
    Under valgrind (--trace-children=no) that child is still valgrind's when
    it calls _exit, and valgrind's --error-exitcode may replace its status."""
    return (code, 99) if VALGRIND else (code,)


def ensure_user(name):
    """Creates the system user `name` (no home, no login) unless it exists."""
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       check=True, timeout=30)


def wait_until(pred, timeout, what, interval=0.02):
    """Poll `pred` until true (a bounded wait on a condition, not a readiness sleep)."""
    deadline = time.monotonic() + t(timeout)
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (t(timeout), what))
        time.sleep(interval)


# --------------------------------------------------------------------------
# /proc

def proc_children(ppid):
    """[(pid, state, comm)] of the processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        rp = stat.rfind(")")
        fields = stat[rp + 2:].split()
        if int(fields[1]) == ppid:
            comm = stat[stat.find("(") + 1:rp]
            out.append((int(d), fields[0], comm))
    return out


def proc_state(pid):
    """The state letter of pid, or None when it no longer exists."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def pid_alive(pid):
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_targets(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append((int(fd), os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass
    return sorted(out)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------
# the server

class ServerDied(AssertionError):
    pass


class Server:
    """One ws-rpc process on 127.0.0.1 and a free port."""

    def __init__(self, args, log_path, env=None, expect_exit=0):
        self.args = [str(a) for a in args]
        self.env = env or {}
        self.log_path = str(log_path)
        self.vlog_path = self.log_path + ".valgrind"
        self.port = None
        self.expect_exit = expect_exit
        self.proc = None
        self.returncode = None
        self.ready_seconds = None
        self.clients = []

    def start(self):
        r, w = os.pipe()
        args = ["--host", "127.0.0.1", "--port", "0", "--notify-fd", str(w)] + self.args
        self._log = open(self.log_path, "ab")
        log_start = self._log.tell()  # a reused log: read only this run's lines
        t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                command(args, self.vlog_path if VALGRIND else None), stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=self._log, pass_fds=(w,), env=clean_env(self.env))
        finally:
            os.close(w)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            got = b""
            while b"\n" not in got:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerDied("ws-rpc not ready within %.0fs\n%s"
                                     % (READY_TIMEOUT, self.log_tail()))
                rl, _, _ = select.select([r], [], [], left)
                if not rl:
                    continue
                chunk = os.read(r, 64)
                if not chunk:
                    self.proc.wait(timeout=t(5))
                    self.returncode = self.proc.returncode
                    self._log.close()
                    raise ServerDied("ws-rpc exited with %s before readiness\n%s"
                                     % (self.proc.returncode, self.log_tail()))
                got += chunk
        finally:
            os.close(r)
        self.ready_seconds = time.monotonic() - t0
        with open(self.log_path, "rb") as f:
            f.seek(log_start)
            mine = f.read().decode(errors="replace")
        m = re.search(r"listen server=ws-rpc host=\S+ port=(\d+)", mine)
        if not m:
            raise ServerDied("no listen line in the log\n" + self.log_tail())
        self.port = int(m.group(1))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, close_clients=True):
        """SIGTERM, wait; returns a list of problems (empty when fine).
        Clients are closed first unless close_clients is False (then the
        server's drain closes them)."""
        if self.proc is None:
            return []
        if self.returncode is not None:
            return []
        if close_clients:
            for c in self.clients:
                c.close()
        problems = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("ws-rpc (pid %d) did not exit within %.0fs of SIGTERM"
                                % (self.proc.pid, STOP_TIMEOUT))
        self.returncode = self.proc.returncode
        self._log.close()
        if self.expect_exit is not None and self.returncode != self.expect_exit:
            problems.append("ws-rpc exited with %r, expected %r"
                            % (self.returncode, self.expect_exit))
        found = sanitizer_findings(self.log_text())
        if found:
            problems.append("ws-rpc log holds a sanitizer/valgrind report: %s"
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
        return "---- ws-rpc log (%s) ----\n%s---- end ----" % (self.log_path, text)

    def rss_kib(self):
        return rss_kib(self.pid)

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
                n = hdrs.get("content-length")
                if n is not None and len(body) >= int(n):
                    break
                if head.startswith(b"HTTP/1.1 101"):
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


def http_get(port, path, headers=()):
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    lines += ["%s: %s" % kv for kv in headers]
    return http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode())


def upgrade_request(path, key=None, extra_headers=()):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
    lines += ["%s: %s" % kv for kv in extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"), key


def upgrade_status(port, path="/", headers=()):
    """Attempt an upgrade; return the HTTP status (101 when served)."""
    req, _ = upgrade_request(path, extra_headers=headers)
    status, _, _ = http_exchange(port, req)
    return status


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# --------------------------------------------------------------------------
# WebSocket frames

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


class Closed(AssertionError):
    pass


class WS:
    """A blocking WebSocket client for one connection to ws-rpc.

    Messages are decoded JSON. `recv()` takes the next message; `request()`
    sends one and returns the first reply carrying its id (others are kept in
    `backlog` for later `recv()` calls)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.backlog = []
        self.closed = False
        self.close_code = None
        self.next_id = 1

    @classmethod
    def connect(cls, port, path="/", token=None, headers=(), timeout=10.0, rcvbuf=None):
        headers = list(headers)
        if token is not None:
            headers.append(("Authorization", "Bearer " + token))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(t(timeout))
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req, key = upgrade_request(path, extra_headers=headers)
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise Closed("connection closed during the handshake: %r" % data)
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if not status.startswith(b"HTTP/1.1 101"):
            s.close()
            raise Closed("upgrade refused: %r" % head)
        assert _headers(head).get("sec-websocket-accept") == accept_for(key)
        c = cls(s)
        c.buf += rest
        return c

    # -- raw frames

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_text(self, text):
        self.sock.sendall(client_frame(OP_TEXT, text))

    def send_binary(self, data):
        self.sock.sendall(client_frame(OP_BINARY, data))

    def send(self, obj):
        self.send_text(json.dumps(obj))

    def _fill(self, deadline):
        if self.sock is None:
            raise Closed("the connection is closed (code %r)" % self.close_code)
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no message from ws-rpc in time")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TimeoutError("no message from ws-rpc in time")
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            self.closed = True
            raise Closed("ws-rpc closed the TCP connection")
        self.buf += chunk

    def _frame(self, deadline):
        while True:
            b = self.buf
            if len(b) >= 2:
                n = b[1] & 0x7F
                pos = 2
                if n == 126 and len(b) >= 4:
                    n = struct.unpack("!H", b[2:4])[0]
                    pos = 4
                elif n == 127 and len(b) >= 10:
                    n = struct.unpack("!Q", b[2:10])[0]
                    pos = 10
                elif n >= 126:
                    pos = None
                if pos is not None and len(b) >= pos + n:
                    fin, op = bool(b[0] & 0x80), b[0] & 0x0F
                    payload = bytes(b[pos:pos + n])
                    del b[:pos + n]
                    return fin, op, payload
            self._fill(deadline)

    def recv_frame_message(self, timeout=10.0):
        """Next data message as (opcode, bytes); answers pings; raises Closed on close."""
        deadline = time.monotonic() + t(timeout)
        parts, first = [], None
        while True:
            fin, op, payload = self._frame(deadline)
            if op == OP_PING:
                self.sock.sendall(client_frame(OP_PONG, payload))
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.close(self.close_code or 1000)
                raise Closed("ws-rpc closed the connection (code %r, %r)"
                             % (self.close_code, payload[2:]))
            if op != OP_CONT:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

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

    def close(self, code=1000):
        """Send a close frame (or answer the server's) and drop the socket."""
        if self.sock is None:
            return
        try:
            self.sock.sendall(client_frame(OP_CLOSE, struct.pack("!H", code)))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None
        self.closed = True

    def abort(self):
        """Drop the TCP connection without a close frame."""
        self.closed = True
        if self.sock is not None:
            self.sock.close()
            self.sock = None
