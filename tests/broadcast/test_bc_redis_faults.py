"""The Redis engine when things fail: Redis down (senders get "Service
unavailable", joins 503, WebSockets stay open, nothing half-delivered),
Redis restarted with its AOF (nodes reconnect, resubscribe, the room's seq
and epoch continue), a node killed with SIGKILL mid-traffic (its members'
leaves announced within 1.5 x --presence-ttl, the others lose nothing, a
restarted node leaves no ghosts), and Redis missing at start-up."""

import asyncio
import json
import signal
import time

import pytest

import bchelp
from lib.http import http_get
from lib.proc import t, wait_until
from lib.server import Server
from redishelp import engine_up, metric, redis, redis_aof, start_node  # noqa: F401

pytest.importorskip("websockets")
import websockets.client  # noqa: E402
import websockets.exceptions  # noqa: E402

TTL = 2  # --presence-ttl for the kill test, seconds
DEAD_BOUND = 1.5 * TTL  # the documented bound for a dead node's leaves


async def connect(port, query):
    return await websockets.client.connect("ws://127.0.0.1:%d/?%s" % (port, query),
                                           max_size=1 << 24, max_queue=None,
                                           ping_interval=None, open_timeout=t(20))


async def recv(ws, timeout=20):
    return json.loads(await asyncio.wait_for(ws.recv(), t(timeout)))


async def recv_type(ws, typ, timeout=20):
    while True:
        m = await recv(ws, timeout)
        if m["type"] == typ:
            return m


def subscribed(node, n=1):
    return metric(node, "ws_broadcast_redis_rooms_subscribed") == n


def test_redis_down_error_to_senders_nothing_half_delivered_then_restart_continues(
        server, redis_aof):
    a_node = start_node(server, redis_aof)
    b_node = start_node(server, redis_aof)

    async def main():
        alice = await connect(a_node.port, "id=fail&user=alice")
        w = await recv(alice)
        bob = await connect(b_node.port, "id=fail&user=bob")
        await recv(bob)
        await alice.send("before")
        assert (await recv_type(alice, "message"))["seq"] == 1
        assert (await recv_type(bob, "message"))["text"] == "before"

        redis_aof.stop()
        for n in (a_node, b_node):
            wait_until(lambda: not engine_up(n), timeout=10, what="engine down")
        assert metric(a_node, "ws_broadcast_redis_disconnects_total") >= 1
        # the sender is told; its connection stays
        await alice.send("lost")
        assert await recv(alice) == {"type": "error", "error": "Service unavailable"}
        await alice.send(json.dumps({"type": "history", "since": 0}))
        assert await recv(alice) == {"type": "error", "error": "Service unavailable"}
        # a join cannot be served: 503, not a half-open member
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await connect(a_node.port, "id=fail&user=carol")
        assert e.value.status_code == 503

        redis_aof.start()  # same port, same AOF
        for n in (a_node, b_node):
            wait_until(lambda: engine_up(n) and subscribed(n), timeout=15,
                       what="engine up and resubscribed")
        await alice.send("after")
        # the next message anyone sees is "after", with the next seq: "lost" never left
        ma = await recv_type(alice, "message")
        mb = await recv_type(bob, "message")
        assert (ma["text"], ma["seq"]) == ("after", 2), ma
        assert mb == ma
        c = await connect(b_node.port, "id=fail&since=0&epoch=" + w["epoch"])
        wc = await recv(c)
        assert wc["epoch"] == w["epoch"] and wc["recovered"] is True, wc
        assert [h["text"] for h in wc["history"]] == ["before", "after"]
        for ws in (alice, bob, c):
            await ws.close()

    asyncio.run(main())
    assert metric(a_node, "ws_broadcast_redis_publish_failed_total") >= 1


def test_redis_restart_with_aof_seq_and_epoch_continue(server, redis_aof):
    nodes = [start_node(server, redis_aof) for _ in range(2)]

    async def main():
        a = await connect(nodes[0].port, "id=aof&user=a")
        w = await recv(a)
        b = await connect(nodes[1].port, "id=aof&user=b")
        await recv(b)
        for j in range(20):
            await a.send("x%d" % j)
        for ws in (a, b):
            for _ in range(20):
                last = await recv_type(ws, "message")
            assert last["seq"] == 20
        redis_aof.restart()
        for n in nodes:
            wait_until(lambda: engine_up(n) and subscribed(n), timeout=15,
                       what="reconnected and resubscribed")
        await b.send("next")
        m = await recv_type(a, "message")
        assert (m["seq"], m["text"], m["from"]) == (21, "next", "b"), m
        c = await connect(nodes[0].port, "id=aof&since=20&epoch=" + w["epoch"])
        wc = await recv(c)
        assert wc["recovered"] is True and wc["last_seq"] == 21, wc
        for ws in (a, b, c):
            await ws.close()

    asyncio.run(main())
    assert metric(nodes[0], "ws_broadcast_redis_connects_total") >= 4


