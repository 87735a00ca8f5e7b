"""ws-broadcast protocol: welcome/join/message/leave, ids, history, errors, HTTP."""

import json
import re
import signal
import sqlite3
import time

import pytest

from lib.http import http_exchange, upgrade_request
from lib.proc import t, wait_until
from lib.server import STOP_TIMEOUT
from lib.wsclient import OP_TEXT, Closed, HandshakeRefused, client_frame

WELCOME_KEYS = {"type", "id", "room", "count", "members", "epoch", "last_seq", "history"}
JOIN_KEYS = {"type", "id", "room", "count"}
MESSAGE_KEYS = {"type", "from", "room", "text", "seq", "ts"}
HISTORY_KEYS = {"type", "from", "text", "seq", "ts"}


def now_ms():
    return int(time.time() * 1000)


def chat_until(ws, n, max_msgs=10000):
    """Read until n chat messages arrived; returns them (other events skipped)."""
    out = []
    for _ in range(max_msgs):
        if len(out) == n:
            return out
        m = ws.recv()
        if m.kind == "text" and m.obj["type"] == "message":
            out.append(m.obj)
    raise AssertionError("only %d of %d messages" % (len(out), n))


# --------------------------------------------------------------------------
# welcome, join, leave

def test_welcome_then_join_to_everyone_including_joiner(bc):
    s = bc()
    a = s.ws("/?id=lobby&user=alice")
    w = a.recv_json()
    assert set(w) == WELCOME_KEYS, w
    assert w == {"type": "welcome", "id": "alice", "room": "lobby", "count": 1,
                 "members": ["alice"], "epoch": w["epoch"], "last_seq": 0, "history": []}
    j = a.recv_json()
    assert j == {"type": "join", "id": "alice", "room": "lobby", "count": 1}

    b = s.ws("/chat/x?id=lobby&user=bob")
    wb = b.recv_json()
    assert wb["type"] == "welcome" and wb["id"] == "bob" and wb["room"] == "lobby"
    assert wb["count"] == 2 and sorted(wb["members"]) == ["alice", "bob"]
    assert wb["history"] == []
    expected = {"type": "join", "id": "bob", "room": "lobby", "count": 2}
    assert b.recv_json() == expected   # the joiner gets its own join
    assert a.recv_json() == expected   # and so does everyone already there
    a.close()
    b.close()


def test_leave_sends_count_to_remaining(bc):
    s = bc()
    a, b, c = (s.ws("/?id=r&user=%s" % u) for u in ("a", "b", "c"))
    a.join()
    b.join()
    c.join()
    for ws, n in ((a, 2), (b, 1)):          # drain the later joins
        for _ in range(n):
            assert ws.recv_json()["type"] == "join"
    c.close()
    leave = {"type": "leave", "id": "c", "room": "r", "count": 2}
    assert a.recv_json() == leave
    assert b.recv_json() == leave
    b.close()
    assert a.recv_json() == {"type": "leave", "id": "b", "room": "r", "count": 1}
    a.close()


def test_same_user_twice_gets_distinct_suffix(bc):
    """A second connection asking for a name already in the room is shown as
    NAME#2 (its welcome says so): a members list never holds two entries
    nobody can tell apart, and no client can ask for a '#' name itself."""
    s = bc()
    a = s.ws("/?id=dup&user=alice")
    a.join()
    b = s.ws("/?id=dup&user=alice")
    w, j = b.join()
    assert w["id"] == "alice#2" and j["id"] == "alice#2"
    assert w["count"] == 2 and sorted(w["members"]) == ["alice", "alice#2"]
    assert a.recv_json() == {"type": "join", "id": "alice#2", "room": "dup", "count": 2}
    c = s.ws("/?id=dup&user=alice")
    w, _ = c.join()
    assert w["id"] == "alice#3"
    for ws in (a, b):
        assert ws.recv_json()["id"] == "alice#3"
    # the suffixed name is what the messages carry
    b.send_text("from the second alice")
    assert a.recv_json()["from"] == "alice#2"
    b.close()
    assert a.recv_json() == {"type": "leave", "id": "alice#2", "room": "dup", "count": 2}
    wait_until(lambda: s.get_json("/rooms/dup")["count"] == 2, what="alice#2 gone")
    assert sorted(s.get_json("/rooms/dup")["members"]) == ["alice", "alice#3"]
    # the same name in another room is not a duplicate
    d = s.ws("/?id=elsewhere&user=alice")
    assert d.join()[0]["id"] == "alice"
    # '#' cannot be asked for
    with pytest.raises(HandshakeRefused) as e:
        s.ws("/?id=dup&user=alice%232")
    assert e.value.status == 400
    for ws in (a, c, d):
        ws.close()


