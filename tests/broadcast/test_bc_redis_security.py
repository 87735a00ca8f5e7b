"""The Redis engine's secrets and its link's set-up, attacked:

- a password given in --engine on the command line is hidden from
  /proc/PID/cmdline (which any local user, e.g. ws-rpc's commands, reads)
  once parsed, with a warning; --redis-password-file (and --redis-user for
  an ACL user) and WS_ENGINE keep it off the command line altogether;
- a refused AUTH or SELECT (a database past Redis's `databases`) leaves the
  engine down (/healthz 503, the reason logged) and retried, never serving
  on db 0 or unauthenticated;
- after SCRIPT FLUSH (a failover or a proxy loses the script cache) calls
  answered NOSCRIPT are sent again with the script: messages keep flowing
  with consecutive seqs, leaves still clear presence;
- malformed URLs are refused at start (exit 100) without echoing the password.
"""

import asyncio
import json
import os

import pytest

import bchelp
from bchelp import run_once
from lib.http import http_get
from lib.proc import t, wait_until
from lib.server import Server
from redishelp import Redis, engine_up, metric, redis, start_node  # noqa: F401 (fixture)

pytest.importorskip("websockets")
import websockets.client  # noqa: E402

PASSWORD = "Sekr3t-pw_for:tests"


async def connect(port, query):
    return await websockets.client.connect("ws://127.0.0.1:%d/?%s" % (port, query),
                                           max_size=1 << 24, max_queue=None,
                                           ping_interval=None, open_timeout=t(20))


async def recv_type(ws, typ, timeout=20):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), t(timeout)))
        if m["type"] == typ:
            return m


async def chat_round_trip(port, room="sec"):
    """A member joins, sends, and gets its message back with a seq: Redis serves."""
    ws = await connect(port, "id=%s&user=alice" % room)
    await recv_type(ws, "welcome")
    await ws.send("hello")
    m = await recv_type(ws, "message")
    await ws.close()
    assert m["text"] == "hello" and m["seq"] >= 1, m
    return m


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read()


@pytest.fixture
def redis_pw(tmp_path):
    r = Redis(tmp_path, extra=["--requirepass", PASSWORD]).start()
    yield r
    r.stop()


def unready(s):
    status, _, _ = http_get(s.port, "/healthz")
    return status == 503


def start_unready(server, url, *flags):
    s = server(bchelp.NAME, "--engine", url, "--rate-limit", "0", *flags, cls=Server)
    return s


# ---- 1. the password and the command line ----

def test_password_in_engine_url_is_hidden_from_proc_cmdline(server, redis_pw):
    url = "redis://:%s@127.0.0.1:%d" % (PASSWORD, redis_pw.port)
    s = start_node(server, redis_pw, url=url)
    raw = cmdline(s.pid)
    assert PASSWORD.encode() not in raw, raw
    assert b"redis://:" in raw and b"@127.0.0.1:%d" % redis_pw.port in raw, raw
    assert "password_in_argv=yes" in s.log_text()
    asyncio.run(chat_round_trip(s.port))


def test_password_in_engine_equals_form_is_hidden_too(server, redis_pw):
    url = "redis://:%s@127.0.0.1:%d" % (PASSWORD, redis_pw.port)
    s = server(bchelp.NAME, "--engine=" + url, "--rate-limit", "0", cls=Server)
    wait_until(lambda: engine_up(s), timeout=10, what="engine up")
    raw = cmdline(s.pid)
    assert PASSWORD.encode() not in raw and b"--engine=redis://:" in raw, raw
    asyncio.run(chat_round_trip(s.port))


