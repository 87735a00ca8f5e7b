"""Processes that outlive their connection (`"keep": true`, and every pty):
server-wide ids, replay from a byte offset on attach with every byte once,
the exact lost range when the ring wrapped, several watchers, exited
processes listed with status and output, the caps (--max-kept,
--keep-buffer, --kept-total, --kept-linger), memory under a flood nobody
reads, and no process outliving the server. Clients: Python websockets."""

import os
import signal
import time

import pytest

import rpchelp
from lib.proc import rss_kib
from rpchelp import MEM_SCALE as MEM, t, wait_until
from termhelp import Conn, run

PY = "/usr/bin/python3"

# prints N numbered lines, waits for a file to appear, then N more
TWO_HALVES = ("import os, sys, time\n"
              "n, marker = int(sys.argv[1]), sys.argv[2]\n"
              "for i in range(n):\n"
              "    sys.stdout.write('%08d\\n' % i)\n"
              "sys.stdout.flush()\n"
              "while not os.path.exists(marker):\n"
              "    time.sleep(0.01)\n"
              "for i in range(n, 2 * n):\n"
              "    sys.stdout.write('%08d\\n' % i)\n")


def expected(n):
    return b"".join(b"%08d\n" % i for i in range(n))


async def wait_exited(c, pid, timeout=20.0):
    deadline = time.monotonic() + t(timeout)
    while time.monotonic() < deadline:
        p = (await c.processes()).get(pid)
        if p and not p["running"]:
            return p
        await __import__("asyncio").sleep(0.05)
    raise TimeoutError("process %s still running" % pid)


def test_disconnect_mid_output_then_attach_gets_every_byte_exactly_once(srv, tmp_path):
    marker = str(tmp_path / "go")
    n = 5000  # 90 KB in all: within the default 256 KiB ring

    async def go():
        a = await Conn.open(srv)
        pid = await a.start(argv=[PY, "-c", TWO_HALVES, str(n), marker], encoding="base64")
        assert pid.startswith("p")
        # the first connection reads part of the first half, then vanishes mid-stream
        got, _, _, first, _ = await a.collect(pid, until_exit=False,
                                             stop=lambda o: len(o["stdout"]) >= 20000)
        assert first["stdout"] == 0
        a.abort()
        open(marker, "w").close()
        b = await Conn.open(srv)
        r = await b.request({"type": "attach", "id": pid, "since": len(got),
                             "encoding": "base64"})
        assert r["type"] == "attached" and r["process"] == pid
        rest, err, lost, first2, ex = await b.collect(pid)
        assert lost == [] and err == b""
        assert first2["stdout"] == len(got)
        assert got + rest == expected(2 * n)
        assert ex["exitCode"] == 0 and ex["stdoutEnd"] == 2 * n * 9
        await b.close()
    run(go())


def test_wrapped_ring_reports_the_exact_lost_range(rpc):
    s = rpc("--rate-limit", "0", "--keep-buffer", "4k")
    total = 100000 * 9

    async def go():
        a = await Conn.open(s)
        pid = await a.start(argv=[PY, "-c", "import sys\nfor i in range(100000):\n"
                                  "    sys.stdout.write('%08d\\n' % i)\n"], encoding="base64")
        await a.close()
        b = await Conn.open(s)
        p = await wait_exited(b, pid)
        assert p["stdout"] == {"start": total - 4096, "end": total}
        assert p["exitCode"] == 0
        await b.send({"type": "attach", "id": pid, "since": 0, "encoding": "base64"})
        out, _, lost, first, ex = await b.collect(pid)
        assert lost == [("stdout", 0, total - 4096)]
        assert first["stdout"] == total - 4096
        assert out == expected(100000)[-4096:]
        assert ex["stdoutEnd"] == total
        # from inside the held range: no loss reported
        await b.send({"type": "attach", "id": pid, "since": total - 100, "encoding": "base64"})
        out, _, lost, _, _ = await b.collect(pid)
        assert lost == [] and out == expected(100000)[-100:]
        # past the end: nothing but the exit
        await b.send({"type": "attach", "id": pid, "since": total + 5, "encoding": "base64"})
        out, _, lost, _, ex = await b.collect(pid)
        assert (out, lost, ex["exitCode"]) == (b"", [], 0)
        await b.close()
    run(go())