def test_server_assigned_user_id(bc):
    s = bc()
    a = s.ws("/?id=anon")
    w, j = a.join()
    assert re.fullmatch(r"u-[0-9a-f]{8}", w["id"]), w["id"]
    assert j["id"] == w["id"] and w["members"] == [w["id"]]
    b = s.ws("/?id=anon")
    wb, _ = b.join()
    assert re.fullmatch(r"u-[0-9a-f]{8}", wb["id"]), wb["id"]
    assert wb["id"] != w["id"]
    assert a.recv_json() == {"type": "join", "id": wb["id"], "room": "anon", "count": 2}
    a.close()
    b.close()


def test_default_room_when_no_id(bc):
    s = bc()
    a = s.ws("/")
    w, j = a.join()
    assert w["room"] == "default" and j["room"] == "default"
    b = s.ws("/some/path?user=bob")
    wb, _ = b.join()
    assert wb["room"] == "default" and wb["count"] == 2
    info = s.get_json("/rooms/default")
    assert info["count"] == 2 and sorted(info["members"]) == sorted([w["id"], "bob"])
    a.close()
    b.close()


# --------------------------------------------------------------------------
# invalid names

BAD_NAMES = [
    ("empty", ""),
    ("65 chars", "a" * 65),
    ("space", "a%20b"),
    ("slash", "a%2Fb"),
    ("raw slash", "a/b"),
    ("unicode", "caf%C3%A9"),
    ("unicode raw", "caf\u00e9"),
    ("300 chars", "b" * 300),
    ("nul", "a%00b"),
    ("bad escape", "a%ZZ"),
    ("cut escape", "ab%4"),
    ("plus", "a+b"),
]


@pytest.mark.parametrize("what", ["id", "user"])
@pytest.mark.parametrize("label,value", BAD_NAMES, ids=[b[0] for b in BAD_NAMES])
def test_invalid_name_gets_400_before_upgrade(bc, what, label, value):
    s = bc()
    path = "/?id=%s" % value if what == "id" else "/?id=ok&user=%s" % value
    req, _ = upgrade_request(path)
    status, headers, body = http_exchange(s.port, req)
    assert status == 400, (path, status, headers, body)
    assert "sec-websocket-accept" not in headers
    text = body.decode()
    lines = text.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), "reason must be one line: %r" % text
    assert ("invalid room" if what == "id" else "invalid user") in text, text
    # the server keeps serving, and nobody joined
    ws = s.ws("/?id=ok&user=fine")
    w, _ = ws.join()
    assert w["count"] == 1 and w["members"] == ["fine"]
    ws.close()


def test_name_boundaries_accepted(bc):
    s = bc()
    name = "Az09._:-" + "x" * 56                # 64 chars, every allowed class
    assert len(name) == 64
    a = s.ws("/?id=%s&user=%s" % (name, name))
    w, _ = a.join()
    assert w["room"] == name and w["id"] == name
    b = s.ws("/?id=x&user=y")                  # 1 char each
    w, _ = b.join()
    assert w["room"] == "x" and w["id"] == "y"
    a.close()
    b.close()


