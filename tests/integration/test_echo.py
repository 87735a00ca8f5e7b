"""ws-echo end to end: the real `websockets` client library (10.4, asyncio
API), the flags of docs/configuration.md, HTTP endpoints, signals."""

import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import time

import pytest

websockets = pytest.importorskip(
    "websockets", reason="needs Debian's python3-websockets 10.4: run with /usr/bin/python3")
from websockets.exceptions import ConnectionClosed, InvalidStatusCode  # noqa: E402

import wsraw  # noqa: E402
from lib.proc import VALGRIND, free_port  # noqa: E402
from lib.server import run_once  # noqa: E402
from wsraw import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient, build_frame, t  # noqa: E402


def run(coro, timeout=30):
    """Run a coroutine with an overall time bound."""
    return asyncio.run(asyncio.wait_for(coro, t(timeout)))


def wsconnect(srv, path="/", **kw):
    kw.setdefault("ping_interval", None)  # the client sends no pings of its own
    kw.setdefault("max_size", None)
    kw.setdefault("open_timeout", t(10))
    kw.setdefault("close_timeout", t(5))
    return websockets.connect(srv.url(path), **kw)


async def upgrade_result(srv, path="/", **kw):
    """101 if the upgrade succeeded (and an echo works), else the HTTP status."""
    try:
        async with wsconnect(srv, path, **kw) as ws:
            await ws.send("probe")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "probe"
            return 101
    except InvalidStatusCode as e:
        return e.status_code


async def closed_code(ws, timeout=5):
    """Wait for the server to close; return (code, reason) it sent."""
    await asyncio.wait_for(ws.wait_closed(), t(timeout))
    return ws.close_code, ws.close_reason


def healthz(srv):
    r = wsraw.http(srv.port, "/healthz")
    assert r.status == 200, r
    return json.loads(r.body)


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = METRIC_LINE.match(line)
        assert m, "not a Prometheus sample line: %r" % line
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def metrics(srv):
    r = wsraw.http(srv.port, "/metrics")
    assert r.status == 200, r
    return parse_metrics(r.body.decode())


