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
