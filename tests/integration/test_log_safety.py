"""Client bytes cannot forge or break log lines (issues 9.1 and 15.4).

ws-echo and ws-broadcast run at --log-level debug, in both --log-format json
and text. Raw sockets send hostile request paths (quotes, `addr=` and
`level=` forgeries, TABs, bytes 0x80-0xff, control bytes, percent-encoded
newlines, 9.1's quote + 700 TABs + `=` + a long value, very long paths),
hostile headers, and for ws-broadcast hostile room and user names. Then
every line the server wrote is read back:

- JSON: printable ASCII, json.loads, no key twice, exactly one ts, level and
  event, the level a real one, every `addr` the client's real address, and
  every open's `path` the path that was sent (when it was UTF-8).
- text: printable ASCII, one line each; read as `key=value` words split at
  spaces outside quotes, no key twice, no `level` key, every `addr` the real
  one, and each open's path, unescaped, the exact bytes that were sent.

The server must still answer afterwards and exit 0 on SIGTERM.
"""

import json
import os
import re
import socket
import time

import pytest

import wsraw
from wsraw import OP_TEXT

REAL_ADDR = "127.0.0.1"
FORGED = "203.0.113.66"
LEVELS = {"error", "warn", "info", "debug"}
TS_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

HOSTILE_PATHS = [
    b'/chat?x="addr=' + FORGED.encode(),
    b'/chat?x="%20addr=' + FORGED.encode(),
    b'/chat?x=" level=error event=pwned ts=0 truncated=no',
    b'/a"%20addr="' + FORGED.encode() + b'"%20"',
    b'/a\\"addr=' + FORGED.encode(),
    b'/chat"' + b"\t" * 700 + b"=" + b"A" * 3000,          # issue 9.1
    b'/chat?x="' + b"\t" * 700 + b"=" + b"A" * 3000,
    b'/p"' + b"\t" * 700 + b"=" + b"B" * 5000,
    b"/\x80\x81\xfe\xff?q=\xff\"addr=" + FORGED.encode(),
    b"/caf\xc3\xa9/\xf0\x9f\x98\x80?x=\xed\xa0\x80\xc0\xaf",
    b"/a\x0b\x0c\x7f\x1b[31m?x=1",
    b"/a%0a2026-01-01T00:00:00.000Z%20error%20fake%20addr=" + FORGED.encode(),
    b"/a%0d%0a{\"level\":\"error\",\"addr\":\"" + FORGED.encode() + b"\"}",
    b"/" + b"x" * 7000,
    b"/q?" + b"&".join(b"k%d=%%22v" % i for i in range(400)),
    b"/chat?token=secret\"addr=" + FORGED.encode() + b"&x=1",
]

HOSTILE_HEADERS = [
    ("Origin", b'http://a" addr=' + FORGED.encode()),
    ("User-Agent", b"\xff\xfe\"level=error\t\x01"),
    ("Sec-WebSocket-Protocol", b'chat" addr=' + FORGED.encode()),
    ("X-Forwarded-For", FORGED.encode()),
    ("Cookie", b"a=\"" + b"\t" * 700 + b"=" + b"C" * 2000),
]


# ------------------------------------------------------------------------------
# raw requests