def test_invalid_name_with_websockets_client(bc):
    pytest.importorskip("websockets")
    import websockets.exceptions
    import websockets.client
    import asyncio
    s = bc()

    async def go():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await websockets.client.connect("ws://127.0.0.1:%d/?id=no%%20spaces" % s.port,
                                     open_timeout=t(10))
        return e.value.status_code

    assert asyncio.run(go()) == 400


# --------------------------------------------------------------------------
# messages

def test_plain_text_and_json_message_delivered_to_all(bc):
    s = bc()
    a = s.ws("/?id=talk&user=alice")
    a.join()
    b = s.ws("/?id=talk&user=bob")
    b.join()
    a.recv_json()                                # bob's join
    t0 = now_ms()
    got = {"a": [], "b": []}
    a.send_text("hello, world")                          # plain text
    for name, ws in (("a", a), ("b", b)):
        got[name].append(ws.recv_json())
    b.send_json({"type": "message", "text": "h\u00e9llo \u2603 \"quoted\""})   # JSON
    for name, ws in (("a", a), ("b", b)):
        got[name].append(ws.recv_json())
    t1 = now_ms()
    assert got["a"] == got["b"], "same messages, same order, for every member"
    m1, m2 = got["a"]
    for m in (m1, m2):
        assert set(m) == MESSAGE_KEYS, m
        assert m["type"] == "message" and m["room"] == "talk"
        assert isinstance(m["ts"], int) and t0 - 5 <= m["ts"] <= t1 + 1000, (t0, m["ts"], t1)
    assert (m1["from"], m1["text"], m1["seq"]) == ("alice", "hello, world", 1)
    assert (m2["from"], m2["text"], m2["seq"]) == ("bob", "h\u00e9llo \u2603 \"quoted\"", 2)
    assert m2["ts"] >= m1["ts"]
    a.close()
    b.close()


def test_seq_increases_by_one_same_order_for_every_member(bc):
    s = bc("--rate-limit", "0")
    clients = [s.ws("/?id=order&user=c%d" % i) for i in range(3)]
    for c in clients:
        c.join()
    for i, c in enumerate(clients):             # drain the later joins
        for _ in range(len(clients) - 1 - i):
            assert c.recv_json()["type"] == "join"
    # interleave: every client sends 30 messages back to back
    for k in range(30):
        for i, c in enumerate(clients):
            c.send_text("c%d-%d" % (i, k))
    seen = [chat_until(c, 90) for c in clients]
    for other in seen[1:]:
        assert other == seen[0]
    assert [m["seq"] for m in seen[0]] == list(range(1, 91))
    # each sender's own messages keep their order
    for i in range(3):
        mine = [m["text"] for m in seen[0] if m["from"] == "c%d" % i]
        assert mine == ["c%d-%d" % (i, k) for k in range(30)]
    # seq is per room: another room starts at 1
    o = s.ws("/?id=other")
    o.join()
    o.send_text("first")
    assert o.recv_json()["seq"] == 1
    for c in clients + [o]:
        c.close()


def test_binary_relayed_unchanged_to_others_only_and_not_persisted(bc, tmp_path):
    s = bc()
    a, b, c = (s.ws("/?id=bin&user=%s" % u) for u in "abc")
    a.join()
    b.join()
    c.join()
    for ws, n in ((a, 2), (b, 1)):
        for _ in range(n):
            a_or_b = ws.recv_json()
            assert a_or_b["type"] == "join"
    payload = bytes(range(256)) + b"\x00\xff" * 100
    a.send_binary(payload)
    a.send_text("after")            # a marker: the sender's next message is this
    for ws in (b, c):
        m = ws.recv()
        assert m.kind == "binary" and m.data == payload
        assert ws.recv_json()["text"] == "after"
    m = a.recv()
    assert m.kind == "text" and m.obj["text"] == "after" and m.obj["seq"] == 1, \
        "the sender must not get its own binary back: %r" % (m,)
    info = s.get_json("/rooms/bin")
    assert info["last_seq"] == 1
    d = s.ws("/?id=bin&since=0")
    w, _ = d.join()
    assert [h["text"] for h in w["history"]] == ["after"]
    db = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
    try:
        rows = db.execute("SELECT seq, text FROM messages WHERE room = 'bin'").fetchall()
    finally:
        db.close()
    assert rows == [(1, "after")]
    for ws in (a, b, c, d):
        ws.close()