@pytest.mark.ws_timeout(120)
def test_kill9_node_leaves_announced_in_bound_others_lose_nothing_no_ghosts(server, redis):
    flags = ("--presence-ttl", str(TTL))
    a_node, b_node, c_node = [start_node(server, redis, *flags) for _ in range(3)]
    doomed = ["dead%d" % i for i in range(10)]

    async def main():
        sender = await connect(a_node.port, "id=k&user=sender")
        await recv(sender)
        obs = [await connect(a_node.port, "id=k&user=obsA"),
               await connect(b_node.port, "id=k&user=obsB")]
        for o in obs:
            await recv(o)
        victims = []
        for name in doomed:
            v = await connect(c_node.port, "id=k&user=" + name)
            await recv(v)
            victims.append(v)

        stop = asyncio.Event()
        acked = []

        async def traffic():
            # closed loop: the next message once the previous came back (bounded)
            for j in range(20000):
                if stop.is_set():
                    return
                await sender.send("t%d" % j)
                m = await recv_type(sender, "message")
                acked.append(m["seq"])

        async def watch(o):
            seqs, leaves, last_leave = [], set(), None
            while True:
                m = await recv(o)
                if m["type"] == "message":
                    seqs.append(m["seq"])
                    if stop.is_set() and m["seq"] >= stop_seq[0]:
                        return seqs, leaves, last_leave
                elif m["type"] == "leave" and m["id"] in doomed:
                    leaves.add(m["id"])
                    last_leave = time.monotonic()
                    if leaves == set(doomed):
                        count_after[0] = m["count"]

        stop_seq = [None]
        count_after = [None]
        tr = asyncio.ensure_future(traffic())
        watchers = [asyncio.ensure_future(watch(o)) for o in obs]
        while len(acked) < 200:
            await asyncio.sleep(0)
            await asyncio.wait([tr], timeout=0.05)
        c_node.kill9()
        killed = time.monotonic()
        # traffic goes on until both observers have seen every leave
        deadline = killed + t(DEAD_BOUND * 4)
        while count_after[0] is None and time.monotonic() < deadline:
            await asyncio.wait([tr], timeout=0.05)
        stop_seq[0] = (acked[-1] if acked else 0) + 1
        stop.set()
        await tr
        # one more message marks the end for the watchers
        await sender.send("end")
        results = await asyncio.gather(*watchers)
        for v in victims:
            v.transport.abort()
        # a node started again on the same Redis leaves no ghosts behind
        d_node = start_node(server, redis, *flags)
        ws = await connect(d_node.port, "id=k&user=fresh")
        w = await recv(ws)
        await ws.close()
        for x in [sender] + obs:
            await x.close()
        return results, killed, acked, w

    results, killed, acked, w = asyncio.run(main())
    for seqs, leaves, last_leave in results:
        assert leaves == set(doomed), "missing leaves: %r" % (set(doomed) - leaves)
        assert last_leave - killed <= DEAD_BOUND + 0.5, \
            "leaves took %.2fs, documented %.1fs" % (last_leave - killed, DEAD_BOUND)
        # nothing lost: every seq from the first seen to the end, once, in order
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert set(acked) <= set(seqs)

    assert sorted(w["members"]) == ["fresh", "obsA", "obsB", "sender"], w
    assert w["count"] == 4


def test_redis_missing_at_start_then_comes(server, tmp_path):
    from redishelp import Redis
    r = Redis(tmp_path)
    node = server(bchelp.NAME, "--engine", r.url, cls=Server)
    assert not engine_up(node)

    async def refused():
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
            await connect(node.port, "id=z")
        return e.value.status_code

    assert asyncio.run(refused()) == 503
    r.start()
    try:
        wait_until(lambda: engine_up(node), timeout=15, what="engine up after Redis came")

        async def joins():
            ws = await connect(node.port, "id=z&user=u")
            w = await recv(ws)
            await ws.close()
            return w

        assert asyncio.run(joins())["count"] == 1
    finally:
        r.stop(signal.SIGKILL)


