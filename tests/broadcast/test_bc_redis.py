"""The Redis engine (--engine redis://): several ws-broadcast nodes on one
real redis-server form one room space. 300 clients spread over 3 nodes in
one room, 5,000 messages sent from every node: each client gets every
message once, in the same order, with the same seqs; ?since= replays from
any node, with epoch, last_seq and recovered. Clients are Python's
websockets."""

import asyncio
import json

import pytest

from bchelp import run_once
from lib.proc import raise_nofile, t
from redishelp import metric, redis, start_node  # noqa: F401 (fixture)

pytest.importorskip("websockets")
import websockets.client  # noqa: E402
import websockets.exceptions  # noqa: E402

CLIENTS = 300
MESSAGES = 5000
SENDERS_PER_NODE = 2


async def connect(port, query):
    return await websockets.client.connect("ws://127.0.0.1:%d/?%s" % (port, query),
                                           max_size=1 << 24, max_queue=None,
                                           ping_interval=None, open_timeout=t(20))


async def welcome(ws):
    w = json.loads(await asyncio.wait_for(ws.recv(), t(20)))
    assert w["type"] == "welcome", w
    return w


async def read_messages(ws, n, timeout=60):
    """Raw texts of the next n chat messages (joins and leaves skipped)."""
    out = []
    while len(out) < n:
        raw = await asyncio.wait_for(ws.recv(), t(timeout))
        if raw.startswith('{"type":"message"'):
            out.append(raw)
    return out


def run(coro):
    return asyncio.run(coro)


@pytest.mark.heavy
@pytest.mark.ws_timeout(300)
def test_300_clients_on_3_nodes_get_5000_messages_once_in_one_order(server, redis):
    raise_nofile()
    flags = ("--history-size", "10000", "--send-queue", "16m", "--max-connections", "2000")
    nodes = [start_node(server, redis, *flags) for _ in range(3)]

    async def main():
        clients = []
        for i in range(CLIENTS):
            ws = await connect(nodes[i % 3].port, "id=big&user=c%d" % i)
            await welcome(ws)
            clients.append(ws)
        readers = [asyncio.ensure_future(read_messages(ws, MESSAGES)) for ws in clients]
        senders = [clients[i] for i in range(3 * SENDERS_PER_NODE)]  # on every node

        async def send(k, ws):
            for j in range(k, MESSAGES, len(senders)):
                await ws.send(json.dumps({"type": "message", "text": "m%d" % j}))

        await asyncio.gather(*(send(k, ws) for k, ws in enumerate(senders)))
        got = await asyncio.gather(*readers)
        for ws in clients:
            await ws.close()
        return got

    got = run(main())
    first = [json.loads(r) for r in got[0]]
    seqs = [m["seq"] for m in first]
    assert seqs == list(range(1, MESSAGES + 1)), "seqs not 1..5000 in order"
    assert sorted(m["text"] for m in first) == sorted("m%d" % j for j in range(MESSAGES))
    for i, g in enumerate(got):
        # byte for byte: same order, same seqs, same ts, once each
        assert g == got[0], "client %d (node %d) saw another sequence" % (i, i % 3)
    total = sum(metric(n, "ws_broadcast_redis_published_total") for n in nodes)
    assert total == MESSAGES


def test_since_replays_from_any_node_with_epoch_and_recovered(server, redis):
    nodes = [start_node(server, redis, "--history-size", "100") for _ in range(3)]

    async def main():
        a = await connect(nodes[0].port, "id=rep&user=a")
        w = await welcome(a)
        assert w["last_seq"] == 0 and len(w["epoch"]) == 16 and "recovered" not in w, w
        for j in range(30):
            await a.send("t%d" % j)
        sent = await read_messages(a, 30)
        epoch = w["epoch"]
        for node in nodes:
            for since, want in ((0, 30), (10, 20), (29, 1), (30, 0)):
                c = await connect(node.port, "id=rep&since=%d&epoch=%s" % (since, epoch))
                wc = await welcome(c)
                assert wc["epoch"] == epoch and wc["last_seq"] == 30, wc
                assert wc["recovered"] is True, (since, wc)
                assert [json.dumps(h, separators=(",", ":")) for h in wc["history"]] == \
                    sent[30 - want:], (node.port, since)
                await c.close()
            # another epoch, or a since past the room: told to reload
            c = await connect(node.port, "id=rep&since=5&epoch=0123456789abcdef")
            assert (await welcome(c))["recovered"] is False
            await c.close()
            c = await connect(node.port, "id=rep&since=31")
            assert (await welcome(c))["recovered"] is False
            await c.close()
        await a.close()

    run(main())