def metric(samples, name, **labels):
    """Sum of the samples of `name` whose labels include `labels` (the
    server may add labels of its own, e.g. server="ws-echo")."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def metric_sum(samples, name):
    return sum(v for (n, _), v in samples.items() if n == name)


def eventually(fn, timeout=5.0, interval=0.05):
    """Poll fn() until it returns a truthy value (server state changes
    asynchronously after a client closes); returns the last value."""
    deadline = time.monotonic() + t(timeout)
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# =============================================================================
# echo through a real client

def test_text_binary_empty(echo):
    async def main():
        async with wsconnect(echo) as ws:
            for msg in ["hello", "κόσμε \U0001F600", b"\x00\x01\xff", "", b""]:
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), t(5))
                assert type(got) is type(msg) and got == msg
    run(main())


def test_one_mib_messages(echo):
    async def main():
        async with wsconnect(echo) as ws:
            data = os.urandom(1 << 20)
            await ws.send(data)
            assert await asyncio.wait_for(ws.recv(), t(10)) == data
            text = "x" * (1 << 20)
            await ws.send(text)
            assert await asyncio.wait_for(ws.recv(), t(10)) == text
    run(main())


def test_fragmented_send(echo):
    async def main():
        async with wsconnect(echo) as ws:
            await ws.send(["frag", "ment", "ed ", "κόσμε"])
            assert await asyncio.wait_for(ws.recv(), t(5)) == "fragmented κόσμε"
            await ws.send([b"\x01", b"", b"\x02\x03"])
            assert await asyncio.wait_for(ws.recv(), t(5)) == b"\x01\x02\x03"
    run(main())


def test_100_pipelined_messages_in_order(echo):
    async def main():
        async with wsconnect(echo) as ws:
            msgs = ["message %d %s" % (i, "." * i) for i in range(100)]
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                assert await asyncio.wait_for(ws.recv(), t(5)) == m
    run(main())


def test_ping_pong(echo):
    async def main():
        async with wsconnect(echo) as ws:
            for payload in [b"", b"abc", os.urandom(125)]:
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, t(5))
            await ws.send("after pings")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "after pings"
    run(main())


@pytest.mark.parametrize("code,reason", [(1000, ""), (1000, "bye"), (1001, "going"),
                                         (3000, "app"), (4999, "κόσμε")])
def test_close_code_seen_by_client(echo, code, reason):
    async def main():
        ws = await wsconnect(echo)
        await ws.send("x")
        await ws.recv()
        await ws.close(code, reason)
        assert ws.close_code == code, "server answered close %r with %r" % (code, ws.close_code)
    run(main())


def test_oversized_closes_1009_other_client_served(server):
    srv = server("ws-echo", "--max-message", "1k")

    async def main():
        async with wsconnect(srv) as good, wsconnect(srv) as bad:
            await good.send("a" * 1024)
            assert await good.recv() == "a" * 1024
            await bad.send(b"b" * 1025)
            code, _ = await closed_code(bad)
            assert code == 1009
            for i in range(10):
                await good.send("still here %d" % i)
                assert await asyncio.wait_for(good.recv(), t(5)) == "still here %d" % i
    run(main())


def test_invalid_utf8_closes_1007_other_client_served(echo):
    async def main():
        async with wsconnect(echo) as good:
            raw = wsraw.connect(echo.port)
            raw.send_frame(OP_TEXT, b"bad \xed\xa0\x80")
            raw.expect_close(1007)
            await good.send("fine")
            assert await asyncio.wait_for(good.recv(), t(5)) == "fine"
    run(main())


@pytest.mark.ws_timeout(180)
def test_1000_concurrent_connections(echo):
    n = 1000

    async def main():
        sem = asyncio.Semaphore(100)

        async def open_one():
            async with sem:
                return await wsconnect(echo, "/?id=%d" % 0, compression=None,
                                       open_timeout=t(60))
        t0 = time.monotonic()
        conns = await asyncio.gather(*(open_one() for _ in range(n)))
        opened = time.monotonic() - t0
        try:
            h = healthz(echo)
            assert h["connections"] in (n, n + 1), h  # +1: the /healthz request itself (ambiguous)

            async def echo_one(i, ws):
                msg = "connection %d" % i
                await ws.send(msg)
                assert await asyncio.wait_for(ws.recv(), t(30)) == msg
            t1 = time.monotonic()
            await asyncio.gather(*(echo_one(i, ws) for i, ws in enumerate(conns)))
            print("opened %d in %.2fs, echoed on all in %.2fs" % (n, opened, time.monotonic() - t1))
        finally:
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    run(main(), timeout=150)
    assert eventually(lambda: healthz(echo)["connections"] <= 1), healthz(echo)


@pytest.mark.parametrize("path", ["/?id=x", "/ws/echo?id=x", "/ws/echo", "/a/b/c?x=1&y=%20z",
                                  "/healthz?upgrade", "/metrics"])
def test_any_path_upgrades(echo, path):
    """Paths that are HTTP endpoints for GET still upgrade with WS headers."""
    assert run(upgrade_result(echo, path)) == 101


# =============================================================================
# origin and token

def test_allowed_origin(server):
    srv = server("ws-echo", "--allowed-origin", "https://a.example",
                 "--allowed-origin", "http://localhost:8000")

    async def main():
        assert await upgrade_result(srv, origin="https://a.example") == 101
        assert await upgrade_result(srv, origin="http://localhost:8000") == 101
        assert await upgrade_result(srv) == 101  # no Origin: not a browser, allowed
        for bad in ["https://evil.example", "https://a.example.evil", "http://a.example",
                    "null"]:
            assert await upgrade_result(srv, origin=bad) == 403, bad
    run(main())


def test_allowed_origin_from_env(server):
    srv = server("ws-echo", env={"WS_ALLOWED_ORIGIN": "https://a.example,https://b.example"})

    async def main():
        assert await upgrade_result(srv, origin="https://a.example") == 101
        assert await upgrade_result(srv, origin="https://b.example") == 101
        assert await upgrade_result(srv, origin="https://c.example") == 403
    run(main())


def test_origin_rejection_counted_in_metrics(server):
    srv = server("ws-echo", "--allowed-origin", "https://a.example")
    before = metric_sum(metrics(srv), "ws_rejected_total")
    assert run(upgrade_result(srv, origin="https://evil.example")) == 403
    after = metrics(srv)
    assert metric_sum(after, "ws_rejected_total") == before + 1, \
        [k for k in after if k[0] == "ws_rejected_total"]


TOKEN = "s3cret-token_42"


@pytest.fixture
def token_server(server, tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\nsecond-line\n")
    return server("ws-echo", "--token-file", str(path))


def test_token_header_and_query(token_server):
    srv = token_server

    async def main():
        auth = {"Authorization": "Bearer " + TOKEN}
        assert await upgrade_result(srv, extra_headers=auth) == 101
        assert await upgrade_result(srv, "/?token=" + TOKEN) == 101
        assert await upgrade_result(srv, "/ws/echo?id=7&token=" + TOKEN) == 101
    run(main())


@pytest.mark.parametrize("how", ["none", "wrong-header", "wrong-query", "prefix", "longer",
                                 "second-line", "basic", "empty-query"])
def test_token_missing_or_wrong_401(token_server, how):
    srv = token_server
    path, headers = "/", {}
    if how == "wrong-header":
        headers = {"Authorization": "Bearer nope"}
    elif how == "wrong-query":
        path = "/?token=nope"
    elif how == "prefix":
        headers = {"Authorization": "Bearer " + TOKEN[:-1]}
    elif how == "longer":
        path = "/?token=" + TOKEN + "x"
    elif how == "second-line":
        headers = {"Authorization": "Bearer second-line"}
    elif how == "basic":
        headers = {"Authorization": "Basic " + TOKEN}
    elif how == "empty-query":
        path = "/?token="
    assert run(upgrade_result(srv, path, extra_headers=headers)) == 401


def test_token_from_env(server):
    srv = server("ws-echo", env={"WS_TOKEN": "env-token"})

    async def main():
        assert await upgrade_result(srv, extra_headers={"Authorization": "Bearer env-token"}) == 101
        assert await upgrade_result(srv, "/?token=env-token") == 101
        assert await upgrade_result(srv) == 401
        assert await upgrade_result(srv, "/?token=other") == 401
    run(main())


def test_token_not_required_for_plain_http(token_server):
    """The token guards upgrades; health checks and GET / stay open
    (the Sandbox SDK probes GET / and wants 200-399)."""
    assert wsraw.http(token_server.port, "/healthz").status == 200
    assert wsraw.http(token_server.port, "/").status == 200


# =============================================================================
# connection limits

def test_max_connections_then_503(server):
    srv = server("ws-echo", "--max-connections", "5")

    async def main():
        conns = [await wsconnect(srv) for _ in range(5)]
        for ws in conns:
            await ws.send("ok")
            assert await ws.recv() == "ok"
        assert await upgrade_result(srv) == 503
        await conns[0].close()
        # The server sees the close asynchronously: retry briefly.
        deadline = time.monotonic() + t(5)
        while True:
            status = await upgrade_result(srv)
            if status == 101 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 101, "a slot freed by a close was not reusable"
        for ws in conns[1:]:
            await ws.close()
    run(main())


def test_max_connections_still_answers_health_checks(server):
    """--max-connections counts WebSockets: at capacity an upgrade gets 503,
    while a plain GET /healthz (a supervisor's probe) is still answered."""
    srv = server("ws-echo", "--max-connections", "2")

    async def main():
        a = await wsconnect(srv)
        b = await wsconnect(srv)
        assert await upgrade_result(srv) == 503
        r = wsraw.http(srv.port, "/healthz")
        assert r.status == 200, r
        assert json.loads(r.body)["connections"] == 2
        await a.close()
        await b.close()
    run(main())


def test_max_connections_per_ip(server):
    srv = server("ws-echo", "--max-connections-per-ip", "2")

    async def main():
        a = await wsconnect(srv)
        b = await wsconnect(srv)
        assert await upgrade_result(srv) == 503
        # Another loopback address is another client.
        assert await upgrade_result(srv, local_addr=("127.0.0.2", 0)) == 101
        await a.close()
        deadline = time.monotonic() + t(5)
        while True:
            status = await upgrade_result(srv)
            if status == 101 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status == 101
        await b.close()
    run(main())


# =============================================================================
# slow consumers, rate limit

@pytest.mark.ws_timeout(120)
def test_send_queue_slow_consumer_closed_1008_memory_bounded(server):
    # The server requires --send-queue >= --max-message + a frame header.
    srv = server("ws-echo", "--send-queue", "64k", "--max-message", "32k")
    c = RawClient(srv.port, rcvbuf=4096, timeout=5)
    r = c.handshake("/")
    assert r.status == 101, r
    rss0 = srv.rss_kib()
    peak = rss0
    chunk = os.urandom(32 * 1024)
    frame = build_frame(OP_BINARY, chunk)
    sent = 0
    c.sock.settimeout(t(2))
    t0 = time.monotonic()
    stop_reason = "sent everything"
    for i in range(1536):  # up to 48 MiB, never reading
        try:
            c.sock.sendall(frame)
            sent += len(chunk)
        except socket.timeout:
            stop_reason = "server stopped reading"
            break
        except OSError as e:
            stop_reason = "send failed: %s" % e
            break
        if i % 8 == 0:
            peak = max(peak, srv.rss_kib())
        if time.monotonic() - t0 > t(30):
            stop_reason = "time bound"
            break
    peak = max(peak, srv.rss_kib())
    print("client sent %.1f MiB without reading (%s); server VmRSS %d -> peak %d KiB"
          % (sent / 1048576, stop_reason, rss0, peak))
    # Now read: the echoes the server had already queued, then close 1008.
    f, before = c.wait_close(timeout=20, allow=(OP_BINARY, OP_CONT))
    assert f.close_code == 1008, "expected 1008 slow consumer, got %r" % f
    assert f.close_reason == b"slow consumer", f
    c.expect_eof(timeout=10)
    if not VALGRIND:
        assert peak - rss0 < 32 * 1024, "server RSS grew by %d KiB with a 64k send queue" % (peak - rss0)
    assert srv.alive()


def test_send_queue_does_not_affect_fast_reader(server):
    srv = server("ws-echo", "--send-queue", "64k", "--max-message", "60000")

    async def main():
        async with wsconnect(srv) as ws:
            for _ in range(50):
                data = os.urandom(60000)
                await ws.send(data)
                assert await asyncio.wait_for(ws.recv(), t(5)) == data
    run(main())


def test_rate_limit_drops_small_excess_and_stays_open(server):
    """Contract: '--rate-limit N: messages per second per connection (token
    bucket)', burst default 2 x rate. What happens past the bucket is not
    written down; expected here: a small excess is dropped (not echoed) and
    the connection stays open."""
    rate, burst = 5, 10
    srv = server("ws-echo", "--rate-limit", str(rate))

    async def main():
        async with wsconnect(srv) as ws:
            for i in range(burst + 3):
                await ws.send("m%d" % i)
            got = []
            t0 = time.monotonic()
            while True:
                try:
                    got.append(await asyncio.wait_for(ws.recv(), 0.5))
                except asyncio.TimeoutError:
                    break
            elapsed = time.monotonic() - t0
            print("burst of %d: %d echoed" % (burst + 3, len(got)))
            assert burst <= len(got) <= burst + rate * elapsed + 1, got
            assert len(got) < burst + 3, "nothing was dropped"
            assert got == sorted(got, key=lambda m: int(m[1:])), "echo order changed"
            await asyncio.sleep(0.5)  # let the bucket refill a little
            await ws.send("after")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "after"
    run(main())


@pytest.mark.ws_timeout(60)
def test_rate_limit_sustained_flood_closed_1008(server):
    srv = server("ws-echo", "--rate-limit", "5")

    async def main():
        async with wsconnect(srv) as ws:
            echoed = 0
            t0 = time.monotonic()
            try:
                while time.monotonic() - t0 < 10:  # 20 messages every 0.1 s
                    for _ in range(20):
                        await ws.send("flood")
                    try:
                        while True:
                            await asyncio.wait_for(ws.recv(), 0.1)
                            echoed += 1
                    except asyncio.TimeoutError:
                        pass
            except ConnectionClosed:
                pass
            code, reason = await closed_code(ws, timeout=5)
            print("flood: %d echoed, closed after %.2fs: %r %r"
                  % (echoed, time.monotonic() - t0, code, reason))
            assert code == 1008
    run(main())


def test_rate_limit_allows_traffic_under_the_rate(server):
    srv = server("ws-echo", "--rate-limit", "50", "--rate-burst", "5")

    async def main():
        async with wsconnect(srv) as ws:
            for i in range(20):  # 20 messages at ~25/s
                await ws.send("m%d" % i)
                assert await asyncio.wait_for(ws.recv(), t(5)) == "m%d" % i
                await asyncio.sleep(0.04)
    run(main())


# =============================================================================
# keepalive and idle

def test_ping_interval_answering_client_stays_open(server):
    srv = server("ws-echo", "--ping-interval", "1")

    async def main():
        async with wsconnect(srv) as ws:  # websockets answers pings itself
            await asyncio.sleep(3.5)       # elapsed time is the subject here
            await ws.send("still open")
            assert await asyncio.wait_for(ws.recv(), t(5)) == "still open"
    run(main())


def test_ping_interval_pings_arrive_and_answers_keep_it_open(server):
    srv = server("ws-echo", "--ping-interval", "1")
    c = wsraw.connect(srv.port)
    pings = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.0:
        try:
            f = c.recv_frame(timeout=0.5)
        except TimeoutError:
            continue
        assert f is not None, "server closed a client that answered its pings"
        assert f.opcode == OP_PING, "unexpected %r" % f
        pings += 1
        c.send_frame(OP_PONG, f.payload)
    print("%d pings in 4s with --ping-interval 1" % pings)
    assert pings >= 2
    c.send_text(b"alive")
    while True:  # another ping may come first
        op, data = c.recv_message()
        if op != OP_PING:
            break
        c.send_frame(OP_PONG, data)
    assert (op, data) == (OP_TEXT, b"alive")


def test_ping_interval_silent_client_closed_1001(server):
    srv = server("ws-echo", "--ping-interval", "1")
    c = wsraw.connect(srv.port)
    time.sleep(4.5)  # never read, never answer: that is the test
    f, before = c.wait_close(timeout=6, allow=(OP_PING,))
    assert any(b.opcode == OP_PING for b in before), "no ping before the close"
    assert f.close_code == 1001, f
    assert f.close_reason == b"ping timeout", f
    c.expect_eof()


def test_ping_interval_zero_is_off(server):
    srv = server("ws-echo", "--ping-interval", "0")
    c = wsraw.connect(srv.port)
    with pytest.raises(TimeoutError):
        c.recv_frame(timeout=2.5)


def test_idle_timeout_closes_silent_client_1001(server):
    srv = server("ws-echo", "--idle-timeout", "1", "--ping-interval", "0")

    async def main():
        async with wsconnect(srv) as ws:
            t0 = time.monotonic()
            code, reason = await closed_code(ws, timeout=6)
            print("idle close after %.2fs" % (time.monotonic() - t0))
            assert (code, reason) == (1001, "idle timeout")
    run(main())


def test_idle_timeout_active_client_stays(server):
    srv = server("ws-echo", "--idle-timeout", "1", "--ping-interval", "0")

    async def main():
        async with wsconnect(srv) as ws:
            for i in range(10):  # 3 s of traffic every 0.3 s
                await ws.send("tick %d" % i)
                assert await asyncio.wait_for(ws.recv(), t(5)) == "tick %d" % i
                await asyncio.sleep(0.3)
    run(main())


def test_idle_timeout_pongs_do_not_count(server):
    srv = server("ws-echo", "--idle-timeout", "1.5", "--ping-interval", "0.4")

    async def main():
        async with wsconnect(srv) as ws:  # answers every ping, sends no message
            code, reason = await closed_code(ws, timeout=8)
            assert (code, reason) == (1001, "idle timeout")
    run(main())


def test_fractional_durations_accepted(server):
    srv = server("ws-echo", "--idle-timeout", "0.5", "--ping-interval", "0")
    c = wsraw.connect(srv.port)
    c.expect_close(1001, timeout=5, reason="idle timeout")


# =============================================================================
# signals

def test_sigterm_drains_clients_with_1001_and_exits_0(server):
    srv = server("ws-echo", "--drain-timeout", "20")

    async def main():
        conns = [await wsconnect(srv) for _ in range(3)]
        for ws in conns:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        t0 = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        for ws in conns:
            code, reason = await closed_code(ws, timeout=5)
            assert (code, reason) == (1001, "going away")
        return t0
    t0 = run(main())
    # All clients answered the close: no reason to wait for the 20 s drain.
    rc = srv.wait(timeout=t(5))
    print("exit %d %.0f ms after SIGTERM" % (rc, (time.monotonic() - t0) * 1e3))
    assert rc == 0


def test_sigint_drains_too(server):
    srv = server("ws-echo", "--drain-timeout", "20")
    c = wsraw.connect(srv.port)
    srv.send_signal(signal.SIGINT)
    c.expect_close(1001, reply=True, reason="going away")
    c.close()  # as a real client does once the server has closed
    assert srv.wait(timeout=t(5)) == 0


def test_sigterm_stops_accepting_and_honours_drain_timeout(server):
    srv = server("ws-echo", "--drain-timeout", "2")
    c = wsraw.connect(srv.port)  # will never answer the close
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    f, _ = c.wait_close(timeout=5)
    assert f.close_code == 1001
    # New connections are no longer accepted (refused, or not upgraded).
    try:
        late = RawClient(srv.port, timeout=2)
        late.send(wsraw.http_request("/"))
        try:
            r = late.read_http_response(timeout=2)
            assert r.status != 101, "upgrade accepted during drain"
        except (AssertionError, TimeoutError) as e:
            if "upgrade accepted" in str(e):
                raise
    except ConnectionError:
        # refused, or reset/broken when the listener closed with the
        # connection still in its backlog: not upgraded either way
        pass
    rc = srv.wait(timeout=t(8))
    print("exit %d %.2fs after SIGTERM with an unresponsive client (drain 2s)"
          % (rc, time.monotonic() - t0))
    assert rc == 0


def test_second_signal_exits_at_once(server):
    srv = server("ws-echo", "--drain-timeout", "60", expect_exit=None)
    c = wsraw.connect(srv.port)  # never answers, so the drain would take 60 s
    srv.send_signal(signal.SIGTERM)
    f, _ = c.wait_close(timeout=5)  # the first signal has been handled
    assert f.close_code == 1001
    t0 = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(timeout=t(3))
    print("second signal: exit %r after %.0f ms" % (rc, (time.monotonic() - t0) * 1e3))


# =============================================================================
# HTTP endpoints

def test_get_root_html(echo):
    r = wsraw.http(echo.port, "/", check_close=True)
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/html"), r
    assert b"<" in r.body and len(r.body) > 0
    assert r.header("connection", "").lower() == "close", r
    assert r.closed, "server did not close after a Connection: close response"


def test_healthz(echo):
    r = wsraw.http(echo.port, "/healthz", check_close=True)
    assert r.status == 200, r
    assert r.closed, "server did not close after a Connection: close response"
    assert r.header("content-type", "").startswith("application/json"), r
    assert r.header("connection", "").lower() == "close", r
    h = json.loads(r.body)
    assert set(h) == {"status", "server", "version", "connections", "uptime_s"}, h
    assert h["status"] == "ok"
    assert isinstance(h["server"], str) and "echo" in h["server"], h
    assert isinstance(h["version"], str) and h["version"], h
    assert isinstance(h["connections"], int) and not isinstance(h["connections"], bool)
    assert isinstance(h["uptime_s"], (int, float)) and h["uptime_s"] >= 0


def test_healthz_connection_count(echo):
    base = healthz(echo)["connections"]
    assert base in (0, 1), base  # 1 if the /healthz request counts itself

    async def main():
        conns = [await wsconnect(echo) for _ in range(3)]
        assert healthz(echo)["connections"] == base + 3
        await conns[0].close()
        assert eventually(lambda: healthz(echo)["connections"] == base + 2)
        for ws in conns[1:]:
            await ws.close()
    run(main())
    assert eventually(lambda: healthz(echo)["connections"] == base)


def test_metrics(echo):
    r = wsraw.http(echo.port, "/metrics")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/plain"), r
    m0 = parse_metrics(r.body.decode())
    for name in ["ws_connections_open", "ws_connections_total", "ws_messages_in_total",
                 "ws_messages_out_total", "ws_bytes_in_total", "ws_bytes_out_total"]:
        assert any(k[0] == name for k in m0), "metric %s missing" % name

    async def main():
        conns = [await wsconnect(echo, compression=None) for _ in range(2)]
        for ws in conns:
            for i in range(3):
                await ws.send("0123456789")
                assert await ws.recv() == "0123456789"
        m1 = metrics(echo)
        open1 = metric(m1, "ws_connections_open")
        assert open1 in (2, 3), open1  # 3 if the /metrics request counts itself
        assert 2 <= metric(m1, "ws_connections_total") - metric(m0, "ws_connections_total") <= 4
        assert metric(m1, "ws_messages_in_total") - metric(m0, "ws_messages_in_total") == 6
        assert metric(m1, "ws_messages_out_total") - metric(m0, "ws_messages_out_total") == 6
        assert metric(m1, "ws_bytes_in_total") - metric(m0, "ws_bytes_in_total") >= 60
        assert metric(m1, "ws_bytes_out_total") - metric(m0, "ws_bytes_out_total") >= 60
        for ws in conns:
            await ws.close(1000)
        return m1
    m1 = run(main())
    m2 = eventually(lambda: (lambda m: m if metric(m, "ws_connections_open") <= 1 else None)(metrics(echo)))
    assert m2, "ws_connections_open did not drop after the clients closed"
    assert metric(m2, "ws_closes_total", code="1000") - metric(m1, "ws_closes_total", code="1000") == 2

    # A 1009 close is counted under its code.
    c = wsraw.connect(echo.port)
    hdr, _ = wsraw.frame_header(OP_BINARY, (1 << 20) + 1)
    c.send(hdr)
    c.expect_close(1009)
    m3 = eventually(lambda: (lambda m: m if metric(m, "ws_closes_total", code="1009") >= 1 else None)(metrics(echo)))
    assert m3, "ws_closes_total{code=\"1009\"} missing after a 1009 close"
    assert metric(m3, "ws_closes_total", code="1009") - metric(m2, "ws_closes_total", code="1009") == 1


@pytest.mark.parametrize("path", ["/nope", "/healthz/x", "/index.html", "/metricsx"])
def test_unknown_path_404(echo, path):
    r = wsraw.http(echo.port, path)
    assert r.status == 404, r
    assert r.header("connection", "").lower() == "close", r


# =============================================================================
# flags and start-up

BAD_FLAGS = [
    (["--port", "abc"], "port"),
    (["--port", "70000"], "port"),
    (["--port", "-1"], "port"),
    (["--max-message", "-1"], "max-message"),
    (["--max-message", "12q"], "max-message"),
    (["--log-format", "xml"], "log-format"),
    (["--log-level", "verbose"], "log-level"),
    (["--ping-interval", "abc"], "ping-interval"),
    (["--idle-timeout", "-3"], "idle-timeout"),
    (["--send-queue", "lots"], "send-queue"),
    (["--frobnicate"], "frobnicate"),
    (["--port"], "port"),
]


@pytest.mark.parametrize("args,flag", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flag_exits_100_with_one_line(tmp_path, args, flag):
    port = free_port()
    rc, out, err, vlog = run_once("ws-echo", ["--host", "127.0.0.1", "--port", str(port)] + args
                                  if args[0] != "--port" else ["--host", "127.0.0.1"] + args,
                                  tmp_path=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 100, "exit %r, stderr %r" % (rc, err)
    assert len(lines) == 1, "expected one line on stderr, got %r" % err
    assert flag in lines[0], "the line does not name %s: %r" % (flag, lines[0])


@pytest.mark.parametrize("var,value,flag", [("WS_PORT", "abc", "port"),
                                            ("WS_LOG_FORMAT", "xml", "log")])
def test_bad_env_value_exits_100(tmp_path, var, value, flag):
    rc, out, err, _ = run_once("ws-echo", ["--host", "127.0.0.1"], env={var: value}, tmp_path=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 100, "exit %r, stderr %r" % (rc, err)
    assert len(lines) == 1, err
    assert flag.lower() in lines[0].lower() or var in lines[0], lines[0]


def test_port_in_use_exits_111(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, out, err, _ = run_once("ws-echo", ["--host", "127.0.0.1", "--port", str(port)],
                                   tmp_path=tmp_path)
    assert rc == 111, "exit %r, stderr %r" % (rc, err)


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_exit_0(tmp_path, flag):
    rc, out, err, _ = run_once("ws-echo", [flag], tmp_path=tmp_path)
    assert rc == 0, (out, err)
    assert (out + err).strip()


def test_readiness_quick_and_fd_closed(echo):
    print("ready %.1f ms after spawn" % (echo.ready_seconds * 1e3))
    assert echo.ready_seconds < t(5)
    assert echo.notify_fd_closed(), "the server kept --notify-fd open after the newline"
    # Ready means listening: connect at once.
    c = wsraw.connect(echo.port)
    c.echo(OP_TEXT, b"ready")


def test_notify_socket_ready(server, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(t(5))
        server("ws-echo", env={"NOTIFY_SOCKET": path})
        msg = s.recv(4096)
    assert b"READY=1" in msg.split(b"\n"), msg


def test_env_twin_and_flag_precedence(server):
    a = server("ws-echo", env={"WS_MAX_MESSAGE": "100"})
    c = wsraw.connect(a.port)
    c.echo(OP_BINARY, b"x" * 100)
    c.send_binary(b"x" * 101)
    c.expect_close(1009)
    b = server("ws-echo", "--max-message", "1000", env={"WS_MAX_MESSAGE": "100"})
    c = wsraw.connect(b.port)
    c.echo(OP_BINARY, b"x" * 1000)


def test_size_suffix(server):
    srv = server("ws-echo", "--max-message", "1k")
    c = wsraw.connect(srv.port)
    c.echo(OP_BINARY, os.urandom(1024))
    c.send_binary(os.urandom(1025))
    c.expect_close(1009)


def test_json_log_format(server):
    srv = server("ws-echo", "--log-format", "json", "--log-level", "debug")
    c = wsraw.connect(srv.port)
    c.echo(OP_TEXT, b"log me")
    c.send_close(1000)
    c.expect_close(1000)
    wsraw.http(srv.port, "/nope")
    assert srv.stop() == 0
    with open(srv.log_path, errors="replace") as f:
        lines = [line for line in f.read().splitlines() if line.strip() and not line.startswith("### ")]
    assert lines, "no log lines at debug level"
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict), line


def test_port_zero_picks_a_free_port_and_logs_it(server):
    srv = server("ws-echo", port=0)
    m = re.findall(r"port[=: ]+(\d+)", srv.stderr_text())
    ports = [int(p) for p in m if int(p) != 0]
    assert ports, "the log does not name the port picked for --port 0:\n" + srv.log_text()
    srv.port = ports[-1]
    c = wsraw.connect(srv.port)
    c.echo(OP_TEXT, b"port zero")


def test_ipv6_literal_host(server):
    srv = server("ws-echo", host="::1")
    c = wsraw.connect(srv.port, host="::1")
    c.echo(OP_TEXT, b"over IPv6")

    async def main():
        async with wsconnect(srv) as ws:
            await ws.send("ipv6")
            assert await ws.recv() == "ipv6"
    run(main())


def test_host_name(server):
    srv = server("ws-echo", host="localhost")
    for addr in ("127.0.0.1", "::1"):
        try:
            c = wsraw.connect(srv.port, host=addr)
        except OSError:
            continue
        c.echo(OP_TEXT, b"by name")
        return
    raise AssertionError("--host localhost: nothing listening on 127.0.0.1 or ::1")


def test_token_file_unreadable_exits_111(tmp_path):
    """'A system call that fails during start-up (bind, open) exits with 111'."""
    rc, out, err, _ = run_once("ws-echo", ["--host", "127.0.0.1", "--port", str(free_port()),
                                           "--token-file", str(tmp_path / "missing")],
                               tmp_path=tmp_path)
    assert rc == 111, "exit %r, stderr %r" % (rc, err)


def test_log_level_error_is_quiet(server):
    srv = server("ws-echo", "--log-level", "error")
    c = wsraw.connect(srv.port)
    c.echo(OP_TEXT, b"quiet")
    c.send_close(1000)
    c.expect_close(1000)
    wsraw.http(srv.port, "/healthz")
    assert srv.stop() == 0
    lines = [line for line in srv.stderr_text().splitlines()
             if line.strip() and not line.startswith("### ")]
    assert lines == [], "log lines at --log-level error in a normal session: %r" % lines


def test_notify_fd_env_twin(tmp_path):
    from lib.paths import binary_path, require_binary
    from lib.proc import clean_env, command
    require_binary("ws-echo")
    port = free_port()
    r, w = os.pipe()
    log = open(tmp_path / "log", "wb")
    p = subprocess.Popen(command(binary_path("ws-echo"), ["--host", "127.0.0.1", "--port", str(port)],
                                 str(tmp_path / "vg.log")),
                         stdout=log, stderr=log, stdin=subprocess.DEVNULL, pass_fds=(w,),
                         env=clean_env({"WS_NOTIFY_FD": str(w)}))
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], t(10))
        assert ready, "no readiness via WS_NOTIFY_FD"
        assert os.read(r, 16) == b"\n"
        wsraw.connect(port).echo(OP_TEXT, b"env notify")
    finally:
        os.close(r)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=t(10)) == 0
        log.close()


def test_token_query_is_url_decoded(server, tmp_path):
    """Inferred (not written in the contract): ?token= is a URL query value,
    so a token with reserved characters arrives percent-encoded."""
    path = tmp_path / "token"
    path.write_text("a+b/c=d&e\n")
    srv = server("ws-echo", "--token-file", str(path))
    assert run(upgrade_result(srv, "/?token=a%2Bb%2Fc%3Dd%26e")) == 101
    assert run(upgrade_result(srv, extra_headers={"Authorization": "Bearer a+b/c=d&e"})) == 101


def test_token_bearer_scheme_case_insensitive(token_server):
    """Inferred from RFC 7235 (auth schemes are case-insensitive)."""
    assert run(upgrade_result(token_server, extra_headers={"Authorization": "bearer " + TOKEN})) == 101


def test_token_file_with_crlf(server, tmp_path):
    """'The file's first line is the token': a CRLF line ending is not part of it."""
    path = tmp_path / "token"
    path.write_bytes(b"crlf-token\r\nnext\r\n")
    srv = server("ws-echo", "--token-file", str(path))
    assert run(upgrade_result(srv, extra_headers={"Authorization": "Bearer crlf-token"})) == 101


@pytest.mark.parametrize("status,flags,kw", [
    (403, ["--allowed-origin", "https://a.example"], {"extra": [("Origin", "https://b.example")]}),
    (401, ["--token-file", None], {}),
    (503, ["--max-connections", "1"], "hold-one"),
], ids=["403", "401", "503"])
def test_refusals_carry_connection_close(server, tmp_path, status, flags, kw):
    if None in flags:
        (tmp_path / "token").write_text("t\n")
        flags = [f if f is not None else str(tmp_path / "token") for f in flags]
    srv = server("ws-echo", *flags)
    held = None
    if kw == "hold-one":
        held = wsraw.connect(srv.port)
        kw = {}
    c = RawClient(srv.port)
    c.send(wsraw.http_request("/", **kw))
    r = c.read_http_response()
    assert r.status == status, r
    assert r.header("connection", "").lower() == "close", r
    if held:
        held.close()