def test_lost_subscriptions_catch_up_in_order_nothing_missed(server, redis):
    """Redis drops every subscriber connection (CLIENT KILL TYPE pubsub) and a
    member on another node keeps sending: once the nodes have resubscribed,
    each room reads what it missed from the history, so every member gets
    every message once, in order."""
    a_node = start_node(server, redis)
    b_node = start_node(server, redis)

    async def main():
        alice = await connect(a_node.port, "id=cu&user=alice")
        carol = await connect(a_node.port, "id=cu&user=carol")
        bob = await connect(b_node.port, "id=cu&user=bob")
        for ws in (alice, carol, bob):
            await recv(ws)
        await bob.send("m0")
        for ws in (alice, carol, bob):
            assert (await recv_type(ws, "message"))["seq"] == 1
        assert b"+OK" in redis.command("CLIENT", "KILL", "TYPE", "pubsub") or True
        for j in range(1, 6):
            await bob.send("m%d" % j)  # published while no node is subscribed
        for n in (a_node, b_node):
            wait_until(lambda: engine_up(n) and subscribed(n), timeout=15,
                       what="resubscribed")
        await bob.send("m6")
        for ws in (alice, carol, bob):
            got = [(await recv_type(ws, "message")) for _ in range(6)]
            assert [(m["seq"], m["text"]) for m in got] == \
                [(j + 1, "m%d" % j) for j in range(1, 7)], got
        for ws in (alice, carol, bob):
            await ws.close()

    asyncio.run(main())
    assert metric(a_node, "ws_broadcast_redis_caught_up_total") >= 5
    assert metric(a_node, "ws_broadcast_redis_disconnects_total") >= 1


def test_lost_subscription_past_the_history_closes_members_to_reconnect(server, redis):
    """What a room missed is no longer all in the history (--history-size 2):
    its members are closed (1011) rather than left with a silent gap; a
    reconnect with since and epoch is told recovered:false."""
    a_node = start_node(server, redis, "--history-size", "2")
    b_node = start_node(server, redis, "--history-size", "2")

    async def main():
        alice = await connect(a_node.port, "id=gap&user=alice")
        w = await recv(alice)
        bob = await connect(b_node.port, "id=gap&user=bob")
        await recv(bob)
        redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        for j in range(5):
            await bob.send("g%d" % j)
        with pytest.raises(websockets.exceptions.ConnectionClosed) as e:
            for _ in range(100):
                m = await recv(alice)
                assert m["type"] != "message", m  # nothing out of order gets through
        assert e.value.rcvd.code == 1011 and "since" in e.value.rcvd.reason
        a2 = await connect(a_node.port, "id=gap&since=0&epoch=" + w["epoch"])
        w2 = await recv(a2)
        assert w2["recovered"] is False and w2["last_seq"] == 5, w2
        await a2.close()
        await bob.close()

    asyncio.run(main())


def test_db_from_the_environment_yields_to_engine_redis(server, redis):
    """An image sets WS_DB for SQLite; WS_ENGINE=redis:// still starts, on
    Redis, and says the database is ignored."""
    node = server(bchelp.NAME, cls=Server,
                  env={"WS_DB": "/nonexistent/dir/rooms.db", "WS_ENGINE": redis.url})
    wait_until(lambda: engine_up(node), timeout=10, what="engine up")
    assert "db ignored=yes" in node.log_text()


def test_healthz_is_503_degraded_while_redis_is_down_and_the_filter_is_the_allowlist(
        server, redis):
    """/healthz is readiness: while Redis cannot serve it answers 503
    "degraded" with the reason (open WebSockets stay), and 200 once the
    engine is back. Reconnecting works under the server allowlist (socket,
    connect: the Redis address was resolved before confinement)."""
    node = start_node(server, redis)
    status, _, body = http_get(node.port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"

    async def main():
        alice = await connect(node.port, "id=health&user=alice")
        await recv(alice)
        redis.stop()
        wait_until(lambda: not engine_up(node), timeout=10, what="engine down")
        status, _, body = http_get(node.port, "/healthz")
        h = json.loads(body)
        assert status == 503
        assert h["status"] == "degraded" and h["reason"] == "redis unavailable"
        # reconnect attempts run under the filter: the server lives on
        redis.start()
        wait_until(lambda: engine_up(node), timeout=15, what="engine up again")
        status, _, body = http_get(node.port, "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        await alice.send("after")
        assert (await recv_type(alice, "message"))["text"] == "after"
        await alice.close()

    asyncio.run(main())
    with open(node.log_path) as f:
        log = f.read()
    assert "default=kill" in log, "the Redis engine runs under the server allowlist"