# --------------------------------------------------------------------------
# history

def send_n(ws, n, prefix="m"):
    for i in range(1, n + 1):
        ws.send_text("%s%d" % (prefix, i))
    return chat_until(ws, n)


def test_since_replays_exactly_newer_messages(bc):
    s = bc("--rate-limit", "0")
    a = s.ws("/?id=hist&user=alice")
    a.join()
    live = send_n(a, 30)
    assert [m["seq"] for m in live] == list(range(1, 31))
    by_seq = {m["seq"]: {k: m[k] for k in HISTORY_KEYS} for m in live}
    for since, want in ((10, range(11, 31)), (0, range(1, 31)), (29, [30]), (30, []),
                        (1000, [])):
        c = s.ws("/?id=hist&since=%d" % since)
        w, _ = c.join()
        assert [h["seq"] for h in w["history"]] == list(want), since
        for h in w["history"]:
            assert set(h) == HISTORY_KEYS, h
            assert h == by_seq[h["seq"]]
        c.close()
        assert a.recv_json()["type"] == "join"
        assert a.recv_json()["type"] == "leave"
    a.close()


def test_since_bounded_by_history_size(bc):
    s = bc("--rate-limit", "0", "--history-size", "10")
    a = s.ws("/?id=h10")
    a.join()
    send_n(a, 25)
    c = s.ws("/?id=h10&since=0")
    w, _ = c.join()
    assert [h["seq"] for h in w["history"]] == list(range(16, 26))
    a.close()
    c.close()


def test_history_on_join_default_20(bc):
    s = bc("--rate-limit", "0")
    a = s.ws("/?id=recent&user=alice")
    a.join()
    send_n(a, 25)
    c = s.ws("/?id=recent")
    w, _ = c.join()
    assert [h["seq"] for h in w["history"]] == list(range(6, 26))
    assert [h["text"] for h in w["history"]] == ["m%d" % i for i in range(6, 26)]
    assert all(h["from"] == "alice" for h in w["history"])
    a.close()
    c.close()


@pytest.mark.parametrize("n,want", [(5, list(range(21, 26))), (0, [])])
def test_history_on_join_flag(bc, n, want):
    s = bc("--rate-limit", "0", "--history-on-join", str(n))
    a = s.ws("/?id=recent")
    a.join()
    send_n(a, 25)
    c = s.ws("/?id=recent")
    w, _ = c.join()
    assert [h["seq"] for h in w["history"]] == want
    a.close()
    c.close()


def test_invalid_since_gets_400(bc):
    s = bc()
    with pytest.raises(HandshakeRefused) as e:
        s.ws("/?id=r&since=abc")
    assert e.value.status == 400


def test_history_size_0_stores_nothing_seq_still_continues(bc, tmp_path):
    db = tmp_path / "nohist.db"
    s = bc("--rate-limit", "0", "--history-size", "0", db=db)
    a = s.ws("/?id=ephemeral")
    a.join()
    assert [m["seq"] for m in send_n(a, 5)] == [1, 2, 3, 4, 5]
    for path in ("/?id=ephemeral", "/?id=ephemeral&since=0"):
        c = s.ws(path)
        w, _ = c.join()
        assert w["history"] == []
        c.close()
    a.close()
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert c.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    finally:
        c.close()
    assert s.finish() == []
    s2 = bc("--rate-limit", "0", "--history-size", "0", db=db)
    a = s2.ws("/?id=ephemeral")
    a.join()
    a.send_text("again")
    assert a.recv_json()["seq"] == 6
    a.close()


