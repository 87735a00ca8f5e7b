"""Dialect 1, the Sandbox example's `type` messages: every method, every
error phrase, ids of both types echoed verbatim, errors that never close
the connection, and 100 pipelined requests answered with matching ids."""

import json
import os
import socket
import time

import pytest

import rpchelp


def test_ping_echoes_ids_of_both_types(ws):
    before = int(time.time() * 1000)
    for rid in (1, 0, -7, 2 ** 53, "abc", "", "ünï \"quoted\"", 1.5):
        ws.send({"type": "ping", "id": rid})
        m = ws.recv()
        assert m["type"] == "pong" and m["id"] == rid and type(m["id"]) is type(rid), m
        assert before - 1000 <= m["timestamp"] <= int(time.time() * 1000) + 1000
    # without an id: a pong without one
    ws.send({"type": "ping"})
    m = ws.recv()
    assert m["type"] == "pong" and "id" not in m, m


def test_info_describes_host_server_and_limits(rpc):
    s = rpc("--max-exec", "7", "--max-exec-per-conn", "3", "--max-output", "64k",
            "--exec-timeout", "5", "--exec-timeout-max", "60", "--rate-limit", "0")
    w = s.ws()
    other = s.ws()
    m = w.request({"type": "info", "id": "i"})
    assert m["type"] == "info" and m["id"] == "i"
    assert m["platform"] == "linux"
    assert m["hostname"] == socket.gethostname()
    assert m["arch"] == os.uname().machine
    assert m["kernel"] == os.uname().release
    assert m["cpus"] == os.cpu_count()
    assert len(m["loadavg"]) == 3 and all(isinstance(x, (int, float)) for x in m["loadavg"])
    assert 0 < m["memory"]["available"] <= m["memory"]["total"]
    assert m["uptime_s"] > 0
    srv = m["server"]
    assert srv["name"] == "ws-rpc" and srv["pid"] == s.pid and srv["version"]
    assert srv["uptime_s"] >= 0 and srv["connections"] == 2 and srv["running"] == 0
    lim = srv["limits"]
    assert lim["max_exec"] == 7 and lim["max_exec_per_conn"] == 3
    assert lim["max_output"] == 64 * 1024
    assert lim["exec_timeout_ms"] == 5000 and lim["exec_timeout_max_ms"] == 60000
    # the bounds on what a client can make the server hold, at their defaults
    assert lim["max_reply"] == 16 << 20 and lim["max_batch"] == 100
    assert lim["max_buffered"] == 128 << 20 and lim["max_buffered_per_conn"] == 32 << 20
    assert lim["max_id_length"] == 256
    assert "allow_command" not in lim and "deny_command" not in lim
    # running counts commands server-wide
    other.send({"type": "exec", "id": "bg", "command": "sleep 30", "stream": True})
    assert other.recv()["type"] == "start"
    assert w.request({"type": "info"})["server"]["running"] == 1
    assert other.request({"type": "kill", "id": "bg", "signal": "KILL"})["ok"] is True
    assert other.reply_to("bg")["signal"] == "SIGKILL"
    assert w.request({"type": "info"})["server"]["running"] == 0


def test_invalid_json(ws):
    for bad in ("{", "{\"type\":\"ping\"", "not json", "{\"type\": 'ping'}", "{}}"):
        ws.send_text(bad)
        assert ws.recv() == {"type": "error", "error": "Invalid JSON"}, bad


@pytest.mark.parametrize("msg", [
    {},
    {"id": 5},
    {"type": 5, "id": 5},
    {"type": None, "id": 5},
    {"type": ["ping"], "id": 5},
    {"type": "ping", "id": {"a": 1}},
    {"type": "ping", "id": [1]},
    {"type": "ping", "id": True},
])
def test_invalid_message_format_object(ws, msg):
    ws.send(msg)
    m = ws.recv()
    assert m["type"] == "error" and m["error"] == "Invalid message format", m
    if isinstance(msg.get("id"), (int, str)) and not isinstance(msg["id"], bool):
        assert m["id"] == msg["id"]
    else:
        assert "id" not in m, m


@pytest.mark.parametrize("text", ["5", "\"ping\"", "null", "true"])
def test_invalid_message_format_not_an_object(ws, text):
    # valid JSON that is not an object is a format error, not "Invalid JSON"
    ws.send_text(text)
    assert ws.recv() == {"type": "error", "error": "Invalid message format"}


def test_invalid_message_format_binary(ws):
    ws.send_binary(b'{"type":"ping","id":1}')
    assert ws.recv() == {"type": "error", "error": "Invalid message format"}


