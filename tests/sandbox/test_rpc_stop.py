"""A command cannot freeze ws-rpc by stopping another command's child
between its privilege drop and execve (kill(-1, SIGSTOP) as ws-exec): the
server never waits on a stopped child (rpc/exec.c await_exec), so its loop
keeps answering and the racing starts fail with a clear error."""

import asyncio
import json
import os
import sys
import time

import pytest
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rpc"))
import rpchelp  # noqa: E402

STOPPER = ("import os, sys, time\n"
           "end = time.monotonic() + float(sys.argv[1])\n"
           "while time.monotonic() < end:\n"
           "    try:\n"
           "        os.kill(-1, 19)\n"
           "    except OSError:\n"
           "        pass\n")


async def healthz_ms(port, timeout=3.0):
    t0 = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(r.read(64), timeout)
        w.close()
        return (time.monotonic() - t0) * 1000 if b" 200 " in head else None
    except (OSError, asyncio.TimeoutError):
        return None


@pytest.mark.skipif(os.geteuid() != 0, reason="commands run as ws-exec only when ws-rpc is root")
def test_stopping_every_command_cannot_freeze_the_server(tmp_path):
    if not os.access(rpchelp.BINARY, os.X_OK):
        pytest.skip("ws-rpc is not built")
    s = rpchelp.RpcServer(args=["--no-auth", "--rate-limit", "0"],
                          log_path=tmp_path / "rpc.log").start()
    url = "ws://127.0.0.1:%d/" % s.port
    seconds = 3.0
    replies = []

    async def attacker():
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"type": "exec", "id": "stop", "timeout_ms": 8000,
                                      "argv": ["/usr/bin/python3", "-c", STOPPER, str(seconds)]}))
            await asyncio.wait_for(ws.recv(), 20)

    async def victim():
        await asyncio.sleep(0.3)
        sent = 0
        async with websockets.connect(url) as ws:
            async def rx():
                while True:
                    replies.append(json.loads(await ws.recv()))
            task = asyncio.create_task(rx())
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                if sent - len(replies) < 4:
                    await ws.send(json.dumps({"type": "exec", "id": sent, "argv": ["true"],
                                              "timeout_ms": 1000}))
                    sent += 1
                else:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(1.5)
            task.cancel()

    async def main():
        await asyncio.wait_for(asyncio.gather(attacker(), victim()), 40)
        # the attack is over: the loop answers at once
        return await healthz_ms(s.port)

    try:
        ms = asyncio.run(main())
        assert ms is not None, "ws-rpc's loop is frozen after the attack"
        assert replies, "no exec was answered during the attack"
        print("during the attack: %d replies; healthz after: %.1f ms" % (len(replies), ms))
    finally:
        problems = s.finish()
    assert not problems, problems