def test_two_clients_on_one_terminal_see_the_same_bytes_and_both_type(srv):
    async def go():
        a = await Conn.open(srv)
        pid = await a.start(command="cat", pty={"cols": 80, "rows": 24}, encoding="base64")
        b = await Conn.open(srv)
        await b.request({"type": "attach", "id": pid, "encoding": "base64"})
        await a.request({"type": "stdin", "id": pid, "data": "from-a\r"})
        await b.request({"type": "stdin", "id": pid, "data": "from-b\r"})
        want = lambda o: o["stdout"].count(b"from-b") == 2  # noqa: E731  echo + cat
        out_a, _, _, fa, _ = await a.collect(pid, until_exit=False, stop=want)
        out_b, _, _, fb, _ = await b.collect(pid, until_exit=False, stop=want)
        assert fa["stdout"] == fb["stdout"] == 0
        assert out_a == out_b
        assert out_a.count(b"from-a") == 2
        procs = await a.processes()
        assert procs[pid]["attached"] == 2 and procs[pid]["pty"] is True
        await b.request({"type": "kill", "id": pid, "signal": "HUP"})
        for c in (a, b):
            _, _, _, _, ex = await c.collect(pid)
            assert ex["signal"] == "SIGHUP"
            await c.close()
    run(go())


def test_an_exited_unattached_process_is_listed_with_status_and_output(srv):
    async def go():
        a = await Conn.open(srv)
        pid = await a.start(command="echo out; echo err >&2; exit 3")
        await a.close()
        b = await Conn.open(srv)
        p = await wait_exited(b, pid)
        assert p["exitCode"] == 3 and p["signal"] is None and p["attached"] == 0
        assert p["command"] == "echo out; echo err >&2; exit 3"
        assert p["stdout"] == {"start": 0, "end": 4} and p["stderr"] == {"start": 0, "end": 4}
        assert isinstance(p["pid"], int) and p["started"] > 0
        r = await b.rpc("attach", {"id": pid, "encoding": "base64"})
        assert r["result"]["running"] is False
        await b.send({"type": "attach", "id": pid, "encoding": "base64"})
        out, err, lost, _, ex = await b.collect(pid)
        assert (out, err, lost) == (b"out\n", b"err\n", [])
        assert ex["exitCode"] == 3
        await b.close()
    run(go())


def test_an_exited_process_goes_after_kept_linger(rpc):
    s = rpc("--rate-limit", "0", "--kept-linger", "1")

    async def go():
        a = await Conn.open(s)
        pid = await a.start(command="true")
        await wait_exited(a, pid)
        deadline = time.monotonic() + t(10)
        while pid in await a.processes():
            assert time.monotonic() < deadline, "still listed"
            await __import__("asyncio").sleep(0.1)
        r = await a.request({"type": "attach", "id": pid})
        assert r["type"] == "error" and "No such" in r["error"]
        await a.close()
    run(go())


def test_max_kept_refuses_when_all_run_and_drops_the_oldest_exited(rpc):
    s = rpc("--rate-limit", "0", "--max-kept", "2")

    async def go():
        c = await Conn.open(s)
        p1 = await c.start(command="sleep 30")
        p2 = await c.start(command="sleep 30")
        r = await c.request({"type": "exec", "command": "true", "keep": True})
        assert r["type"] == "error" and "--max-kept" in r["error"]
        await c.request({"type": "kill", "id": p1, "signal": "KILL"})
        await wait_exited(c, p1)
        p3 = await c.start(command="sleep 30")
        procs = await c.processes()
        assert set(procs) == {p2, p3}
        for p in (p2, p3):
            await c.request({"type": "kill", "id": p, "signal": "KILL"})
        await c.close()
    run(go())