def test_unknown_message_type(ws):
    for t in ("pong", "PING", "exec ", "", "result"):
        m = ws.request({"type": t, "id": "u"})
        assert m == {"type": "error", "id": "u", "error": "Unknown message type: " + t}, m


@pytest.mark.parametrize("params,what", [
    ({}, "command"),
    ({"command": "ls", "argv": ["ls"]}, "command"),
    ({"command": ""}, "command"),
    ({"command": 5}, "command"),
    ({"argv": []}, "argv"),
    ({"argv": "ls"}, "argv"),
    ({"argv": ["ls", 5]}, "argv"),
    ({"argv": [""]}, "argv"),
    ({"command": "ls", "cwd": "/no/such/dir"}, "cwd"),
    ({"command": "ls", "cwd": "/etc/passwd"}, "cwd"),
    ({"command": "ls", "cwd": 5}, "cwd"),
    ({"command": "ls", "env": ["A=1"]}, "env"),
    ({"command": "ls", "env": {"A": 1}}, "env"),
    ({"command": "ls", "env": {"A=B": "1"}}, "env"),
    ({"command": "ls", "env": {"": "1"}}, "env"),
    ({"command": "ls", "stdin": 5}, "stdin"),
    ({"command": "ls", "stdinOpen": "yes"}, "stdinOpen"),
    ({"command": "ls", "timeout_ms": 0}, "timeout_ms"),
    ({"command": "ls", "timeout_ms": -5}, "timeout_ms"),
    ({"command": "ls", "timeout_ms": "100"}, "timeout_ms"),
    ({"command": "ls", "max_output": 0}, "max_output"),
    ({"command": "ls", "max_output": 1.5}, "max_output"),
    ({"command": "ls", "stream": "true"}, "stream"),
    ({"command": "ls", "encoding": "latin1"}, "encoding"),
    ({"command": "ls", "encoding": 8}, "encoding"),
])
def test_invalid_params_exec(ws, params, what):
    m = ws.request(dict(type="exec", id="p", **params))
    assert m["type"] == "error" and m["id"] == "p", m
    assert m["error"].startswith("Invalid params: "), m
    assert what in m["error"], m


def test_invalid_params_other_methods(ws):
    for msg in ({"type": "stdin"}, {"type": "stdin", "id": "x", "data": 5},
                {"type": "stdin", "id": "x", "eof": "yes"}, {"type": "kill"},
                {"type": "kill", "id": "x", "signal": "NOPE"},
                {"type": "kill", "id": "x", "signal": 0},
                {"type": "kill", "id": "x", "signal": 1000},
                {"type": "kill", "id": "x", "signal": ["TERM"]}):
        ws.send(msg)
        m = ws.recv()
        assert m["type"] == "error" and m["error"].startswith("Invalid params: "), (msg, m)


def test_no_such_command(ws):
    for rid in ("ghost", 42):
        assert ws.request({"type": "kill", "id": rid}) == {
            "type": "error", "id": rid, "error": "No such command: %s" % json.dumps(rid)}
        assert ws.request({"type": "stdin", "id": rid, "data": "x"}) == {
            "type": "error", "id": rid, "error": "No such command: %s" % json.dumps(rid)}
    # a finished command is gone
    assert ws.exec(id="done", command="true")["exitCode"] == 0
    m = ws.request({"type": "kill", "id": "done"})
    assert m["error"] == 'No such command: "done"', m


def test_duplicate_id(ws):
    ws.send({"type": "exec", "id": "d", "command": "sleep 30", "stream": True})
    assert ws.recv()["type"] == "start"
    m = ws.request({"type": "exec", "id": "d", "command": "echo again"})
    assert m == {"type": "error", "id": "d", "error": "Duplicate id"}, m
    # an id of another type is another id
    ws.send({"type": "exec", "id": 7, "command": "echo seven"})
    assert ws.reply_to(7)["stdout"] == "seven\n"
    ws.request({"type": "kill", "id": "d"})
    r = ws.reply_to("d")
    assert r["type"] == "result" and r["signal"] == "SIGTERM"
    # free again once finished
    assert ws.exec(id="d", command="echo reuse")["stdout"] == "reuse\n"


def test_invalid_command_by_allow_list(rpc):
    echo = os.path.realpath("/usr/bin/echo")
    s = rpc("--allow-command", "^(%s|/usr/bin/printf)$" % echo, "--rate-limit", "0")
    w = s.ws()
    assert w.exec(argv=["echo", "argv ok"])["stdout"] == "argv ok\n"
    for p in ({"command": "echo ok"}, {"command": "ls /"}, {"command": "true; echo x"},
              {"argv": ["ls", "echo"]}, {"argv": ["sh", "-c", "echo"]}):
        m = w.exec(id="c", **p)
        assert m == {"type": "error", "id": "c", "error": "Invalid command"}, (p, m)
    assert s.zombies() == [] and s.children() == []