def test_password_file_and_acl_user_keep_it_off_the_command_line(server, redis_pw, tmp_path):
    # an ACL user limited as docs/security.md advises: the engine's keys and channels
    assert redis_pw.command("ACL", "SETUSER", "bc", "on", ">bc-Pw%x", "~wsb:*", "&wsb:*",
                            "+@all", "-@dangerous", auth=(PASSWORD,)).startswith(b"+OK")
    pwf = tmp_path / "redis.pw"
    pwf.write_text("bc-Pw%x\n")
    os.chmod(pwf, 0o600)
    s = start_node(server, redis_pw, "--redis-user", "bc", "--redis-password-file", str(pwf))
    assert b"bc-Pw%x" not in cmdline(s.pid)
    assert "password_in_argv" not in s.log_text()
    asyncio.run(chat_round_trip(s.port))
    # the default user's password from a file (CRLF ending too)
    pwf2 = tmp_path / "redis2.pw"
    pwf2.write_bytes(PASSWORD.encode() + b"\r\n")
    s2 = start_node(server, redis_pw, "--redis-password-file", str(pwf2))
    asyncio.run(chat_round_trip(s2.port))


def test_password_in_ws_engine_env_works_without_warning(server, redis_pw):
    url = "redis://:%s@127.0.0.1:%d" % (PASSWORD, redis_pw.port)
    s = start_node(server, redis_pw, env={"WS_ENGINE": url})
    assert PASSWORD.encode() not in cmdline(s.pid)
    assert "password_in_argv" not in s.log_text()
    asyncio.run(chat_round_trip(s.port))


def test_percent_encoded_user_and_password_are_decoded(server, redis_pw):
    pw = "p@ss:w%rd/?#"
    assert redis_pw.command("ACL", "SETUSER", "u@x", "on", ">" + pw, "~*", "&*", "+@all",
                            auth=(PASSWORD,)).startswith(b"+OK")
    url = "redis://u%%40x:%s@127.0.0.1:%d" % ("p%40ss%3Aw%25rd%2F%3F%23", redis_pw.port)
    s = start_node(server, redis_pw, url=url)
    asyncio.run(chat_round_trip(s.port))


@pytest.mark.parametrize("flags, why", [
    (["--redis-password-file", "F", "--engine", "redis://:pw@127.0.0.1:1"], "give one of them"),
    (["--redis-user", "u", "--engine", "redis://u:pw@127.0.0.1:1"], "give one of them"),
    (["--redis-user", "u", "--engine", "redis://127.0.0.1:1"], "needs --redis-password-file"),
    (["--redis-password-file", "F"], "need --engine redis://"),
    (["--redis-password-file", "/nonexistent/pw", "--engine", "redis://127.0.0.1:1"],
     "No such file"),
    (["--redis-password-file", "EMPTY", "--engine", "redis://127.0.0.1:1"], "empty"),
    (["--redis-password-file", "BIG", "--engine", "redis://127.0.0.1:1"], "longer than"),
])
def test_password_options_refused_when_wrong(binary, tmp_path, flags, why):
    (tmp_path / "F").write_text("pw\n")
    (tmp_path / "EMPTY").write_text("\n")
    (tmp_path / "BIG").write_text("x" * 2000)
    flags = [str(tmp_path / f) if f in ("F", "EMPTY", "BIG") else f for f in flags]
    rc, _, err, _ = run_once(["--port", "0"] + flags, tmp_path=tmp_path)
    assert rc == 100 and why in err, (flags, rc, err)
    assert "pw@" not in err


def test_wrong_password_leaves_the_engine_down_and_says_why(server, redis_pw):
    s = start_unready(server, "redis://:wrong-one@127.0.0.1:%d" % redis_pw.port)
    wait_until(lambda: "op=AUTH" in s.log_text(), timeout=10, what="AUTH refusal logged")
    assert unready(s) and not engine_up(s)
    assert "wrong-one" not in s.log_text().split("\n", 1)[1]  # past the harness's own ### line


# ---- 3. SELECT refused: not ready, retried ----

