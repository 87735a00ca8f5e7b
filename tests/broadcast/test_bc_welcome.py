"""A welcome (and a history page) is bounded in bytes by --max-welcome (at
most half of --send-queue), says "more":true when history was cut, and the
client pages forward with {"type":"history","since":S}; --max-chat-message
bounds the JSON-escaped text, so escaping cannot multiply what is stored and
replayed."""

import json
import threading
import time

import pytest

from bchelp import AsyncWS  # noqa: F401
from lib.proc import t  # noqa: F401
from lib.wsclient import OP_TEXT, client_frame  # noqa: F401
from test_bc_protocol import page_rest


def metric(s, name):
    status, _, body = s.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


def fill(s, room, texts):
    a = s.ws("/?id=%s&user=filler" % room)
    a.join()
    seqs = []
    for text in texts:
        a.send_text(text)
        m = a.recv_json(timeout=20)
        assert m["type"] == "message", m
        seqs.append(m["seq"])
    a.close()
    return seqs


# --------------------------------------------------------------------------
# --max-chat-message applies to the escaped text

@pytest.mark.parametrize("text,ok", [
    ("\x01" * 16, True),        # 96 escaped bytes
    ("\x01" * 17, False),       # 102
    ('"' * 50, True),           # 100
    ('"' * 51, False),          # 102
    ("\n" * 51, False),
    ("\u00e9" * 50, True),      # 100 bytes of UTF-8, not escaped
    ("x" * 100, True),
], ids=["ctl-16", "ctl-17", "quote-50", "quote-51", "newline-51", "utf8-100", "plain-100"])
def test_max_chat_message_counts_escaped_bytes(bc, text, ok):
    s = bc("--max-chat-message", "100")
    a = s.ws("/?id=esc&user=a")
    a.join()
    for send in (a.send_text, lambda x: a.send_json({"type": "message", "text": x})):
        send(text)
        m = a.recv_json()
        if ok:
            assert m["type"] == "message" and m["text"] == text, m
        else:
            assert m == {"type": "error", "error": "Message too large"}
    a.close()