def test_sigterm_closes_every_membership(bc, tmp_path):
    db = tmp_path / "term.db"
    s = bc(db=db)
    clients = [s.ws("/?id=t%d&user=u%d" % (i % 2, i)) for i in range(6)]
    for c in clients:
        c.join()
    s.proc.send_signal(signal.SIGTERM)           # drain: every client gets 1001
    for c in clients:
        for _ in range(100):
            m = c.recv()
            if m.kind == "close":
                break
        assert m.kind == "close" and m.code == 1001, m
        c.close()                               # close reply, then the socket
    s.proc.wait(timeout=STOP_TIMEOUT)            # (a second SIGTERM would exit at once)
    assert s.finish() == []                        # exit 0, nothing reported
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert c.execute("SELECT count(*) FROM memberships WHERE left_ms IS NULL"
                         ).fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM memberships").fetchone()[0] == 6
    finally:
        c.close()


# --------------------------------------------------------------------------
# errors that keep the connection open

def test_rate_limit_exceeded_not_broadcast_connection_stays(bc):
    s = bc()                                    # defaults: 20/s, burst 40
    a = s.ws("/?id=flood&user=flooder")
    a.join()
    b = s.ws("/?id=flood&user=watcher")
    b.join()
    assert a.recv_json()["type"] == "join"
    n = 60                                      # past the burst, below the flood cut-off
    t0 = time.monotonic()
    a.send_raw(b"".join(client_frame(OP_TEXT, "f%d" % i) for i in range(n)))
    delivered, errors = [], 0
    for _ in range(n):
        m = a.recv_json()
        if m["type"] == "error":
            assert m == {"type": "error", "error": "Rate limit exceeded"}
            errors += 1
        else:
            assert m["type"] == "message"
            delivered.append(m["text"])
    refill = int((time.monotonic() - t0) * 20) + 1   # tokens that can have come back
    assert 40 <= len(delivered) <= 40 + refill, (len(delivered), refill)
    assert errors == n - len(delivered) and errors > 0
    assert delivered[:40] == ["f%d" % i for i in range(40)], "the burst passes first"
    # the dropped messages were not broadcast nor stored
    assert s.get_json("/rooms/flood")["last_seq"] == len(delivered)
    # the watcher sees exactly the delivered ones: the next one after them is the marker
    seen = [b.recv_json()["text"] for _ in delivered]
    assert seen == delivered
    # the connection stays: a ping is answered, and after a refill a message passes
    a.send_ping(b"still-there")
    m = a.recv(pongs=True)
    assert m.kind == "pong" and m.data == b"still-there"
    for _ in range(100):
        a.send_text("later")
        m = a.recv_json()
        if m["type"] == "message":
            break
        assert m["error"] == "Rate limit exceeded"
        time.sleep(0.06)
    assert m["type"] == "message" and m["text"] == "later"
    assert b.recv_json()["text"] == "later", "the watcher got no dropped message"
    a.close()
    b.close()


def test_message_too_large_keeps_connection(bc):
    s = bc("--max-chat-message", "100")
    a = s.ws("/?id=big&user=alice")
    a.join()
    b = s.ws("/?id=big&user=bob")
    b.join()
    assert a.recv_json()["type"] == "join"
    a.send_text("x" * 101)
    assert a.recv_json() == {"type": "error", "error": "Message too large"}
    a.send_json({"type": "message", "text": "y" * 500})
    assert a.recv_json() == {"type": "error", "error": "Message too large"}
    a.send_text("z" * 100)                    # at the limit: fine
    m = a.recv_json()
    assert m["type"] == "message" and m["text"] == "z" * 100 and m["seq"] == 1
    assert b.recv_json() == m, "bob sees only the accepted message"
    a.close()
    b.close()


