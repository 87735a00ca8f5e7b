"""Pongs are written without building a reply object (rpc_proto_pong, issue
13): every kind of id must come back exactly as the client sent it, in both
dialects, including ids whose escaped form does not fit the fast path's
buffer (they take the general path), and replies to pipelined pings keep
their order."""

import time

import pytest

import rpchelp

IDS = [0, 1, 7, 2**53, 2**63 - 1, -1, -2**63, 1.5, -0.25, 1e300, "", "a", "x" * 256,
       "quote\"back\\slash", "ctl\u0001\u001f\n\t", "\u00e9\u4e2d\U0001f600",
       "\u007f" * 200, "\u0001" * 256]


@pytest.mark.parametrize("rid", IDS, ids=range(len(IDS)))
def test_type_pong_carries_the_id_and_a_timestamp(ws, rid):
    before = int(time.time() * 1000)
    r = ws.request({"type": "ping", "id": rid})
    assert r["type"] == "pong" and r["id"] == rid and type(r["id"]) is type(rid)
    assert set(r) == {"type", "id", "timestamp"}
    assert before - 1000 <= r["timestamp"] <= int(time.time() * 1000) + 1000


def test_type_pong_without_id_has_none(ws):
    ws.send({"type": "ping"})
    r = ws.recv()
    assert set(r) == {"type", "timestamp"} and r["type"] == "pong"


@pytest.mark.parametrize("rid", IDS + [None], ids=range(len(IDS) + 1))
def test_jsonrpc_ping_result_carries_the_id(ws, rid):
    ws.send({"jsonrpc": "2.0", "method": "ping", "id": rid})
    r = ws.recv()
    assert r == {"jsonrpc": "2.0", "id": rid, "result": {"timestamp": r["result"]["timestamp"]}}
    assert type(r["id"]) is type(rid)


def test_jsonrpc_ping_notification_gets_nothing(ws):
    ws.notify("ping")
    ws.expect_silence(0.3)


def test_pings_in_a_batch_keep_their_places(ws):
    ws.send([{"jsonrpc": "2.0", "method": "ping", "id": i} for i in range(5)])
    r = ws.recv()
    assert [x["id"] for x in r] == list(range(5))


def test_1000_pipelined_pings_answered_in_order(ws):
    for i in range(1000):
        ws.send({"type": "ping", "id": i})
    got = [ws.recv(timeout=rpchelp.t(10))["id"] for _ in range(1000)]
    assert got == list(range(1000))


# ---- the ping's own parser (rpc_proto_fast_ping): what it takes must be
# answered exactly as the full parse answers it, and everything else must
# still reach the full parse.

def _reply(ws, text):
    ws.send_text(text)
    return ws.recv()


def _same_but_timestamp(a, b):
    def strip(m):
        m = dict(m)
        if "timestamp" in m:
            m.pop("timestamp")
        if isinstance(m.get("result"), dict):
            m["result"] = {k: v for k, v in m["result"].items() if k != "timestamp"}
        return m
    return strip(a) == strip(b)


# (fast-path text, the same request that the fast path refuses)
PAIRS = [
    ('{"type":"ping","id":5}', '{"type":"ping","id":5,"x":0}'),
    ('{"id":5,"type":"ping"}', '{"type":"p\\u0069ng","id":5}'),
    (' \r\n\t{ "type" : "ping" , "id" : 5 } \n', '{"type":"ping","id":5.0e0}'),
    ('{"type":"ping"}', '{"type":"ping","z":null}'),
    ('{"type":"ping","id":0}', '{"type":"ping","id":0,"y":[]}'),
    ('{"type":"ping","id":999999999999999999}', '{"type":"ping","id":999999999999999999,"a":1}'),
    ('{"jsonrpc":"2.0","method":"ping","id":7}', '{"jsonrpc":"2.0","method":"ping","id":7,"params":{}}'),
    ('{"id":7,"method":"ping","jsonrpc":"2.0"}', '{"jsonrpc":"2.0","method":"p\\u0069ng","id":7}'),
]


@pytest.mark.parametrize("fast,slow", PAIRS, ids=range(len(PAIRS)))
def test_fast_and_full_parse_give_the_same_pong(ws, fast, slow):
    a, b = _reply(ws, fast), _reply(ws, slow)
    assert _same_but_timestamp(a, b), (a, b)
    assert a.get("type", "pong") == "pong" and ("result" in a) == ('"jsonrpc"' in fast)


# Texts close to a ping that are not one the fast path may answer: each gets
# the full parse's answer (an error, or a pong whose id is not an integer).
NEAR = [
    ('{"type":"ping","id":01}', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"ping","id":-1}', {"type": "pong", "id": -1}),
    ('{"type":"ping","id":1e3}', {"type": "pong", "id": 1000.0}),
    ('{"type":"ping","id":1.5}', {"type": "pong", "id": 1.5}),
    ('{"type":"ping","id":12345678901234567890}', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"ping","id":1234567890123456789}', {"type": "pong", "id": 1234567890123456789}),
    ('{"type":"ping","id":"7"}', {"type": "pong", "id": "7"}),
    ('{"type":"ping","type":"exec","id":3}', None),  # jansson keeps the last: an exec without command
    ('{"type":"ping","id":1,"id":2}', {"type": "pong", "id": 2}),
    ('{"type":"ping","id":1}x', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"ping","id":1,}', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"ping" "id":1}', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"ping","id":1', {"type": "error", "error": "Invalid JSON"}),
    ('{"type":"Ping","id":1}', {"type": "error", "id": 1, "error": "Unknown message type: Ping"}),
    ('{"type":"ping","method":"ping","id":1}', {"type": "pong", "id": 1}),
    ('{"jsonrpc":"2.0","method":"ping"}', None),  # a notification: no reply
    ('{"jsonrpc":"2.0","type":"ping","id":4}', {"jsonrpc": "2.0", "id": 4}),
    ('{"jsonrpc":"1.0","method":"ping","id":4}', {"jsonrpc": "2.0", "id": 4}),
    ('{"type":"ping","id":1}\u0000', {"type": "error", "error": "Invalid JSON"}),
]


@pytest.mark.parametrize("text,want", NEAR, ids=range(len(NEAR)))
def test_near_pings_take_the_full_parse(ws, text, want):
    ws.send_text(text)
    if text.startswith('{"jsonrpc":"2.0","method":"ping"}'):
        ws.expect_silence(0.3)
        return
    r = ws.recv()
    if want is None:
        assert r["type"] == "error" and r["id"] == 3, r
        return
    for k, v in want.items():
        assert r.get(k) == v and type(r.get(k)) is type(v), (text, r)
    if want.get("type") == "pong":
        assert set(r) == {"type", "id", "timestamp"}, r
    if "jsonrpc" in want:
        assert r["error"]["code"] == -32600, r


def test_fast_pings_take_rate_tokens(rpc):
    s = rpc("--rate-limit", "1", "--rate-burst", "3")
    w = s.ws()
    for i in range(5):
        w.send_text('{"type":"ping","id":%d}' % i)
    w.send_text('{"jsonrpc":"2.0","method":"ping","id":5}')
    got = [w.recv() for _ in range(6)]
    assert [g["type"] for g in got[:3]] == ["pong"] * 3, got
    assert got[3:5] == [{"type": "error", "id": 3, "error": "Rate limit exceeded"},
                        {"type": "error", "id": 4, "error": "Rate limit exceeded"}], got
    assert got[5] == {"jsonrpc": "2.0", "id": 5,
                      "error": {"code": -32000, "message": "Rate limit exceeded"}}, got