def test_control_byte_flood_is_refused_not_stored(bc):
    """The issue's payload: 65 kB of \\x01 is 390 kB once escaped: refused at
    the default 64k bound, nothing stored, nothing fanned out."""
    s = bc("--rate-limit", "0")
    a = s.ws("/?id=ctl&user=a")
    a.join()
    a.send_text("\x01" * 65000)
    assert a.recv_json() == {"type": "error", "error": "Message too large"}
    a.send_text("\x01" * (65536 // 6))           # just within, escaped
    m = a.recv_json()
    assert m["type"] == "message" and m["seq"] == 1
    assert s.get_json("/rooms/ctl")["last_seq"] == 1
    a.close()


# --------------------------------------------------------------------------
# the welcome's bound and paging

def test_welcome_cut_at_max_welcome_pages_forward_exactly(bc):
    s = bc("--rate-limit", "0", "--max-welcome", "8k")
    texts = ["%03d:%s" % (i, "y" * 1000) for i in range(30)]
    seqs = fill(s, "pg", texts)
    assert seqs == list(range(1, 31))
    for since, want in ((0, range(1, 31)), (7, range(8, 31)), (29, [30]), (30, [])):
        ws = s.ws("/?id=pg&since=%d" % since)
        m = ws.recv()
        w = m.obj
        assert w["type"] == "welcome", w
        assert len(m.data) <= 8 * 1024, len(m.data)
        if len(want) > 6:
            assert w["more"] is True and 1 <= len(w["history"]) < len(want)
        else:
            assert "more" not in w
        got = page_rest(ws, w, 8 * 1024)
        assert got == list(want), since
        ws.close()
    # without since: the last --history-on-join (20), oldest first, same paging
    ws = s.ws("/?id=pg")
    m = ws.recv()
    assert m.obj["history"][0]["seq"] == 11 and m.obj["more"] is True
    assert page_rest(ws, m.obj, 8 * 1024) == list(range(11, 31))
    # each page carries the whole message
    ws.send_json({"type": "history", "since": 4})
    page, _ = ws.recv_type("history")
    assert page["room"] == "pg" and page["more"] is True
    assert [h["text"] for h in page["history"]] == texts[4:4 + len(page["history"])]
    assert set(page["history"][0]) == {"type", "from", "text", "seq", "ts"}
    assert metric(s, "ws_broadcast_history_cut_total") >= 5
    ws.close()


def test_history_page_at_the_end_says_no_more(bc):
    s = bc("--rate-limit", "0")
    fill(s, "end", ["a", "b"])
    ws = s.ws("/?id=end")
    ws.join()
    for since, want in ((2, []), (1, [2]), (99, [])):
        ws.send_json({"type": "history", "since": since})
        page = ws.recv_json()
        assert page == {"type": "history", "room": "end", "more": False,
                        "history": page["history"]}
        assert [h["seq"] for h in page["history"]] == want
    ws.close()


@pytest.mark.parametrize("raw", [
    '{"type":"history"}',
    '{"type":"history","since":-1}',
    '{"type":"history","since":"3"}',
    '{"type":"history","since":1.5}',
], ids=["no-since", "negative", "string", "float"])
def test_history_request_invalid(bc, raw):
    s = bc()
    ws = s.ws("/?id=r")
    ws.join()
    ws.send_text(raw)
    assert ws.recv_json() == {"type": "error", "error": "Invalid message format"}
    ws.close()


def test_one_message_bigger_than_the_bound_still_progresses(bc):
    """A page always holds at least one message, so paging never stalls."""
    s = bc("--rate-limit", "0", "--max-welcome", "1k")
    fill(s, "one", ["z" * 3000, "small", "z" * 3000])
    ws = s.ws("/?id=one&since=0")
    m = ws.recv()
    assert [h["seq"] for h in m.obj["history"]] == [1] and m.obj["more"] is True
    assert page_rest(ws, m.obj, 4096) == [1, 2, 3]
    ws.close()


def test_welcome_bound_is_at_most_half_the_send_queue(bc):
    s = bc("--rate-limit", "0", "--send-queue", "64k", "--max-welcome", "1m",
           "--max-message", "16k")
    fill(s, "half", ["w" * 4000 for _ in range(20)])
    ws = s.ws("/?id=half&since=0")
    m = ws.recv()
    assert m.obj["type"] == "welcome" and m.obj["more"] is True
    assert len(m.data) <= 32 * 1024, len(m.data)
    assert page_rest(ws, m.obj, 32 * 1024) == list(range(1, 21))
    ws.close()


@pytest.mark.heavy
@pytest.mark.ws_timeout(120)
def test_since_zero_joiners_cannot_stall_the_loop_or_balloon_memory(bc):
    """The issue's attack, at the largest text the escaped bound lets through
    (10,922 bytes of \\x01 = 65,532 escaped): 300 of them are ~19 MB of
    welcome without a bound. Four joiners with since=0 that never read: each
    welcome stays within --max-welcome, a bystander's /healthz answers at
    once, and the server's memory does not follow the history's size."""
    s = bc("--rate-limit", "0", "--history-size", "300")
    payload = "\x01" * (65536 // 6)
    a = s.ws("/?id=attack&user=filler")
    a.join()
    for i in range(300):
        a.send_text(payload)
        if i % 10 == 9:                             # keep the echo queue short
            for _ in range(10):
                assert a.recv(timeout=30).obj["type"] == "message"
    a.close()
    rss0 = s.rss_kib()
    joiners = []
    for _ in range(4):
        j = s.ws("/?id=attack&since=0", rcvbuf=4096)    # never read further
        joiners.append(j)
    lat = []
    for _ in range(10):
        t0 = time.monotonic()
        status, _, _ = s.get("/healthz")
        lat.append(time.monotonic() - t0)
        assert status == 200
    rss1 = s.rss_kib()
    assert max(lat) < t(0.5), "a bystander's /healthz waited %.3fs" % max(lat)
    assert rss1 - rss0 < 40 * 1024, "RSS grew %d KiB for four joiners" % (rss1 - rss0)
    # what a joiner gets, read now: a welcome within the bound, cut
    j = joiners[0]
    m = j.recv(timeout=20)
    assert m.obj["type"] == "welcome" and m.obj["more"] is True
    assert len(m.data) <= 512 * 1024, len(m.data)
    assert m.obj["history"][0]["text"] == payload
    for j in joiners:
        j.close()
    print("healthz max %.1f ms, RSS +%d KiB" % (max(lat) * 1e3, rss1 - rss0))
