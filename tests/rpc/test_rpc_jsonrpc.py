"""Dialect 2, JSON-RPC 2.0 to the letter: every method, the spec's error
codes and the server's own, notifications (never answered), batches
(mixed, with exec inside, empty, all notifications), ids of both types,
streamed output as exec.start / exec.output notifications, and 100
pipelined requests answered with matching ids."""

import json
import time

import pytest

import rpchelp

V = "2.0"


def req(method, params=None, rid=None, notification=False):
    m = {"jsonrpc": V, "method": method}
    if params is not None:
        m["params"] = params
    if not notification:
        m["id"] = rid
    return m


def err(rid, code, message, data=None):
    e = {"code": code, "message": message}
    if data is not None:
        e["data"] = data
    return {"jsonrpc": V, "id": rid, "error": e}


RESULT_KEYS = {"stdout", "stderr", "exitCode", "signal", "timedOut", "truncated", "durationMs"}


# ---- methods

def test_ping(ws):
    before = int(time.time() * 1000)
    r = ws.rpc("ping", rid=1)
    assert set(r) == {"jsonrpc", "id", "result"} and r["jsonrpc"] == V and r["id"] == 1
    assert before - 1000 <= r["result"]["timestamp"] <= time.time() * 1000 + 1000
    assert ws.rpc("ping", {}, rid="p")["result"]["timestamp"] > 0


def test_ids_of_both_types_and_null_are_echoed(ws):
    for rid in (0, 1, -1, 2 ** 53, 1.5, "x", "", "ä\"\\"):
        ws.send(req("ping", rid=rid))
        r = ws.recv()
        assert r["id"] == rid and type(r["id"]) is type(rid) and "result" in r, (rid, r)
    # id null is allowed (discouraged) and answered with id null
    ws.send(req("ping", rid=None))
    r = ws.recv()
    assert r["id"] is None and "result" in r, r


def test_info(srv):
    w = srv.ws()
    r = w.rpc("info", rid="i")["result"]
    assert r["platform"] == "linux" and r["cpus"] >= 1 and len(r["loadavg"]) == 3
    assert r["server"]["name"] == "ws-rpc" and r["server"]["pid"] == srv.pid
    assert "limits" in r["server"] and r["server"]["running"] == 0
    assert "type" not in r


def test_exec(ws):
    r = ws.rpc("exec", {"command": "echo out; echo err >&2; exit 4"}, rid=9)
    assert r["id"] == 9 and "error" not in r
    res = r["result"]
    assert set(res) >= RESULT_KEYS and "type" not in res
    assert (res["stdout"], res["stderr"], res["exitCode"], res["signal"]) == \
        ("out\n", "err\n", 4, None)
    assert res["timedOut"] is False and res["truncated"] is False
    r = ws.rpc("exec", {"argv": ["printf", "%s", "a b"], "encoding": "base64"}, rid="b")
    assert r["result"]["stdout"] == "YSBi"


def test_exec_stream_notifications(ws):
    ws.send(req("exec", {"command": "echo o1; echo e1 >&2; sleep 0.2; echo o2",
                         "stream": True}, rid="s"))
    start = ws.recv()
    assert start["method"] == "exec.start" and "id" not in start, start
    assert start["params"]["id"] == "s" and start["params"]["pid"] > 0
    outs = {"stdout": "", "stderr": ""}
    while True:
        m = ws.recv()
        if "method" in m:
            assert m["method"] == "exec.output" and "id" not in m and m["jsonrpc"] == V, m
            p = m["params"]
            assert p["id"] == "s" and p["stream"] in outs
            outs[p["stream"]] += p["data"]
            continue
        break
    assert m["id"] == "s" and m["result"]["exitCode"] == 0
    assert m["result"]["stdout"] == "" and m["result"]["stderr"] == ""
    assert outs == {"stdout": "o1\no2\n", "stderr": "e1\n"}