def request_bytes(path, extra=(), upgrade=True):
    lines = [b"GET " + path + b" HTTP/1.1", b"Host: 127.0.0.1"]
    if upgrade:
        lines += [b"Upgrade: websocket", b"Connection: Upgrade",
                  b"Sec-WebSocket-Key: " + wsraw.make_key().encode(),
                  b"Sec-WebSocket-Version: 13"]
    lines += [name.encode() + b": " + value for name, value in extra]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def send_raw(port, data, then=b""):
    """Sends data on a fresh connection; returns the status code (or None)
    and closes after `then` (bytes sent once the response head arrived)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wsraw.t(5))
    try:
        s.sendall(data)
        got = b""
        deadline = time.monotonic() + wsraw.t(5)
        while b"\r\n\r\n" not in got and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
        m = re.match(rb"HTTP/1\.1 (\d{3}) ", got)
        if then and m and m.group(1) == b"101":
            try:
                s.sendall(then)
            except OSError:
                pass
        return int(m.group(1)) if m else None
    finally:
        s.close()


def masked_close():
    return wsraw.build_frame(wsraw.OP_CLOSE, wsraw.close_payload(1000))


def unmasked_text():
    return wsraw.build_frame(OP_TEXT, b"no mask", mask=False)  # protocol error, debug line


def hostile_traffic(port, paths=HOSTILE_PATHS):
    """Sends everything; returns the paths that were upgraded (101)."""
    upgraded = []
    for i, path in enumerate(paths):
        then = masked_close() if i % 2 == 0 else unmasked_text()
        if send_raw(port, request_bytes(path), then) == 101:
            upgraded.append(path)
        send_raw(port, request_bytes(path, upgrade=False))          # plain HTTP: `http` line
    for name, value in HOSTILE_HEADERS:
        send_raw(port, request_bytes(b"/h", [(name, value)]), masked_close())
    send_raw(port, b"GARBAGE \x00\xff\"addr=" + FORGED.encode() + b"\r\n\r\n")
    return upgraded


# ------------------------------------------------------------------------------
# reading lines back

def log_lines(srv):
    with open(srv.log_path, "rb") as f:
        data = f.read()
    return [l for l in data.split(b"\n") if l and not l.startswith(b"### ")]


def printable(line):
    return all(0x20 <= c < 0x7f for c in line)


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    assert not dup, "duplicate keys %r" % dup
    return dict(pairs)


def logged_as(logged, sent):
    """The open line shows the path sent, or a cut of it: by the logger (which
    says so) or by the server's query redaction (which keeps 490+ bytes and
    ends the cut with "...")."""
    if logged == sent:
        return True
    dots = "..." if isinstance(logged, str) else b"..."
    cut = logged[:-3] if logged.endswith(dots) else logged
    return sent.startswith(cut) and len(cut) >= 490


def check_json(lines, sent):
    opens = []
    for raw in lines:
        assert printable(raw), "JSON line is not printable ASCII: %r" % raw[:300]
        try:
            obj = json.loads(raw, object_pairs_hook=no_duplicates)
        except (ValueError, AssertionError) as e:
            raise AssertionError("JSON line does not parse (%s): %r" % (e, raw[:300]))
        for key in ("ts", "level", "event"):
            assert isinstance(obj.get(key), str), "no %s in %r" % (key, raw[:300])
        assert obj["level"] in LEVELS, raw[:300]
        assert TS_RE.match(obj["ts"].encode()), raw[:300]
        if "addr" in obj:
            assert obj["addr"] == REAL_ADDR, "forged addr in %r" % raw[:300]
        assert FORGED not in json.dumps({k: v for k, v in obj.items()
                                         if k not in ("path", "text")}), raw[:300]
        if obj["event"] == "open":
            opens.append(obj)
    for path in sent:
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if b"token=" in path:
            continue  # redacted
        assert [o for o in opens if logged_as(o["path"], text)], \
            "no open line for %r" % path[:80]
    return opens


def text_words(line):
    """(ts, level, event, [(key, value bytes)]) of a text line."""
    m = re.match(rb"^(\S+) (error|warn |info |debug) ", line)
    assert m, "no timestamp and level: %r" % line[:200]
    assert TS_RE.match(m.group(1)), line[:200]
    i = m.end()
    pairs = []

    def quoted(i):
        out = bytearray()
        i += 1
        while i < len(line) and line[i:i + 1] != b'"':
            if line[i:i + 1] == b"\\":
                if line[i + 1:i + 2] == b"x":
                    out.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                assert line[i + 1:i + 2] in (b'"', b"\\"), "bad escape in %r" % line[:200]
                out += line[i + 1:i + 2]
                i += 2
                continue
            out += line[i:i + 1]
            i += 1
        assert i < len(line), "unclosed quote in %r" % line[:200]
        return bytes(out), i + 1

    def word(i):
        j = line.find(b" ", i)
        j = len(line) if j < 0 else j
        return line[i:j], j

    if line[i:i + 1] == b'"':
        event, i = quoted(i)
    else:
        event, i = word(i)
    while i < len(line):
        assert line[i:i + 1] == b" ", "words not one space apart in %r" % line[:200]
        i += 1
        if line[i:i + 1] == b"(" and line.endswith(b")") and b" " not in line[i:]:
            break  # the source location
        if line[i:i + 1] == b'"':
            _, i = quoted(i)
            continue
        km = re.match(rb"([A-Za-z_][A-Za-z0-9_.-]*)=", line[i:])
        if not km:
            _, i = word(i)
            continue
        i += km.end()
        if line[i:i + 1] == b'"':
            value, i = quoted(i)
        else:
            value, i = word(i)
        pairs.append((km.group(1).decode(), value))
    return m.group(2).strip().decode(), event, pairs


def check_text(lines, sent):
    opens = []
    for raw in lines:
        assert printable(raw), "text line is not printable ASCII: %r" % raw[:300]
        level, event, pairs = text_words(raw)
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), "a key twice in %r" % raw[:300]
        assert "level" not in keys and "ts" not in keys and "event" not in keys, raw[:300]
        d = dict(pairs)
        if "addr" in d:
            assert d["addr"] == REAL_ADDR.encode(), "forged addr in %r" % raw[:300]
        if event == b"open":
            opens.append(d)
    for path in sent:
        if b"token=" in path:
            continue
        assert [o for o in opens if logged_as(o.get("path", b""), path)], \
            "no open line with the path %r" % path[:80]
    return opens


def start(server, tmp_path, name, fmt):
    args = ["--log-format", fmt, "--log-level", "debug"]
    if name == "ws-broadcast":
        args += ["--db", str(tmp_path / "bc.db")]
    return server(name, *args)


def still_serves(srv, name):
    c = wsraw.connect(srv.port, "/room?id=after&user=u1" if name == "ws-broadcast" else "/after")
    if name == "ws-echo":
        c.echo(OP_TEXT, b"still here")
    else:
        c.recv_message()  # welcome
        c.send_text("still here")
        for _ in range(3):
            op, payload = c.recv_message()
            if b"still here" in payload:
                break
        else:
            raise AssertionError("ws-broadcast did not relay after the hostile requests")
    c.send_close(1000)
    c.expect_close(1000)


# ------------------------------------------------------------------------------
# tests

@pytest.mark.parametrize("name", ["ws-echo", "ws-broadcast"])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_hostile_requests_cannot_forge_or_break_lines(server, tmp_path, name, fmt):
    srv = start(server, tmp_path, name, fmt)
    upgraded = hostile_traffic(srv.port)
    assert srv.alive(), "the server died:\n" + srv.log_tail()
    # the forgery that started 15.4 must reach the log, or the test proves nothing
    assert HOSTILE_PATHS[0] in upgraded, upgraded
    still_serves(srv, name)
    assert srv.stop() == 0
    lines = log_lines(srv)
    assert len(lines) >= len(upgraded) * 2
    opens = (check_json if fmt == "json" else check_text)(lines, upgraded)
    assert len(opens) >= len(upgraded)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_hostile_room_and_user_names(server, tmp_path, fmt):
    srv = start(server, tmp_path, "ws-broadcast", fmt)
    names = [b'r"addr=' + FORGED.encode(), b"r\t\t=x", b"\xff\xfe", b'a"%20level=error',
             b"%22addr%3d" + FORGED.encode(), b"ok-room", b"x" * 300]
    sent = []
    for room in names:
        for user in names:
            path = b"/?id=" + room + b"&user=" + user
            if send_raw(srv.port, request_bytes(path), masked_close()) == 101:
                sent.append(path)
    # hostile chat text and a JSON message with a hostile text
    c = wsraw.connect(srv.port, "/?id=ok-room&user=talker")
    c.recv_message()
    c.send_text('"addr=203.0.113.66\n\x7f level=error')
    c.send_text(json.dumps({"type": "message", "text": "\"addr=" + FORGED + "\"\u2028\u0000"}))
    c.send_close(1000)
    c.expect_close(1000, allow=(wsraw.OP_PONG, OP_TEXT))
    still_serves(srv, "ws-broadcast")
    assert srv.stop() == 0
    lines = log_lines(srv)
    (check_json if fmt == "json" else check_text)(lines, sent)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_issue_9_1_overflow_is_cut_and_marked(server, tmp_path, fmt):
    """The exact 9.1 request: the server survives and the line says it was cut."""
    srv = start(server, tmp_path, "ws-echo", fmt)
    path = b'/chat"' + b"\t" * 700 + b"=" + b"A" * 3000
    assert send_raw(srv.port, request_bytes(path), masked_close()) == 101
    still_serves(srv, "ws-echo")
    assert srv.stop() == 0
    lines = [l for l in log_lines(srv) if b"/chat" in l]
    assert len(lines) == 1, lines
    line = lines[0]
    assert len(line) + 1 <= 4096
    if fmt == "json":
        obj = json.loads(line, object_pairs_hook=no_duplicates)
        assert obj["truncated"] is True
        assert obj["addr"] == REAL_ADDR
        assert path.decode().startswith(obj["path"])
        assert len(obj["path"]) > 700
    else:
        _, _, pairs = text_words(line)
        d = dict(pairs)
        assert d["truncated"] == b"yes"
        assert d["addr"] == REAL_ADDR.encode()
        assert path.startswith(d["path"]) and len(d["path"]) > 400