def test_kept_total_drops_exited_output_first(rpc):
    s = rpc("--rate-limit", "0", "--keep-buffer", "64k", "--kept-total", "100k")

    async def go():
        c = await Conn.open(s)
        old = await c.start(command="head -c 65536 /dev/zero")
        await wait_exited(c, old)
        new = await c.start(command="head -c 65536 /dev/zero")
        await wait_exited(c, new)
        procs = await c.processes()
        assert old not in procs and procs[new]["stdout"] == {"start": 0, "end": 65536}
        await c.close()
    run(go())


@pytest.mark.parametrize("msg", [
    {"type": "attach", "id": 7}, {"type": "attach", "id": "p1", "since": -1},
    {"type": "attach", "id": "p1", "since": "0"}, {"type": "attach", "id": "p1", "since": 1.5},
    {"type": "attach", "id": "p1", "encoding": "hex"},
    {"type": "attach", "id": "p1", "sinceStderr": -3},
])
def test_bad_attach_params_are_refused(srv, msg):
    async def go():
        c = await Conn.open(srv)
        await c.start(command="sleep 5")
        r = await c.request(msg)
        assert r["type"] == "error" and "Invalid params" in r["error"], r
        r = await c.rpc("attach", {k: v for k, v in msg.items() if k != "type"})
        assert r["error"]["code"] == -32602, r
        await c.close()
    run(go())


@pytest.mark.parametrize("target", ["p999", "", "x" * 300, "p1\u0000"])
def test_attach_to_an_unknown_process_is_no_such_command(srv, target):
    async def go():
        c = await Conn.open(srv)
        await c.send({"type": "attach", "id": target})
        r = await c.wait_for(lambda m: m.get("type") == "error")
        assert "No such command" in r["error"] or "Invalid" in r["error"], r
        await c.send({"jsonrpc": "2.0", "method": "attach", "params": {"id": target}, "id": 9})
        r = await c.wait_for(lambda m: "error" in m and "jsonrpc" in m)
        # unknown, or (a NUL) not even JSON that jansson accepts
        assert r["error"]["code"] in (-32003, -32700), r
        await c.close()
    run(go())


def test_a_pty_flood_nobody_reads_keeps_server_memory_bounded(rpc):
    s = rpc("--rate-limit", "0", "--exec-timeout", "120")
    base = rss_kib(s.pid)

    async def go():
        # a client that stops reading: the process is paused, not buffered
        a = await Conn.open(s, max_queue=1, read_limit=2 ** 12, write_limit=2 ** 12)
        a.ws.transport.pause_reading()
        await a.send({"type": "exec", "id": 1, "command": "yes flood", "pty": True})
        b = await Conn.open(s)
        deadline = time.monotonic() + t(20)
        while True:
            procs = await b.processes()
            if procs and list(procs.values())[0]["stdout"]["end"] > 1 << 20:
                break
            assert time.monotonic() < deadline
            await __import__("asyncio").sleep(0.05)
        pid = list(procs)[0]
        peak = 0
        for _ in range(20):
            peak = max(peak, rss_kib(s.pid))
            await __import__("asyncio").sleep(0.05)
        assert peak - base < 48 * 1024 * MEM, (base, peak)
        # the reader vanishes: the flood goes on into the ring alone
        a.abort()
        start = (await b.processes())[pid]["stdout"]["end"]
        while (await b.processes())[pid]["stdout"]["end"] < start + (64 << 20):
            assert time.monotonic() < deadline + t(60)
            peak = max(peak, rss_kib(s.pid))
            await __import__("asyncio").sleep(0.05)
        assert peak - base < 48 * 1024 * MEM, (base, peak)
        p = (await b.processes())[pid]
        assert p["stdout"]["end"] - p["stdout"]["start"] <= 256 * 1024
        await b.request({"type": "kill", "id": pid, "signal": "KILL"})
        await b.close()
    run(go())