def test_stdin_kill_list(ws):
    ws.send(req("exec", {"argv": ["cat"], "stdinOpen": True, "stream": True}, rid=5))
    assert ws.recv()["method"] == "exec.start"
    assert ws.rpc("stdin", {"id": 5, "data": "hello "}, rid=6) == \
        {"jsonrpc": V, "id": 6, "result": {"ok": True}}
    out = ws.wait_for(lambda m: m.get("method") == "exec.output")
    assert out["params"] == {"id": 5, "stream": "stdout", "data": "hello "}
    ws.send(req("exec", {"command": "sleep 30"}, rid="sl"))
    lst = ws.rpc("list", rid=7)["result"]["commands"]
    assert sorted(json.dumps([c["id"], c["command"], c["stream"]]) for c in lst) == \
        sorted(json.dumps(x) for x in ([5, "cat", True], ["sl", "sleep 30", False])), lst
    assert all(c["pid"] > 0 and c["durationMs"] >= 0 for c in lst)
    assert ws.rpc("stdin", {"id": 5, "data": "world", "eof": True}, rid=8)["result"] == {"ok": True}
    fin = ws.reply_to(5)
    assert fin["result"]["exitCode"] == 0
    outs = "hello " + "".join(m["params"]["data"] for m in ws.backlog
                              if m.get("method") == "exec.output")
    ws.backlog = [m for m in ws.backlog if m.get("method") != "exec.output"]
    assert outs == "hello world"
    assert ws.rpc("kill", {"id": "sl", "signal": "KILL"}, rid=10) == \
        {"jsonrpc": V, "id": 10, "result": {"ok": True, "signal": "SIGKILL"}}
    r = ws.reply_to("sl")
    assert r["result"]["signal"] == "SIGKILL" and r["result"]["exitCode"] == 137
    assert ws.rpc("list", {}, rid=11)["result"] == {"commands": [], "processes": []}


# ---- errors

def test_parse_error(ws):
    for bad in ('{"jsonrpc": "2.0", "method": "ping", "id": 1', '{"jsonrpc":"2.0",]',
                '[{"jsonrpc": "2.0", "method": "ping", "id": 1},{"jsonrpc": "2.0", "method"]'):
        ws.send_text(bad)
        assert ws.recv() == err(None, -32700, "Parse error"), bad


@pytest.mark.parametrize("msg", [
    {"jsonrpc": "2.0", "method": 1, "params": "bar"},
    {"jsonrpc": "1.0", "method": "ping", "id": 1},
    {"jsonrpc": 2.0, "method": "ping", "id": 1},
    {"jsonrpc": "2.0", "id": 1},
    {"jsonrpc": "2.0", "method": "ping", "id": {"a": 1}},
    {"jsonrpc": "2.0", "method": "ping", "id": [1]},
    {"jsonrpc": "2.0", "method": "ping", "id": True},
    {"jsonrpc": "2.0", "method": "ping", "params": 5, "id": 1},
    {"jsonrpc": "2.0", "method": "ping", "params": "x"},
])
def test_invalid_request(ws, msg):
    ws.send(msg)
    r = ws.recv()
    assert r["jsonrpc"] == V and r["error"]["code"] == -32600, (msg, r)
    assert r["error"]["message"] == "Invalid Request"
    # the id is echoed when it could be read, else null
    rid = msg.get("id")
    if isinstance(rid, (int, str)) and not isinstance(rid, bool):
        assert r["id"] == rid
    else:
        assert r["id"] is None, r


def test_method_not_found(ws):
    for name in ("nope", "PING", "exec.output", "rpc.discover", ""):
        assert ws.rpc(name, rid=name or "empty") == \
            err(name or "empty", -32601, "Method not found", name), name


@pytest.mark.parametrize("method,params", [
    ("exec", {}),
    ("exec", {"command": ""}),
    ("exec", {"argv": "ls"}),
    ("exec", ["ls"]),
    ("exec", {"command": "ls", "cwd": "/no/such"}),
    ("exec", {"command": "ls", "encoding": "utf16"}),
    ("stdin", {}),
    ("stdin", {"id": 1, "data": 1}),
    ("kill", {}),
    ("kill", {"id": 1, "signal": "SIGNOPE"}),
])
def test_invalid_params(ws, method, params):
    r = ws.rpc(method, params, rid=3)
    assert r["id"] == 3 and r["error"]["code"] == -32602, r
    assert r["error"]["message"] == "Invalid params" and isinstance(r["error"]["data"], str)


def test_no_such_command(ws):
    r = ws.rpc("kill", {"id": 99}, rid=1)
    assert r == err(1, -32003, "No such command", "99"), r
    r = ws.rpc("stdin", {"id": "z", "data": "x"}, rid=2)
    assert r == err(2, -32003, "No such command", '"z"'), r


def test_duplicate_id(ws):
    ws.send(req("exec", {"command": "sleep 30"}, rid="dup"))
    assert ws.rpc("exec", {"command": "true"}, rid="dup") == err("dup", -32002, "Duplicate id")
    ws.rpc("kill", {"id": "dup"}, rid="k")
    assert ws.reply_to("dup")["result"]["signal"] == "SIGTERM"