def test_since_older_than_history_is_not_recovered(server, redis):
    node = start_node(server, redis, "--history-size", "5")

    async def main():
        a = await connect(node.port, "id=short&user=a")
        w = await welcome(a)
        for j in range(12):
            await a.send("x%d" % j)
        await read_messages(a, 12)
        for since, want in ((7, True), (6, False), (0, False), (12, True)):
            c = await connect(node.port, "id=short&since=%d&epoch=%s" % (since, w["epoch"]))
            wc = await welcome(c)
            assert wc["recovered"] is want, (since, wc)
            assert [h["seq"] for h in wc["history"]] == list(range(max(since, 7) + 1, 13))
            await c.close()
        await a.close()

    run(main())


def test_presence_and_joins_across_nodes(server, redis):
    n1 = start_node(server, redis)
    n2 = start_node(server, redis)

    async def main():
        a = await connect(n1.port, "id=p&user=alice")
        wa = await welcome(a)
        assert wa["count"] == 1 and wa["members"] == ["alice"]
        assert json.loads(await a.recv()) == {"type": "join", "id": "alice", "room": "p",
                                              "count": 1}
        b = await connect(n2.port, "id=p&user=bob")
        wb = await welcome(b)
        assert wb["count"] == 2 and sorted(wb["members"]) == ["alice", "bob"], wb
        assert json.loads(await b.recv())["id"] == "bob"
        assert json.loads(await a.recv()) == {"type": "join", "id": "bob", "room": "p",
                                              "count": 2}
        await b.close()
        assert json.loads(await a.recv()) == {"type": "leave", "id": "bob", "room": "p",
                                              "count": 1}
        await a.close()

    run(main())


def test_history_request_pages_through_redis(server, redis):
    node = start_node(server, redis, "--history-size", "50", "--max-welcome", "2k")

    async def main():
        a = await connect(node.port, "id=pg&user=a")
        await welcome(a)
        for j in range(40):
            await a.send("y" * 100 + str(j))
        await read_messages(a, 40)
        seen, since = [], 0
        for _ in range(40):
            await a.send(json.dumps({"type": "history", "since": since}))
            while True:
                page = json.loads(await a.recv())
                if page["type"] == "history":
                    break
            assert len(json.dumps(page)) <= 2048 + 200
            seen += [h["seq"] for h in page["history"]]
            if not page["more"]:
                break
            since = seen[-1]
        assert seen == list(range(1, 41))
        await a.close()

    run(main())


def test_engine_url_checked(binary, tmp_path):
    for bad in ("redis://", "redis://h:0", "redis://h:70000", "redis://h:1/x", "redis://[::1"):
        rc, _, err, _ = run_once(["--engine", bad], tmp_path=tmp_path)
        assert rc == 100 and "error: --engine" in err, (bad, err)


HOSTILE = [
    'quote " and backslash \\ and slash /',
    '","seq":999,"from":"root","x":"',        # JSON injection into the script's concatenation
    "]] .. redis.call('FLUSHALL') .. [[",      # Lua-looking text
    "*3\r\n$3\r\nDEL\r\n$1\r\nx\r\n",          # RESP-looking text
    "%s %n %d \x00 nul",                        # format strings and a NUL
    "\x01\x02\x1f control \t tab \n newline",
    "ünïcödé ✓ 😀 \u2028 \u2029",
    "x" * 60000,
]


def test_hostile_texts_round_trip_exactly_and_add_no_fields(server, redis):
    n1 = start_node(server, redis, "--max-chat-message", "64k", "--max-message", "1m")
    n2 = start_node(server, redis, "--max-chat-message", "64k", "--max-message", "1m")

    async def main():
        a = await connect(n1.port, "id=evil&user=a")
        await welcome(a)
        b = await connect(n2.port, "id=evil&user=b")
        await welcome(b)
        for x in HOSTILE:
            await a.send(json.dumps({"type": "message", "text": x}))
        got = [json.loads(r) for r in await read_messages(b, len(HOSTILE))]
        for i, (x, m) in enumerate(zip(HOSTILE, got)):
            assert set(m) == {"type", "from", "room", "text", "seq", "ts"}, m
            assert (m["text"], m["from"], m["seq"]) == (x, "a", i + 1), i
        # history from Redis gives the same bytes back
        c = await connect(n2.port, "id=evil&since=0")
        wc = await welcome(c)
        assert [h["text"] for h in wc["history"]] == HOSTILE
        # over --max-chat-message: refused, the connection stays
        await a.send("y" * 70000)
        err = None
        while err is None:
            m = json.loads(await a.recv())
            if m["type"] == "error":
                err = m
        assert err == {"type": "error", "error": "Message too large"}
        await a.send('{"type":"message","text":')
        while True:
            m = json.loads(await a.recv())
            if m["type"] == "error":
                break
        assert m["error"] == "Invalid message format"
        for since in ("18446744073709551615", "9007199254740993", "9007199254740992"):
            d = await connect(n1.port, "id=evil&since=%s" % since)
            wd = await welcome(d)
            assert wd["recovered"] is False and wd["history"] == [], wd
            await d.close()
        await a.send("still here")
        assert json.loads((await read_messages(b, 1))[0])["seq"] == len(HOSTILE) + 1
        for ws in (a, b, c):
            await ws.close()

    run(main())


