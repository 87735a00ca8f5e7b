"""A join storm: 1,000 clients (Python's websockets) join one room in waves
of 100 at once, then half of them leave at once. Joins and leaves that
happen in one loop turn go out as one "presence" message (framed once for
every member) instead of one notice per event per member, and nobody's
view suffers for it: each member, starting from its welcome (every member
listed: --welcome-members 1000), applies the notices that follow and ends
up with exactly the room's member set, every count matching its own
tally. Not timed: the benchmark (tests/bench/run-rooms' open time at
1,000 receivers) measures the speed."""

import asyncio
import collections
import json

import pytest

pytest.importorskip("websockets")
import websockets.client  # noqa: E402

from bchelp import presence_events  # noqa: E402
from lib.proc import raise_nofile, t  # noqa: E402

N = 1000
WAVE = 100
ROOM = "storm"


class Member:
    """One client and the room as it sees it: its welcome, then every notice."""

    def __init__(self, name):
        self.name, self.ws = name, None
        self.members = collections.Counter()
        self.frames = self.batches = 0

    async def join(self, port):
        self.ws = await websockets.client.connect(
            "ws://127.0.0.1:%d/?id=%s&user=%s" % (port, ROOM, self.name),
            max_size=None, ping_interval=None, compression=None, open_timeout=t(30))
        w = json.loads(await self.ws.recv())
        assert w["type"] == "welcome" and w["id"] == self.name, w
        assert "members_more" not in w and len(w["members"]) == w["count"], w
        self.members.update(w["members"])
        # right after the welcome: the room's joins from our own on
        first = await self.next_events()
        assert first[0] == {"type": "join", "id": self.name, "room": ROOM,
                            "count": w["count"]}, (w, first)
        self.apply(first[1:])

    async def next_events(self):
        m = json.loads(await asyncio.wait_for(self.ws.recv(), t(60)))
        events = presence_events(m)
        assert events, "only joins and leaves expected, got %r" % (m,)
        self.frames += 1
        self.batches += m["type"] == "presence"
        return events

    def apply(self, events):
        for e in events:
            assert e["room"] == ROOM
            self.members[e["id"]] += 1 if e["type"] == "join" else -1
            assert self.members[e["id"]] in (0, 1), (self.name, e)
            assert e["count"] == sum(self.members.values()), (self.name, e)

    async def until(self, size):
        while sum(self.members.values()) != size:
            self.apply(await self.next_events())

    def names(self):
        return {n for n, k in self.members.items() if k}


@pytest.mark.heavy
@pytest.mark.ws_timeout(180)
def test_1000_joins_then_500_leaves_every_member_sees_the_exact_set(bc):
    raise_nofile()
    s = bc("--rate-limit", "0", "--ping-interval", "0", "--max-connections-per-ip", "0",
           "--welcome-members", str(N))
    everyone = [Member("u%d" % i) for i in range(N)]

    async def main():
        try:
            for base in range(0, N, WAVE):
                await asyncio.gather(*(m.join(s.port) for m in everyone[base:base + WAVE]))
            # every member converges on all N, each count matching its tally
            await asyncio.wait_for(asyncio.gather(*(m.until(N) for m in everyone)), t(120))
            all_names = {m.name for m in everyone}
            for m in everyone:
                assert m.names() == all_names, m.name
            # the first member saw N - 1 joins after its own, in fewer messages
            first = everyone[0]
            assert first.frames < N, "no two joins of %d shared a message" % N
            assert first.batches > 0

            leaving, staying = everyone[1::2], everyone[0::2]
            await asyncio.gather(*(m.ws.close() for m in leaving))
            await asyncio.wait_for(asyncio.gather(*(m.until(len(staying)) for m in staying)),
                                   t(120))
            remaining = {m.name for m in staying}
            for m in staying:
                assert m.names() == remaining, m.name
            info = s.get_json("/rooms/%s" % ROOM)
            assert info["count"] == len(remaining)
            assert set(info["members"]) == remaining
            print("first member: %d notices for %d joins and %d leaves, %d batched"
                  % (first.frames, N - 1, N // 2, first.batches))
        finally:
            await asyncio.gather(*(m.ws.close() for m in everyone if m.ws),
                                 return_exceptions=True)

    asyncio.run(main())


def test_leave_then_rejoin_in_one_turn_keeps_order(bc):
    """A leave batch and a join batch of one turn stay in order: a name that
    left and came back is present afterwards."""
    s = bc("--rate-limit", "0", "--ping-interval", "0", "--welcome-members", "100")

    async def main():
        obs = Member("observer")
        await obs.join(s.port)
        others = [Member("p%d" % i) for i in range(20)]
        await asyncio.gather(*(m.join(s.port) for m in others))
        await obs.until(21)
        # all leave at once and come back at once, several times
        for _ in range(3):
            await asyncio.gather(*(m.ws.close() for m in others))
            await obs.until(1)
            others = [Member(m.name) for m in others]
            await asyncio.gather(*(m.join(s.port) for m in others))
            await obs.until(21)
            assert obs.names() == {"observer"} | {m.name for m in others}
        await asyncio.gather(*(m.ws.close() for m in others + [obs]))

    asyncio.run(asyncio.wait_for(main(), t(60)))