def test_too_many_running(rpc):
    s = rpc("--max-exec-per-conn", "1", "--rate-limit", "0")
    w = s.ws()
    w.send(req("exec", {"command": "sleep 30"}, rid=1))
    assert w.rpc("exec", {"command": "true"}, rid=2) == \
        err(2, -32001, "Too many running commands")
    w.rpc("kill", {"id": 1, "signal": "KILL"}, rid=3)
    w.reply_to(1)
    assert w.rpc("exec", {"command": "true"}, rid=4)["result"]["exitCode"] == 0


def test_invalid_command(rpc):
    s = rpc("--deny-command", "^rm", "--rate-limit", "0")
    w = s.ws()
    why = "refused by the command policy"
    assert w.rpc("exec", {"command": "rm -f x"}, rid=1) == err(1, -32004, "Invalid command", why)
    assert w.rpc("exec", {"argv": ["rm", "x"]}, rid=2) == err(2, -32004, "Invalid command", why)


def test_rate_limit(rpc):
    s = rpc("--rate-limit", "1", "--rate-burst", "2")
    w = s.ws()
    w.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(req("ping", rid=i)))
                        for i in range(3)))
    got = sorted((w.recv() for _ in range(3)), key=lambda m: m["id"])
    assert "result" in got[0] and "result" in got[1]
    assert got[2] == err(2, -32000, "Rate limit exceeded"), got[2]
    # a notification over the limit gets nothing, not even this error
    w.notify("ping")
    w.expect_silence(0.3)


def test_errors_never_close_the_connection(ws):
    for text in ('{', '[]', '[1]', '{"jsonrpc":"2.0"}', '{"jsonrpc":"2.0","method":"x","id":1}'):
        ws.send_text(text)
        ws.recv()
    assert "result" in ws.rpc("ping")


# ---- notifications

def test_notifications_get_no_reply(ws):
    ws.notify("ping")
    ws.notify("info")
    ws.notify("list")
    ws.notify("nope")                        # unknown method: still silent
    ws.notify("exec", {})                    # invalid params: silent
    ws.notify("exec", ["ls"])                # positional params: silent
    ws.notify("kill", {"id": "ghost"})       # no such command: silent
    ws.notify("stdin", {"id": "ghost"})
    ws.expect_silence(0.3)
    # the connection is fine and the next request is the next thing answered
    r = ws.rpc("ping", rid="after")
    assert r["id"] == "after"


def test_exec_notification_runs_without_reply(ws, tmp_path):
    f = tmp_path / "ran"
    ws.notify("exec", {"argv": ["touch", str(f)]})
    rpchelp.wait_until(f.exists, 5, "the notified command to run")
    ws.expect_silence(0.3)


def test_kill_and_stdin_as_notifications(ws):
    ws.send(req("exec", {"argv": ["cat"], "stdinOpen": True}, rid="c"))
    ws.notify("stdin", {"id": "c", "data": "quiet", "eof": True})
    r = ws.recv()
    assert r["id"] == "c" and r["result"]["stdout"] == "quiet", r
    ws.send(req("exec", {"command": "sleep 30"}, rid="k"))
    ws.notify("kill", {"id": "k", "signal": "TERM"})
    r = ws.recv()
    assert r["id"] == "k" and r["result"]["signal"] == "SIGTERM", r


# ---- batches

def test_empty_batch_is_one_invalid_request(ws):
    ws.send_text("[]")
    assert ws.recv() == err(None, -32600, "Invalid Request")
    ws.send_text(" [ ] ")
    assert ws.recv() == err(None, -32600, "Invalid Request")


def test_batch_of_invalid_elements(ws):
    ws.send_text("[1,2,3]")
    assert ws.recv() == [err(None, -32600, "Invalid Request")] * 3


def test_all_notification_batch_gets_nothing(ws):
    ws.send([req("ping", notification=True), req("list", notification=True),
             req("nope", notification=True)])
    ws.expect_silence(0.3)
    assert ws.rpc("ping", rid=1)["id"] == 1