def test_select_past_databases_is_not_ready_then_retried(server, tmp_path):
    r = Redis(tmp_path, extra=["--databases", "16"]).start()
    try:
        s = start_unready(server, "redis://127.0.0.1:%d/40" % r.port)
        wait_until(lambda: "op=SELECT" in s.log_text(), timeout=10, what="SELECT refusal logged")
        assert "DB index is out of range" in s.log_text()
        assert unready(s) and not engine_up(s)

        async def refused():
            ws = await connect(s.port, "id=tenant40&user=x")
            await ws.close()
        with pytest.raises(Exception):
            asyncio.run(refused())
        assert r.command("DBSIZE") == b":0\r\n"  # nothing written to db 0
        # Redis comes back with enough databases: the engine's retry connects
        r.extra = ["--databases", "64"]
        r.restart()
        wait_until(lambda: engine_up(s), timeout=20, what="engine up once db 40 exists")
        asyncio.run(chat_round_trip(s.port, room="tenant40"))
        assert r.command("DBSIZE") == b":0\r\n"
        assert r.command("SELECT", "40") == b"+OK\r\n"
        with __import__("socket").create_connection(("127.0.0.1", r.port), timeout=5) as c:
            c.sendall(b"SELECT 40\r\nEXISTS wsb:{tenant40}:seq\r\n")
            got = b""
            while got.count(b"\r\n") < 2:
                got += c.recv(64)
            assert got == b"+OK\r\n:1\r\n", got
    finally:
        r.stop()


# ---- 2. NOSCRIPT ----

def test_script_flush_mid_traffic_messages_continue_and_leaves_clear_presence(server, redis):
    a_node = start_node(server, redis)
    b_node = start_node(server, redis)

    async def main():
        alice = await connect(a_node.port, "id=flush&user=alice")
        await recv_type(alice, "welcome")
        bob = await connect(b_node.port, "id=flush&user=bob")
        await recv_type(bob, "welcome")
        seqs = []
        for round_ in range(4):
            if round_ in (1, 3):
                assert redis.command("SCRIPT", "FLUSH") == b"+OK\r\n"
            for i in range(10):
                await alice.send("r%d-%d" % (round_, i))
            for i in range(10):
                m = await recv_type(bob, "message")
                assert m["text"] == "r%d-%d" % (round_, i), m
                seqs.append(m["seq"])
        assert seqs == list(range(seqs[0], seqs[0] + 40)), seqs
        # a join after a flush works, and a leave clears presence
        assert redis.command("SCRIPT", "FLUSH") == b"+OK\r\n"
        carol = await connect(b_node.port, "id=flush&user=carol")
        w = await recv_type(carol, "welcome")
        assert w["count"] == 3 and w["last_seq"] == seqs[-1], w
        assert sorted(w["members"]) == ["alice", "bob", "carol"], w
        assert redis.command("SCRIPT", "FLUSH") == b"+OK\r\n"
        await carol.close()
        await alice.close()
        left = [await recv_type(bob, "leave") for _ in range(2)]
        assert sorted(m["id"] for m in left) == ["alice", "carol"], left
        assert sorted(m["count"] for m in left) == [1, 2], left
        await bob.close()

    asyncio.run(main())
    wait_until(lambda: redis.command("HLEN", "wsb:{flush}:p") == b":0\r\n", timeout=10,
               what="presence empty after everyone left")
    assert metric(a_node, "ws_broadcast_redis_noscript_total") >= 1
    assert engine_up(a_node) and engine_up(b_node)


# ---- 3. URLs refused at start ----

@pytest.mark.parametrize("url", [
    "redis://[::1]junk:18501",
    "redis://127.0.0.1:+18501",
    "redis://127.0.0.1: 18501",
    "redis://127.0.0.1:-1",
    "redis://127.0.0.1:18501/ 1",
    "redis://127.0.0.1:18501/+3",
    "redis://127.0.0.1:18501/-1",
    "redis://127.0.0.1:18501/1 ",
    "redis://127.0.0.1:18501junk",
    "redis://u:Pa55%zz@127.0.0.1:18501",
    "redis://u:Pa55%00@127.0.0.1:18501",
    "redis://u:Pa55@127.0.0.1:99999",
    "REDIS://u:Pa55@127.0.0.1:18501",
    "redis://u:Pa55@" + "h" * 300 + ":1",
])
def test_malformed_urls_refused_at_start_without_the_password(binary, tmp_path, url):
    rc, _, err, _ = run_once(["--port", "0", "--engine", url], tmp_path=tmp_path)
    assert rc == 100 and "error: --engine" in err, (url, rc, err)
    assert "Pa55" not in err, err
    assert len(err) < 1000