def test_invalid_command_by_deny_list(rpc):
    s = rpc("--deny-command", "(^|[;&| ])(rm|reboot)( |$)", "--rate-limit", "0")
    w = s.ws()
    assert w.exec(command="echo rmdir")["stdout"] == "rmdir\n"
    for p in ({"command": "rm -rf /tmp/nothing"}, {"command": "echo; rm x"},
              {"argv": ["rm", "x"]}, {"command": "reboot"}):
        m = w.exec(id=3, **p)
        assert m == {"type": "error", "id": 3, "error": "Invalid command"}, (p, m)


def test_bad_policy_regex_is_a_usage_error(binary, tmp_path):
    rc, _, err, _ = rpchelp.run_once(["--no-auth", "--allow-command", "(unclosed"],
                                     tmp_path=tmp_path)
    assert rc == rpchelp.EXIT_USAGE and "allow-command" in err, (rc, err)


def test_rate_limit_exceeded(rpc):
    s = rpc()  # the defaults: 10 messages/s, burst 20
    w = s.ws()
    n = 40
    w.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(
        {"type": "ping", "id": i})) for i in range(n)))
    got = [w.recv() for _ in range(n)]
    assert sorted(m["id"] for m in got) == list(range(n))
    pongs = [m for m in got if m["type"] == "pong"]
    limited = [m for m in got if m["type"] == "error"]
    assert all(m["error"] == "Rate limit exceeded" for m in limited), limited
    # the burst is served, most of the rest is refused (a few tokens refill meanwhile)
    assert 20 <= len(pongs) <= 25 and len(limited) >= 15, (len(pongs), len(limited))
    assert s.metric("ws_rate_limited_total") == len(limited)
    # the connection stays open and is served again once tokens refill
    # (one token per 100 ms; one more drop now would count as a sustained flood)
    time.sleep(0.25)
    assert w.request({"type": "ping", "id": "later"})["type"] == "pong"


def test_sustained_flood_gets_errors_and_keeps_the_connection(rpc):
    # "An error never closes the connection": a flood far past the burst is
    # answered request by request (pong or the limit's error), then served again
    s = rpc()
    w = s.ws()
    w.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(
        {"type": "ping", "id": i})) for i in range(60)))
    replies = [w.recv() for _ in range(60)]
    assert sorted(m["id"] for m in replies) == list(range(60))
    limited = [m for m in replies if m["type"] == "error"]
    assert limited and all(m["error"] == "Rate limit exceeded" for m in limited)
    assert sum(m["type"] == "pong" for m in replies) <= 21
    time.sleep(0.25)  # one token refills at 10/s: this waits for the limit, not for readiness
    assert w.request({"type": "ping", "id": "after"})["type"] == "pong"


def test_errors_never_close_the_connection(ws):
    for text in ("{", "[]", "5", "{}", "{\"type\":\"nope\"}",
                 "{\"type\":\"exec\"}", "{\"type\":\"kill\",\"id\":1}"):
        ws.send_text(text)
        ws.recv()
    ws.send_binary(b"\x00\x01")
    ws.recv()
    assert ws.request({"type": "ping", "id": "still"})["type"] == "pong"


def test_extra_fields_are_ignored(ws):
    m = ws.request({"type": "ping", "id": 1, "extra": {"x": [1, 2]}})
    assert m["type"] == "pong" and m["id"] == 1


@pytest.mark.heavy
def test_100_pipelined_requests_answered_with_matching_ids(rpc):
    ws = rpc("--rate-limit", "0", "--max-exec-per-conn", "16").ws()
    ids = [i if i % 2 else "s%d" % i for i in range(100)]
    msgs = []
    for i, rid in enumerate(ids):
        if i % 10 == 3:
            msgs.append({"type": "exec", "id": rid, "argv": ["echo", str(rid)]})
        elif i % 10 == 7:
            msgs.append({"type": "info", "id": rid})
        else:
            msgs.append({"type": "ping", "id": rid})
    ws.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(m)) for m in msgs))
    got = {}
    for _ in range(100):
        m = ws.recv()
        key = (type(m["id"]).__name__, m["id"])
        assert key not in got, m
        got[key] = m
    assert set(got) == {(type(r).__name__, r) for r in ids}
    for msg in msgs:
        m = got[(type(msg["id"]).__name__, msg["id"])]
        want = {"ping": "pong", "info": "info", "exec": "result"}[msg["type"]]
        assert m["type"] == want, (msg, m)
        if want == "result":
            assert m["stdout"] == "%s\n" % msg["id"] and m["exitCode"] == 0
    ws.expect_silence(0.2)