def test_message_over_max_message_closes_1009(bc):
    s = bc("--max-message", "1k")
    a = s.ws("/?id=huge")
    a.join()
    a.send_text("x" * 2048)
    m = a.recv()
    assert m.kind == "close" and m.code == 1009, m
    a.send_close(1009)
    with pytest.raises(Closed):                 # the server ends the TCP connection
        for _ in range(100):
            a.recv(timeout=5)
    a.close()
    wait_until(lambda: s.get_json("/rooms/huge")["count"] == 0, what="the closed one gone")
    # the server keeps serving
    b = s.ws("/?id=huge")
    w, _ = b.join()
    assert w["count"] == 1
    b.close()


@pytest.mark.parametrize("raw", [
    '{"type":"x"}',
    '{"text":1}',
    '{',
    '{"type":"message"}',
    '{"type":"message","text":5}',
    '{"type":"message","text":null}',
    '{"type":1,"text":"hi"}',
    '{"type":"message","text":"hi"} trailing',
    '  {"text":"hi"}',
    '{"type":"message","text":"hi","extra":',
], ids=["type-x", "text-1", "broken", "no-text", "text-number", "text-null", "type-number",
        "trailing", "no-type", "cut"])
def test_invalid_message_format_keeps_connection(bc, raw):
    s = bc()
    a = s.ws("/?id=fmt&user=alice")
    a.join()
    b = s.ws("/?id=fmt&user=bob")
    b.join()
    assert a.recv_json()["type"] == "join"
    a.send_text(raw)
    assert a.recv_json() == {"type": "error", "error": "Invalid message format"}
    a.send_text("valid")
    m = a.recv_json()
    assert m["type"] == "message" and m["text"] == "valid" and m["seq"] == 1
    assert b.recv_json() == m, "the invalid one was not broadcast"
    assert s.get_json("/rooms/fmt")["last_seq"] == 1
    a.close()
    b.close()


def test_json_text_with_escaped_nul_is_a_message(bc):
    """{"type":"message","text":"a\\u0000b"} is valid JSON with a STRING
    text, so it is a chat message (plain text with a NUL byte already is)."""
    s = bc()
    a = s.ws("/?id=nul")
    a.join()
    a.send_text('a\x00b')
    m = a.recv_json()
    assert m["type"] == "message" and m["text"] == "a\x00b"
    a.send_text('{"type":"message","text":"c\\u0000d"}')
    m = a.recv_json()
    assert m["type"] == "message" and m["text"] == "c\x00d", m
    a.close()


# --------------------------------------------------------------------------
# HTTP

def test_http_rooms_and_room(bc):
    s = bc("--rate-limit", "0")
    status, headers, body = s.get("/rooms")
    assert status == 200 and json.loads(body) == []
    assert headers.get("content-type", "").startswith("application/json")
    a = s.ws("/?id=alpha&user=alice")
    a.join()
    b = s.ws("/?id=alpha&user=bob")
    b.join()
    c = s.ws("/?id=beta&user=carol")
    c.join()
    send_n(a, 3)
    rooms = s.get_json("/rooms")
    assert rooms == [
        {"room": "alpha", "count": 2, "last_seq": 3},
        {"room": "beta", "count": 1, "last_seq": 0},
    ]
    alpha = s.get_json("/rooms/alpha")
    assert set(alpha) == {"room", "count", "members", "last_seq"}
    assert alpha["room"] == "alpha" and alpha["count"] == 2 and alpha["last_seq"] == 3
    assert sorted(alpha["members"]) == ["alice", "bob"]
    assert s.get_json("/rooms/beta") == {"room": "beta", "count": 1, "members": ["carol"],
                                          "last_seq": 0}
    for path in ("/rooms/nope", "/rooms/a%20b", "/rooms/" + "x" * 65):
        status, _, _ = s.get(path)
        assert status == 404, path
    # a room everyone left stays known with its seq
    a.close()
    b.close()
    wait_until(lambda: s.get_json("/rooms/alpha")["count"] == 0, what="alpha empty")
    assert s.get_json("/rooms/alpha") == {"room": "alpha", "count": 0, "members": [],
                                           "last_seq": 3}
    c.close()