def test_stopping_the_server_ends_kept_processes_and_their_children(rpc):
    s = rpc("--rate-limit", "0")
    pids = []

    async def go():
        c = await Conn.open(s)
        for params in ({"command": "sleep 300 & sleep 300; wait"},
                       {"command": "exec sleep 300", "pty": True}):
            pid = await c.start(**params)
            pids.append((await c.processes())[pid]["pid"])
        await c.close()
    run(go())
    groups = [os.getpgid(p) for p in pids]
    def in_groups():
        return [q for q in map(int, filter(str.isdigit, os.listdir("/proc")))
                if _pgid(q) in groups]
    # sh, its two sleeps; and the pty's sleep
    wait_until(lambda: len(in_groups()) >= 4, 10, "the commands and their children to start")
    members = in_groups()
    assert s.finish() == []

    def gone():
        # none left running; a zombie is only waiting for init to reap it
        return all(_state(q) in (None, "Z") for q in members)
    wait_until(gone, 10, "the kept processes and their children to end")


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def test_list_reports_offsets_and_attached_counts(srv):
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(command="printf abc; sleep 5")
        await c.collect(pid, until_exit=False, stop=lambda o: o["stdout"] == b"abc")
        p = (await c.processes())[pid]
        assert p["running"] is True and p["attached"] == 1
        assert p["stdout"] == {"start": 0, "end": 3}
        assert "exitCode" not in p
        r = await c.request({"type": "detach", "id": pid})
        assert r["type"] == "detached"
        assert (await c.processes())[pid]["attached"] == 0
        await c.request({"type": "kill", "id": pid, "signal": "KILL"})
        await c.close()
    run(go())


def _gauge(s, name):
    status, _, body = s.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def test_info_and_metrics_report_the_kept_processes(rpc):
    s = rpc("--rate-limit", "0", "--keep-buffer", "8k", "--max-kept", "3")
    s.metric = lambda name: _gauge(s, name)

    async def go():
        c = await Conn.open(s)
        r = await c.request({"type": "info"})
        assert r["server"]["limits"]["kept"] == {"keep_buffer": 8192, "kept_total": 64 << 20,
                                                "max_kept": 3, "kept_linger_ms": 600000}
        pid = await c.start(command="printf 12345; sleep 30")
        await c.collect(pid, until_exit=False, stop=lambda o: o["stdout"] == b"12345")
        assert s.metric("ws_rpc_kept_processes") == 1
        assert s.metric("ws_rpc_kept_running") == 1
        assert s.metric("ws_rpc_kept_buffer_bytes") >= 5
        await c.request({"type": "kill", "id": pid, "signal": "KILL"})
        await c.collect(pid)
        assert s.metric("ws_rpc_kept_running") == 0
        await c.close()
    run(go())


def test_utf8_sequence_cut_between_reads_waits_for_its_rest_at_its_own_offset(srv):
    """Text output (encoding utf8) of a kept process: a UTF-8 sequence whose
    bytes arrive in two reads is held back, not sent as U+FFFD, and the next
    event carries it whole from the sequence's own offset (no gap)."""
    # one write of b"a\xc3", then, once told, b"\xa9b\n": the first read ends mid-sequence
    prog = ("import os, sys\n"
            "os.write(1, b'a\\xc3')\n"
            "sys.stdin.readline()\n"
            "os.write(1, b'\\xa9b\\n')\n")

    async def go():
        a = await Conn.open(srv)
        pid = await a.start(argv=[PY, "-c", prog], encoding="utf8", stdinOpen=True)
        out = lambda m: m.get("id") == pid and m.get("type") == "output"  # noqa: E731
        first = await a.wait_for(out)
        assert (first["stream"], first["offset"], first["data"]) == ("stdout", 0, "a")
        # the first read is delivered: "\xc3" waits in the carry for the rest
        await a.request({"type": "stdin", "id": pid, "data": "go\n", "eof": True})
        second = await a.wait_for(out)
        assert (second["offset"], second["data"]) == (1, "\u00e9b\n")
        await a.close()
    run(go())
