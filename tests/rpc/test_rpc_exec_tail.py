"""The exec tail (issue 13): 2,000 `true` commands kept 4 in flight on one
connection, ws-rpc pinned to one core (its commands inherit it) and the
client on another: the shape that showed about one command in a hundred
over 100 ms, some over a second. No single round trip may take 50 ms.

The cause was the scheduler: every command leads a session of its own
(setsid), with autogroups each session was a scheduling group, and in a
stream of new groups an older command could wait, runnable, for hundreds
of ms. As root the sandbox now puts all commands in one cpu cgroup
(sandboxing/sandbox.c). A slow command is reported with the server's
`exec-trace` line: where its time went (spawn, setup, run, drain).

On a shared machine other processes on the server's core stall it too (a
child in set-up holds the loop): each run measures what they took of that
core (/proc/stat minus the server and its children). A run where they took
over a quarter of it does not count; the test fails when two counted runs
had a slow command (the bug showed several per thousand in every run),
and is skipped when the machine stayed that busy for all four tries. Under
AddressSanitizer (fork instead of the shared-memory spawn, every
instruction several times slower) the bound is 250 ms; under valgrind the
test is skipped (heavy).
"""

import asyncio
import json
import os
import time

import pytest
import websockets

import rpchelp
from lib import paths
from lib.proc import is_asan_build

COMMANDS = 2000
IN_FLIGHT = 4
BOUND_MS = 50.0
ASAN_BOUND_MS = 250.0


def cores():
    """(server core, client core), or None on a single-core machine."""
    mine = sorted(os.sched_getaffinity(0))
    return (mine[0], mine[1]) if len(mine) >= 2 else None


async def run_commands(port, n, in_flight):
    """Round trips in ms of n `exec true`, in_flight at a time, by id."""
    lat = {}
    sent = {}
    async with websockets.connect("ws://127.0.0.1:%d/" % port, max_size=None) as ws:
        next_id = 1

        async def send_one():
            nonlocal next_id
            i = next_id
            next_id += 1
            sent[i] = time.monotonic()
            await ws.send(json.dumps({"type": "exec", "id": i, "command": "true"}))

        for _ in range(in_flight):
            await send_one()
        while len(lat) < n:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m.get("type") in ("start", "stdout", "stderr"):
                continue
            assert m.get("type") == "result", m
            assert m["exitCode"] == 0, m
            lat[m["id"]] = (time.monotonic() - sent.pop(m["id"])) * 1000.0
            if next_id <= n:
                await send_one()
    return lat


OTHERS_MAX = 0.25
ATTEMPTS = 4


def core_ticks(core):
    """(busy, total) clock ticks of one core, or of all when core is None."""
    name = "cpu" if core is None else "cpu%d" % core
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts[0] == name:
                v = [int(x) for x in parts[1:]]
                idle = v[3] + v[4]
                return sum(v) - idle, sum(v)
    return 0, 0


def own_ticks(pid):
    """The server's CPU ticks, its reaped children's included."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15])


def one_run(srv, bound):
    """(slow commands, round trips by id, share of the core others took)."""
    pin = cores()
    before = os.sched_getaffinity(0)
    b0, t0 = core_ticks(pin[0] if pin else None)
    s0 = own_ticks(srv.pid)
    if pin:
        os.sched_setaffinity(0, {pin[1]})
    try:
        lat = asyncio.run(run_commands(srv.port, COMMANDS, IN_FLIGHT))
    finally:
        os.sched_setaffinity(0, before)
    b1, t1 = core_ticks(pin[0] if pin else None)
    others = max(0, (b1 - b0) - (own_ticks(srv.pid) - s0)) / max(1, t1 - t0)
    assert len(lat) == COMMANDS
    return sorted(((ms, i) for i, ms in lat.items() if ms > bound), reverse=True), lat, others


@pytest.mark.heavy
def test_2000_true_commands_4_in_flight_none_over_50ms(server):
    bound = ASAN_BOUND_MS if is_asan_build(paths.require_binary(rpchelp.NAME)) else BOUND_MS
    pin = cores()
    # Without the per-command pids and memory cgroups (0: none): their set-up
    # slows each start enough to hide the tail on some machines; without them
    # it showed in every run (p99 48 ms, max 93-261 ms per 1,000 here).
    srv = server(rpchelp.NAME, "--no-auth", "--rate-limit", "0", "--max-exec-per-conn", "64",
                 "--log-level", "info", "--limit-nproc", "0", "--limit-mem", "0",
                 cls=rpchelp.RpcServer,
                 preexec=(lambda: os.sched_setaffinity(0, {pin[0]})) if pin else None)
    runs = []
    counted_slow = 0
    for _attempt in range(ATTEMPTS):
        slow, lat, others = one_run(srv, bound)
        ordered = sorted(lat.values())
        runs.append("p50 %.1f ms, p99 %.1f ms, max %.1f ms, others %.0f%% of the core, "
                    "%d over %.0f ms: %s" % (
                        ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)],
                        ordered[-1], 100 * others, len(slow), bound,
                        ["id %d %.1f ms" % (i, ms) for ms, i in slow[:10]]))
        if not slow:
            return
        if others <= OTHERS_MAX:
            counted_slow += 1
        if counted_slow == 2:
            traces = [line for line in srv.log_text().splitlines() if "exec-trace" in line]
            pytest.fail("a command took over %.0f ms in two runs on a quiet core:\n  %s\n"
                        "server traces of slow commands:\n  %s"
                        % (bound, "\n  ".join(runs), "\n  ".join(traces[-20:])))
    pytest.skip("the machine stayed too busy to judge a %.0f ms bound:\n  %s"
                % (bound, "\n  ".join(runs)))
