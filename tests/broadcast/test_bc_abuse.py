"""One client against everyone else: what a single sender can make the
loop do in one event is bounded by --max-fanout (a message's frame x the
members it goes to), so a big binary or chat frame in a big room cannot
hold the loop for seconds."""

import asyncio
import threading
import time

import pytest

from bchelp import AsyncWS
from lib.proc import raise_nofile, t


def metric(s, name):
    status, _, body = s.get("/metrics")
    for line in body.decode().splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


TOO_BIG = {"type": "error", "error": "Message too large for this room"}


def room_of(s, n, room="fan"):
    members = [s.ws("/?id=%s&user=m%d" % (room, i)) for i in range(n)]
    for i, m in enumerate(members):
        m.join()
    for i, m in enumerate(members):                 # the later joins
        for _ in range(n - 1 - i):
            assert m.recv_json()["type"] == "join"
    return members


def test_max_fanout_refuses_a_message_too_big_for_the_room(bc):
    s = bc("--rate-limit", "0", "--max-fanout", "100k")
    members = room_of(s, 10)
    a = members[0]
    a.send_binary(b"b" * 12000)                     # 12 kB x 9 others > 100k
    assert a.recv_json() == TOO_BIG
    a.send_binary(b"b" * 10000)                     # 90 kB: fine
    for m in members[1:]:
        msg = m.recv()
        assert msg.kind == "binary" and len(msg.data) == 10000
    a.send_text("t" * 11000)                        # ~11 kB x 10 (sender too)
    assert a.recv_json() == TOO_BIG
    a.send_text("t" * 8000)
    for m in members:
        msg = m.recv_json()
        assert msg["type"] == "message" and msg["seq"] == 1, msg
    assert metric(s, "ws_broadcast_fanout_limited_total") == 2
    # the same message is fine in a smaller room
    small = room_of(s, 3, room="small")
    small[0].send_binary(b"b" * 12000)
    assert small[1].recv().kind == "binary"
    for m in members + small:
        m.close()


def test_max_fanout_zero_is_off(bc):
    s = bc("--rate-limit", "0", "--max-fanout", "0", "--max-message", "64k")
    members = room_of(s, 4)
    members[0].send_binary(b"z" * 60000)
    for m in members[1:]:
        assert len(m.recv().data) == 60000
    for m in members:
        m.close()


@pytest.mark.heavy
@pytest.mark.ws_timeout(120)
def test_big_frames_into_a_big_room_do_not_hold_the_loop(bc):
    """Defaults: 200 members that read, one sender throwing twenty 256 KiB
    binaries (50 MB of copying each without a cap): each is refused at once,
    and a member of another room keeps getting pongs promptly."""
    raise_nofile()
    s = bc("--rate-limit", "0", "--ping-interval", "0")
    loop = asyncio.new_event_loop()

    async def members():
        conns = [await AsyncWS.connect(s.port, "/?id=big&user=r%d" % i) for i in range(200)]

        async def drain(c):
            try:
                while await c.reader.read(1 << 20):
                    pass
            except (OSError, asyncio.CancelledError):
                pass
        return conns, [asyncio.ensure_future(drain(c)) for c in conns]

    conns, tasks = loop.run_until_complete(members())
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    try:
        probe = s.ws("/?id=elsewhere")
        probe.join()
        sender = s.ws("/?id=big&user=sender")
        sender.recv_json()
        worst = 0.0
        for _ in range(20):
            sender.send_binary(b"\0" * (256 * 1024))
            t0 = time.monotonic()
            probe.send_ping(b"p")
            assert probe.recv(pongs=True).kind == "pong"
            worst = max(worst, time.monotonic() - t0)
        for _ in range(20):
            m = sender.recv_json()
            while m["type"] == "join":
                m = sender.recv_json()
            assert m == TOO_BIG
        assert worst < t(0.25), "a bystander's ping waited %.3fs" % worst
        print("worst bystander ping %.1f ms" % (worst * 1e3))
        sender.close()
        probe.close()
    finally:
        async def close_all():
            for task in tasks:
                task.cancel()
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        fut = asyncio.run_coroutine_threadsafe(close_all(), loop)
        fut.result(t(30))
        loop.call_soon_threadsafe(loop.stop)
        th.join(t(10))
        loop.close()