def test_max_room_members_503(bc):
    s = bc("--max-room-members", "2")
    a, b = s.ws("/?id=full"), s.ws("/?id=full")
    a.join()
    b.join()
    with pytest.raises(HandshakeRefused) as e:
        s.ws("/?id=full")
    assert e.value.status == 503
    c = s.ws("/?id=other")
    c.join()
    for ws in (a, b, c):
        ws.close()


def test_max_rooms_503(bc):
    s = bc("--max-rooms", "1")
    a = s.ws("/?id=one")
    a.join()
    with pytest.raises(HandshakeRefused) as e:
        s.ws("/?id=two")
    assert e.value.status == 503
    b = s.ws("/?id=one")                        # the existing room still admits
    b.join()
    a.close()
    b.close()


# --------------------------------------------------------------------------
# a welcome larger than the send queue

def fill_room(s, room, n, size):
    a = s.ws("/?id=%s&user=filler" % room)
    a.join()
    for i in range(n):
        a.send_text("%d:%s" % (i, "x" * size))
        m = a.recv_json()
        assert m["type"] == "message", m
    a.close()


def page_rest(ws, first, max_frame):
    """Follows "more":true with {"type":"history","since":LAST} requests until a
    page says no more; returns every history seq, in order, and checks each
    frame's size against max_frame."""
    seqs = [h["seq"] for h in first["history"]]
    more = first.get("more", False)
    while more:
        ws.send_json({"type": "history", "since": seqs[-1]})
        m = ws.recv(timeout=20)
        while m.kind == "text" and m.obj["type"] != "history":
            m = ws.recv(timeout=20)               # live events may come first
        assert m.kind == "text", m
        assert len(m.data) <= max_frame, (len(m.data), max_frame)
        assert m.obj["history"], "a page with more must make progress: %r" % (m.obj,)
        assert isinstance(m.obj["more"], bool)
        seqs += [h["seq"] for h in m.obj["history"]]
        more = m.obj["more"]
    return seqs


def test_join_welcome_with_large_recent_history(bc):
    """Defaults only: 20 recent messages near --max-chat-message (64k) are
    ~1.2 MB, past --max-welcome (512k). A plain join still gets its welcome
    (not a 1008 "slow consumer"), holding the oldest of them that fit and
    "more":true; paging with since gets the rest, each page within the bound."""
    s = bc()
    fill_room(s, "bigmsgs", 20, 60000)
    ws = s.ws("/?id=bigmsgs")
    m = ws.recv(timeout=20)
    assert m.kind == "text", "joining got %r instead of the welcome" % (m,)
    assert m.obj["type"] == "welcome" and m.obj["more"] is True
    assert len(m.data) <= 512 * 1024
    assert 1 <= len(m.obj["history"]) < 20
    assert page_rest(ws, m.obj, 512 * 1024) == list(range(1, 21))
    ws.close()


def test_since_reconnect_with_history_larger_than_send_queue(bc):
    """?since=0 on a room holding ~1.2 MB of history (40 x 30 KB, within the
    default --history-size 1000): the reconnect gets a welcome within
    --max-welcome (not a 1008 "slow consumer" close), and pages forward to
    exactly seq 1..40."""
    s = bc()
    fill_room(s, "bighist", 40, 30000)
    ws = s.ws("/?id=bighist&since=0")
    m = ws.recv(timeout=20)
    assert m.kind == "text", "reconnecting with ?since=0 got %r instead of the welcome" % (m,)
    assert m.obj["type"] == "welcome" and m.obj["more"] is True
    assert len(m.data) <= 512 * 1024
    assert page_rest(ws, m.obj, 512 * 1024) == list(range(1, 41))
    ws.close()
