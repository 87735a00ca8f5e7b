"""Room isolation, and exact presence counts under concurrent joins/leaves."""

import asyncio
import random
import sqlite3

import pytest

from bchelp import AsyncWS, presence_events
from lib.proc import t, wait_until


def test_two_rooms_isolated(bc):
    s = bc("--rate-limit", "0")
    a1, a2 = s.ws("/?id=roomA&user=a1"), s.ws("/?id=roomA&user=a2")
    b1, b2 = s.ws("/?id=roomB&user=b1"), s.ws("/?id=roomB&user=b2")
    wa1, _ = a1.join()
    wa2, _ = a2.join()
    wb1, _ = b1.join()
    wb2, _ = b2.join()
    # counts and members are per room
    assert (wa1["count"], wa2["count"], wb1["count"], wb2["count"]) == (1, 2, 1, 2)
    assert sorted(wa2["members"]) == ["a1", "a2"] and sorted(wb2["members"]) == ["b1", "b2"]
    assert a1.recv_json() == {"type": "join", "id": "a2", "room": "roomA", "count": 2}
    assert b1.recv_json() == {"type": "join", "id": "b2", "room": "roomB", "count": 2}

    # traffic in A: text, binary, a join and a leave
    for i in range(10):
        a1.send_text("A%d" % i)
    a2.send_binary(b"\x01\x02A-binary")
    for ws, n in ((a1, 11), (a2, 10)):
        got = [ws.recv() for _ in range(n)]
        texts = [m.obj for m in got if m.kind == "text"]
        binary = [m.data for m in got if m.kind == "binary"]
        assert [m["text"] for m in texts] == ["A%d" % i for i in range(10)]
        assert [m["seq"] for m in texts] == list(range(1, 11))
        assert all(m["room"] == "roomA" and m["type"] == "message" for m in texts)
        assert binary == ([b"\x01\x02A-binary"] if ws is a1 else [])
    a3 = s.ws("/?id=roomA&user=a3")
    a3.join()
    a3.close()
    for ws in (a1, a2):
        assert ws.recv_json() == {"type": "join", "id": "a3", "room": "roomA", "count": 3}
        assert ws.recv_json() == {"type": "leave", "id": "a3", "room": "roomA", "count": 2}

    # B saw none of it: the next thing each B member gets is B's own first message
    b2.send_text("B0")
    for ws in (b1, b2):
        m = ws.recv_json()
        assert m["type"] == "message" and m["room"] == "roomB"
        assert m["text"] == "B0" and m["seq"] == 1, "seq is per room"
    wb3 = s.ws("/?id=roomB&since=0")
    w, _ = wb3.join()
    assert [h["text"] for h in w["history"]] == ["B0"]
    assert w["count"] == 3 and sorted(w["members"]) == sorted(["b1", "b2", w["id"]])
    rooms = {r["room"]: r for r in s.get_json("/rooms")}
    assert rooms["roomA"] == {"room": "roomA", "count": 2, "last_seq": 10}
    assert rooms["roomB"] == {"room": "roomB", "count": 3, "last_seq": 1}
    for ws in (a1, a2, b1, b2, wb3):
        ws.close()


N_CLIENTS = 200


@pytest.mark.heavy
@pytest.mark.ws_timeout(90)
def test_counts_exact_under_200_concurrent_joins_and_leaves(bc):
    """200 clients join one room concurrently, half leave concurrently while
    the rest are still joining; an observer present throughout sees every
    join/leave (one at a time or batched in a "presence" message) with a
    count that moves by exactly one per event, and the final count agrees
    with /rooms, /rooms/ROOM and the database."""
    # every member listed in each welcome (the default lists the newest 100)
    s = bc("--rate-limit", "0", "--ping-interval", "0", "--welcome-members", "1000")
    room = "crowd"
    rng = random.Random(1234)

    async def main():
        obs = await AsyncWS.connect(s.port, "/?id=%s&user=observer" % room)
        w = await obs.recv_json()
        assert w["type"] == "welcome" and w["count"] == 1
        assert (await obs.recv_json())["count"] == 1
        events = []
        expected_events = N_CLIENTS + N_CLIENTS // 2

        async def observe():
            while len(events) < expected_events:
                m = await obs.recv(timeout=30)
                assert m.kind == "text", m
                assert presence_events(m.obj), m
                events.extend(presence_events(m.obj))

        watcher = asyncio.create_task(observe())
        leavers = set(rng.sample(range(N_CLIENTS), N_CLIENTS // 2))
        conns = {}

        async def client(i):
            await asyncio.sleep(rng.random() * 0.2)          # spread the joins
            ws = await AsyncWS.connect(s.port, "/?id=%s&user=c%d" % (room, i))
            welcome = await ws.recv_json()
            assert welcome["type"] == "welcome" and welcome["id"] == "c%d" % i
            assert welcome["count"] == len(welcome["members"])
            assert "c%d" % i in welcome["members"] and "observer" in welcome["members"]
            m = await ws.recv_json()   # right after: the joins from our own on
            assert presence_events(m)[0] == {"type": "join", "id": "c%d" % i, "room": room,
                                             "count": welcome["count"]}, (welcome, m)
            if i in leavers:
                await asyncio.sleep(rng.random() * 0.1)
                await ws.close()
            else:
                conns[i] = ws

        await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(N_CLIENTS))), t(60))
        await asyncio.wait_for(watcher, t(60))
        return obs, events, leavers, conns

    loop = asyncio.new_event_loop()
    try:
        obs, events, leavers, conns = loop.run_until_complete(main())
        joins = [e for e in events if e["type"] == "join"]
        leaves = [e for e in events if e["type"] == "leave"]
        assert len(joins) == N_CLIENTS and len(leaves) == N_CLIENTS // 2
        assert sorted(e["id"] for e in joins) == sorted("c%d" % i for i in range(N_CLIENTS))
        assert sorted(e["id"] for e in leaves) == sorted("c%d" % i for i in leavers)
        count = 1
        for e in events:
            assert e["room"] == room
            count += 1 if e["type"] == "join" else -1
            assert e["count"] == count, "count moved by other than one at %r" % e
        remaining = N_CLIENTS - N_CLIENTS // 2 + 1
        assert count == remaining
        info = s.get_json("/rooms/%s" % room)
        assert info["count"] == remaining
        assert sorted(info["members"]) == sorted(["observer"] + ["c%d" % i for i in conns])
        assert {r["room"]: r["count"] for r in s.get_json("/rooms")}[room] == remaining
        db = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
        try:
            open_rows = db.execute("SELECT user FROM memberships WHERE room = ? AND left_ms "
                                   "IS NULL", (room,)).fetchall()
            total = db.execute("SELECT count(*) FROM memberships WHERE room = ?",
                               (room,)).fetchone()[0]
        finally:
            db.close()
        assert sorted(u for (u,) in open_rows) == sorted(info["members"])
        assert total == N_CLIENTS + 1

        # now everyone leaves at once; the room empties exactly
        async def close_all():
            await asyncio.gather(*(ws.close() for ws in list(conns.values()) + [obs]))
        loop.run_until_complete(close_all())
    finally:
        loop.close()
    wait_until(lambda: s.get_json("/rooms/%s" % room)["count"] == 0, timeout=20,
               what="the room to empty")
    assert s.get_json("/rooms/%s" % room)["members"] == []
    db = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
    try:
        assert db.execute("SELECT count(*) FROM memberships WHERE left_ms IS NULL"
                          ).fetchone()[0] == 0
    finally:
        db.close()