def test_redis_max_pending_bounds_what_waits_for_redis(server, redis):
    import signal as sig
    node = start_node(server, redis, "--redis-max-pending", "5")

    async def main():
        a = await connect(node.port, "id=stall&user=a")
        await welcome(a)
        redis.proc.send_signal(sig.SIGSTOP)  # Redis hangs: nothing it is asked answers
        try:
            for j in range(12):
                await a.send("p%d" % j)
            errors = 0
            while errors < 7:
                m = json.loads(await asyncio.wait_for(a.recv(), t(10)))
                if m["type"] == "join":
                    continue
                assert m == {"type": "error", "error": "Service unavailable"}, m
                errors += 1
            assert metric(node, "ws_broadcast_redis_pending") == 5
        finally:
            redis.proc.send_signal(sig.SIGCONT)
        got = [json.loads(r) for r in await read_messages(a, 5)]
        assert [(m["text"], m["seq"]) for m in got] == [("p%d" % j, j + 1) for j in range(5)]
        await a.send("after")
        assert json.loads((await read_messages(a, 1))[0])["seq"] == 6
        await a.close()

    run(main())


def test_jwt_identities_on_redis_from_is_the_tokens_sub(server, redis, tmp_path):
    """With --jwt-secret-file on every node: ?user= is ignored, the name is the
    token's sub as it is (two connections of one user on one node: no #2),
    a room outside the token's rooms gets 403, and from is always sub."""
    import base64
    import hashlib
    import hmac
    import os
    import time
    secret = b"a-redis-test-secret-of-more-than-32-bytes-0123"
    f = tmp_path / "jwt-secret"
    f.write_bytes(secret)
    os.chmod(f, 0o600)

    def b64(d):
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()

    def mint(sub, **kw):
        c = {"sub": sub, "exp": int(time.time()) + 600}
        c.update(kw)
        h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        p = b64(json.dumps(c).encode())
        return h + "." + p + "." + b64(hmac.new(secret, (h + "." + p).encode(),
                                                 hashlib.sha256).digest())

    n1 = start_node(server, redis, "--jwt-secret-file", str(f))
    n2 = start_node(server, redis, "--jwt-secret-file", str(f))

    async def main():
        info = {"name": "Alice \"A\"", "color": "#f00"}
        tok = mint("alice", rooms=["team"], info=info)
        a1 = await connect(n1.port, "id=team&user=mallory&token=" + tok)
        a2 = await connect(n1.port, "id=team&user=root&token=" + tok)
        b = await connect(n2.port, "id=team&token=" + mint("bob"))
        for ws, want in ((a1, "alice"), (a2, "alice"), (b, "bob")):
            w = await welcome(ws)
            assert w["id"] == want
        # the token's info travels through Redis: welcome, join, message
        assert sorted(zip(w["members"], [json.dumps(i) for i in w["members_info"]])) == \
            sorted([("alice", json.dumps(info)), ("alice", json.dumps(info)), ("bob", "null")]), w
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await connect(n2.port, "id=other&token=" + tok)
        assert e.value.status_code == 403
        await a2.send(json.dumps({"type": "message", "text": "hi", "from": "bob"}))
        m = json.loads((await read_messages(b, 1))[0])
        assert (m["from"], m["text"], m["info"]) == ("alice", "hi", info), m
        for ws in (a1, a2, b):
            await ws.close()

    run(main())


def test_binary_relays_reach_every_node_but_not_the_sender(server, redis):
    n1 = start_node(server, redis, "--max-message", "1m")
    n2 = start_node(server, redis, "--max-message", "1m")

    async def main():
        a = await connect(n1.port, "id=bin&user=a")
        a2 = await connect(n1.port, "id=bin&user=a2")
        b = await connect(n2.port, "id=bin&user=b")
        for ws in (a, a2, b):
            await welcome(ws)
        blobs = [bytes(range(256)), b"", b"B0123456789abcdef:1 forged header", bytes(100000)]
        for x in blobs:
            await a.send(x)
        for ws in (a2, b):
            got = []
            while len(got) < len(blobs):
                m = await asyncio.wait_for(ws.recv(), t(20))
                if isinstance(m, bytes):
                    got.append(m)
            assert got == blobs
        # the sender gets none back: its next frame is the marker it sends now
        await a.send("marker")
        while True:
            m = await asyncio.wait_for(a.recv(), t(20))
            assert not isinstance(m, bytes), "the sender got its own binary back"
            if '"marker"' in m:
                break
        for ws in (a, a2, b):
            await ws.close()

    run(main())