def test_mixed_batch(ws):
    batch = [
        req("ping", rid=1),
        req("ping", notification=True),
        req("nope", rid="2"),
        {"foo": "boo"},
        req("info", rid=3.5),
        req("exec", {"argv": ["echo", "in batch"]}, rid="e"),
        req("exec", ["positional"], rid=4),
        req("list", notification=True),
        req("kill", {"id": "ghost"}, rid=5),
    ]
    ws.send(batch)
    replies = ws.recv(timeout=15)
    assert isinstance(replies, list), replies
    by_id = {json.dumps(r["id"]): r for r in replies}
    assert len(replies) == 7 and len(by_id) == 7, replies
    assert "timestamp" in by_id["1"]["result"]
    assert by_id['"2"'] == err("2", -32601, "Method not found", "nope")
    assert by_id["null"] == err(None, -32600, "Invalid Request")
    assert by_id["3.5"]["result"]["platform"] == "linux"
    assert by_id['"e"']["result"]["stdout"] == "in batch\n"
    assert by_id["4"]["error"]["code"] == -32602
    assert by_id["5"]["error"]["code"] == -32003
    ws.expect_silence(0.3)


def test_batch_waits_for_its_execs(ws):
    # one array, sent once every exec in it has finished; in request order
    t0 = time.monotonic()
    ws.send([req("exec", {"command": "sleep 0.5; echo slow"}, rid="slow"),
             req("exec", {"command": "echo fast"}, rid="fast"),
             req("ping", rid="p")])
    replies = ws.recv(timeout=15)
    assert time.monotonic() - t0 >= 0.45
    assert [r["id"] for r in replies] == ["slow", "fast", "p"]
    assert replies[0]["result"]["stdout"] == "slow\n"
    assert replies[1]["result"]["stdout"] == "fast\n"
    ws.expect_silence(0.2)


def test_batch_exec_stream_notifications_precede_the_batch(ws):
    ws.send([req("exec", {"argv": ["echo", "hi"], "stream": True}, rid="s")])
    msgs = []
    while True:
        m = ws.recv()
        msgs.append(m)
        if isinstance(m, list):
            break
    assert msgs[0]["method"] == "exec.start"
    assert any(m.get("method") == "exec.output" and m["params"]["data"] == "hi\n"
               for m in msgs[1:-1])
    assert msgs[-1][0]["id"] == "s" and msgs[-1][0]["result"]["exitCode"] == 0


def test_duplicate_id_within_a_batch(ws):
    ws.send([req("exec", {"command": "sleep 0.3; echo one"}, rid=1),
             req("exec", {"command": "echo two"}, rid=1)])
    replies = ws.recv(timeout=15)
    assert replies[0]["result"]["stdout"] == "one\n"
    assert replies[1] == err(1, -32002, "Duplicate id")


def test_disconnect_during_a_batch_kills_its_commands(srv):
    w = srv.ws()
    w.send([req("exec", {"command": "sleep 60", "stream": True}, rid=1),
            req("exec", {"command": "sleep 60"}, rid=2), req("ping", rid=3)])
    start = w.recv()
    assert start["method"] == "exec.start"
    rpchelp.wait_until(lambda: len(srv.children()) == 2, 5, "both commands to run")
    pids = [k[0] for k in srv.children()]
    w.abort()
    for pid in pids:
        rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "command %d to die" % pid)
    rpchelp.wait_until(lambda: srv.children() == [], 5, "no children")
    # the server is fine
    assert "result" in srv.ws().rpc("ping")


def test_batch_with_type_messages_inside_is_invalid(ws):
    # a batch is JSON-RPC only: `type` messages in it are invalid requests
    ws.send([{"type": "ping", "id": 1}])
    assert ws.recv() == [err(1, -32600, "Invalid Request")]


@pytest.mark.heavy
def test_100_pipelined_requests_answered_with_matching_ids(rpc):
    ws = rpc("--rate-limit", "0", "--max-exec-per-conn", "16").ws()
    ids = ["r%d" % i if i % 3 else i for i in range(100)]
    msgs = [req("exec", {"argv": ["echo", str(r)]}, rid=r) if i % 10 == 5 else
            req("ping", rid=r) for i, r in enumerate(ids)]
    ws.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(m)) for m in msgs))
    got = {}
    for _ in range(100):
        m = ws.recv()
        key = json.dumps(m["id"])
        assert key not in got and "result" in m, m
        got[key] = m
    assert set(got) == {json.dumps(r) for r in ids}
    for m in msgs:
        if m["method"] == "exec":
            assert got[json.dumps(m["id"])]["result"]["stdout"] == "%s\n" % m["id"]
    ws.expect_silence(0.2)


@pytest.mark.heavy
def test_100_requests_in_one_batch(rpc):
    ws = rpc("--rate-limit", "0").ws()
    ws.send([req("ping", rid=i) for i in range(100)])
    replies = ws.recv()
    assert [r["id"] for r in replies] == list(range(100))
