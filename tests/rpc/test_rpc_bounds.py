"""What a token holder can make ws-rpc hold or do in one loop turn: a
result bounded by its size once encoded (--max-reply), output held for
clients that do not read bounded per connection and in total
(--max-buffered-per-conn, --max-buffered), batch elements counted by the
rate limit and batches capped (--max-batch), ids capped (--max-id-length),
deep nesting, and targets of kill/stdin that are not ids."""

import base64
import json
import os
import time

import pytest

import rpchelp
from lib.proc import status_kib
from rpchelp import t

MEM = rpchelp.MEM_SCALE
V = "2.0"

# 1 byte of output that becomes 6 in JSON ("\u0001")
CONTROL = "head -c %d /dev/zero | tr '\\0' '\\1'"


def raw_reply(w, timeout=30):
    """The next text message as (length in bytes, decoded JSON)."""
    op, data = w.recv_frame_message(timeout)
    assert op == rpchelp.OP_TEXT
    return len(data), json.loads(data.decode())


def encoded_len(s):
    """Bytes a string takes inside a compact JSON string."""
    return len(json.dumps(s, ensure_ascii=False).encode()) - 2


# ---- a result's size, counted after escaping

def test_control_bytes_are_cut_by_their_encoded_size(rpc):
    # 2 MiB of \x01 was ~12 MiB of JSON: now the result stays within --max-reply
    s = rpc("--max-reply", "1m", "--rate-limit", "0")
    w = s.ws()
    w.send({"type": "exec", "id": 1, "command": CONTROL % (2 << 20)})
    size, r = raw_reply(w)
    assert r["type"] == "result" and r["exitCode"] == 0
    assert r["truncated"] is True
    assert encoded_len(r["stdout"]) <= 1 << 20
    assert encoded_len(r["stdout"]) > (1 << 20) - 6  # cut at a whole escape, not earlier
    assert r["stdout"] == "\x01" * len(r["stdout"])
    assert size <= (1 << 20) + 512, size


def test_stdout_and_stderr_share_one_reply_budget(rpc):
    s = rpc("--max-reply", "64k", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="head -c 40000 /dev/zero | tr '\\0' a; "
                       "head -c 40000 /dev/zero | tr '\\0' b >&2")
    assert r["truncated"] is True
    assert r["stdout"] == "a" * 40000
    assert len(r["stderr"]) == 64 * 1024 - 40000 and set(r["stderr"]) == {"b"}
    # below the budget nothing is cut
    r = w.exec(command="printf 'x\\ty\"\\\\'; printf 'e' >&2")
    assert r == dict(r, stdout="x\ty\"\\", stderr="e", truncated=False)


def test_cut_never_splits_an_escape_or_a_utf8_sequence(rpc):
    s = rpc("--max-reply", "1k", "--rate-limit", "0")
    w = s.ws()
    unit = "é\x01\"ü\n"
    r = w.exec(command="for i in $(seq 400); do printf 'é\\001\"ü\\n'; done")
    assert r["truncated"] is True
    full = unit * 400
    assert full.startswith(r["stdout"]) and len(r["stdout"]) > 0
    assert encoded_len(r["stdout"]) <= 1024
    # the next unit would not have fitted
    nxt = full[len(r["stdout"])]
    assert encoded_len(r["stdout"] + nxt) > 1024


def test_base64_is_cut_in_whole_groups(rpc):
    s = rpc("--max-reply", "1k", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="head -c 5000 /dev/urandom | tee /tmp/.ws-rpc-b64-%d" % os.getpid(),
               encoding="base64")
    try:
        with open("/tmp/.ws-rpc-b64-%d" % os.getpid(), "rb") as f:
            data = f.read()
    finally:
        os.unlink("/tmp/.ws-rpc-b64-%d" % os.getpid())
    assert r["truncated"] is True and len(r["stdout"]) == 1024
    assert base64.b64decode(r["stdout"]) == data[:768]
    # a tail shorter than a group is padded at the end
    r = w.exec(command="printf abcd", encoding="base64")
    assert r["stdout"] == base64.b64encode(b"abcd").decode() and r["truncated"] is False


def test_invalid_utf8_counts_as_its_replacement(rpc):
    # each invalid byte becomes U+FFFD (3 bytes): 1000 of them do not fit in 1 KiB
    s = rpc("--max-reply", "1k", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="head -c 1000 /dev/zero | tr '\\0' '\\377'")
    assert r["truncated"] is True and r["stdout"] == "\ufffd" * (1024 // 3)


@pytest.mark.heavy
def test_default_reply_bound_with_10_mib_of_control_bytes(rpc):
    # the case: 10 MiB of control bytes, the default limits
    s = rpc("--rate-limit", "0")
    w = s.ws()
    base = s.rss_kib()
    w.send({"type": "exec", "id": 1, "command": CONTROL % (10 << 20)})
    size, r = raw_reply(w, timeout=60)
    assert r["truncated"] is True and r["exitCode"] == 0
    assert size <= (16 << 20) + 512, size
    hwm = status_kib(s.pid, "VmHWM")
    # the encoded output, its reply text and the send queue at most: not ~115 MiB of JSON
    assert hwm - base < 72 * 1024 * MEM, (base, hwm)


# ---- output held for clients that do not read

def _stuck_reader(s):
    """A connection that reads nothing once it has sent its request."""
    return s.ws(rcvbuf=4096)


def test_output_held_for_a_client_that_does_not_read_counts_server_wide(rpc):
    # A's 8 MiB result waits in A's queue (A does not read): only 4 MiB of the
    # 12 MiB total budget is left for B's result, which is cut there
    s = rpc("--max-reply", "8m", "--max-buffered", "12m", "--max-buffered-per-conn", "8m",
            "--rate-limit", "0")
    a = _stuck_reader(s)
    a.send({"type": "exec", "id": "a", "command": CONTROL % (2 << 20)})
    b = s.ws()
    # wait until A's result is queued (A's command is no longer running)
    rpchelp.wait_until(lambda: b.request({"type": "info"})["server"]["running"] == 0, 30,
                       "A's command to finish")
    r = b.exec(command=CONTROL % (2 << 20), timeout=30)
    assert r["truncated"] is True
    assert (4 << 20) - 6 < encoded_len(r["stdout"]) <= (4 << 20) + 6
    # A reads its result: the budget is free again, and C gets a whole 8 MiB
    size, ra = raw_reply(a, timeout=30)
    assert ra["id"] == "a" and encoded_len(ra["stdout"]) > (8 << 20) - 6
    assert b.request({"type": "ping"})["type"] == "pong"
    r = b.exec(command=CONTROL % (2 << 20), timeout=30)
    assert encoded_len(r["stdout"]) > (8 << 20) - 6


def test_output_held_per_connection(rpc):
    # two commands of one connection that does not read: 16 MiB of results
    # between them, 10 MiB held for the connection at most
    s = rpc("--max-reply", "8m", "--max-buffered-per-conn", "10m", "--rate-limit", "0",
            "--send-queue", "64m")
    a = _stuck_reader(s)
    a.send_raw(b"".join(rpchelp.client_frame(rpchelp.OP_TEXT, json.dumps(
        {"type": "exec", "id": i, "command": CONTROL % (2 << 20)})) for i in (1, 2)))
    other = s.ws()
    rpchelp.wait_until(lambda: other.request({"type": "info"})["server"]["running"] == 0, 30,
                       "both commands to finish")
    # another connection has its own allowance
    r = other.exec(command=CONTROL % (2 << 20), timeout=30)
    assert encoded_len(r["stdout"]) > (8 << 20) - 6
    got = [raw_reply(a)[1] for _ in range(2)]
    assert sorted(m["id"] for m in got) == [1, 2]
    total = sum(encoded_len(m["stdout"]) for m in got)
    assert (10 << 20) - 12 < total <= 10 << 20, total
    assert any(m["truncated"] for m in got)


@pytest.mark.heavy
def test_three_clients_that_do_not_read_keep_memory_bounded(rpc):
    # the case: three clients, 10 MiB of control bytes each, none reads
    s = rpc("--rate-limit", "0")
    base = s.rss_kib()
    stuck = [_stuck_reader(s) for _ in range(3)]
    for i, w in enumerate(stuck):
        w.send({"type": "exec", "id": i, "command": CONTROL % (10 << 20)})
    probe = s.ws()
    rpchelp.wait_until(lambda: probe.request({"type": "info"})["server"]["running"] == 0, 60,
                       "the three commands to finish")
    grown = status_kib(s.pid, "VmHWM") - base
    # was 344 MiB; now at most --max-buffered-per-conn (32 MiB) is held per
    # client, plus one result (16 MiB) being copied into its queue: 3 x 48 MiB
    assert grown < 3 * 48 * 1024 * MEM + 16 * 1024, grown
    # what stays: each client's held output, queued for it (3 x 32 MiB at
    # most), plus what malloc keeps of the freed result buffers: never more
    # than the peak's bound
    assert s.rss_kib() - base < 3 * 48 * 1024 * MEM + 16 * 1024
    # and the loop still answers at once
    t0 = time.monotonic()
    assert probe.request({"type": "ping"})["type"] == "pong"
    assert time.monotonic() - t0 < t(2)


def test_notification_output_is_not_kept(rpc, tmp_path):
    # a JSON-RPC exec without id has no reply: its output takes no budget
    flag = tmp_path / "done"
    s = rpc("--max-reply", "64k", "--max-buffered", "64k", "--rate-limit", "0")
    w = s.ws()
    w.send({"jsonrpc": V, "method": "exec",
            "params": {"command": "head -c 60000 /dev/zero | tr '\\0' n; touch %s; sleep 30"
                       % flag}})
    rpchelp.wait_until(flag.exists, 10, "the notification's output to be written")
    r = w.exec(command="head -c 60000 /dev/zero | tr '\\0' a")
    assert r["truncated"] is False and len(r["stdout"]) == 60000


# ---- batches and the rate limit

def _req(method, rid=None, params=None):
    m = {"jsonrpc": V, "method": method}
    if rid is not None:
        m["id"] = rid
    if params is not None:
        m["params"] = params
    return m


def test_batch_elements_count_against_the_rate_limit(rpc):
    s = rpc("--rate-limit", "1", "--rate-burst", "5")
    w = s.ws()
    w.send([_req("ping", i) for i in range(8)] + [_req("ping")])
    replies = w.recv()
    assert [r["id"] for r in replies] == list(range(8))
    assert all("result" in r for r in replies[:5]), replies
    for r in replies[5:]:
        assert r["error"] == {"code": -32000, "message": "Rate limit exceeded"}, r
    # the batch spent the tokens: a single request right after is limited too
    m = w.rpc("ping", rid="after")
    assert m["error"]["code"] == -32000


def test_batch_larger_than_max_batch_is_one_error(rpc):
    s = rpc("--max-batch", "10", "--rate-limit", "0")
    w = s.ws()
    w.send([_req("ping", i) for i in range(11)])
    assert w.recv() == {"jsonrpc": V, "id": None, "error": {
        "code": -32600, "message": "Invalid Request",
        "data": "batch larger than the server's --max-batch"}}
    w.send([_req("ping", i) for i in range(10)])
    assert len(w.recv()) == 10


def test_a_huge_batch_does_not_stall_other_clients(rpc):
    # the case: 20,000 info requests in one batch (14 MiB of reply,
    # another client's ping waited 581 ms). The default --max-batch refuses it.
    s = rpc("--rate-limit", "0")
    w = s.ws()
    other = s.ws()
    w.send([_req("info", i) for i in range(20000)])
    t0 = time.monotonic()
    assert other.request({"type": "ping"})["type"] == "pong"
    assert time.monotonic() - t0 < t(0.1)
    m = w.recv()
    assert m["error"]["code"] == -32600


def test_batch_replies_stay_within_max_reply(rpc):
    # 40 `list` replies of ~1.5 KiB each (long command labels) pass a 16 KiB reply
    s = rpc("--max-reply", "16k", "--rate-limit", "0", "--max-exec-per-conn", "1")
    w = s.ws()
    w.send({"type": "exec", "id": "l", "command": "sleep 30 #" + "x" * 1500, "stream": True})
    assert w.recv()["type"] == "start"
    w.send([_req("list", i) for i in range(40)])
    replies = w.recv()
    assert len(replies) == 40
    ok = [r for r in replies if "result" in r]
    cut = [r for r in replies if "error" in r]
    # the replies that fit, then short errors in place of those that did not
    assert ok and cut and replies.index(cut[0]) == len(ok)
    assert len(json.dumps(ok, separators=(",", ":"))) <= 16 * 1024
    assert cut[0]["error"]["code"] == -32603 and "--max-reply" in cut[0]["error"]["data"]
    w.request({"type": "kill", "id": "l", "signal": "KILL"})


def test_batch_execs_share_one_reply_budget(rpc):
    s = rpc("--max-reply", "64k", "--rate-limit", "0")
    w = s.ws()
    cmd = "head -c 40000 /dev/zero | tr '\\0' a"
    w.send([_req("exec", 1, {"command": cmd}), _req("exec", 2, {"command": cmd})])
    replies = w.recv(timeout=30)
    outs = [r["result"]["stdout"] for r in replies]
    assert sum(len(o) for o in outs) == 64 * 1024
    assert any(r["result"]["truncated"] for r in replies)


# ---- ids, nesting, targets

def test_ids_longer_than_max_id_length_are_invalid(rpc):
    s = rpc("--max-id-length", "16", "--rate-limit", "0")
    w = s.ws()
    w.send({"type": "ping", "id": "x" * 16})
    assert w.recv()["id"] == "x" * 16
    w.send({"type": "ping", "id": "x" * 17})
    assert w.recv() == {"type": "error", "error": "Invalid message format"}
    w.send({"jsonrpc": V, "method": "ping", "id": "y" * 17})
    assert w.recv() == {"jsonrpc": V, "id": None,
                        "error": {"code": -32600, "message": "Invalid Request"}}
    # the default is 256 bytes
    s2 = rpc("--rate-limit", "0")
    w2 = s2.ws()
    w2.send({"type": "ping", "id": "z" * 256})
    assert w2.recv()["type"] == "pong"
    w2.send({"type": "ping", "id": "z" * 257})
    assert w2.recv()["type"] == "error"


def test_a_huge_id_is_not_echoed_by_the_rate_limit(rpc):
    s = rpc("--rate-limit", "1", "--rate-burst", "1")
    w = s.ws()
    w.send({"type": "ping", "id": 1})
    w.send({"type": "ping", "id": "h" * 100000})
    assert w.recv()["type"] == "pong"
    m = w.recv()
    assert m == {"type": "error", "error": "Rate limit exceeded"}, str(m)[:200]


@pytest.mark.parametrize("text", ["[" * 100000, '{"a":' * 100000, "[" * 2100 + "]" * 2100],
                         ids=["arrays", "objects", "closed"])
def test_deep_nesting_is_a_parse_error(ws, text):
    t0 = time.monotonic()
    ws.send_text(text)
    m = ws.recv()
    assert m["error"] == {"code": -32700, "message": "Parse error"} or \
        m == {"type": "error", "error": "Invalid JSON"}, m
    assert time.monotonic() - t0 < t(1)
    assert ws.request({"type": "ping"})["type"] == "pong"


@pytest.mark.parametrize("target", [{"a": 1}, [1, 2], None, True, "t" * 300],
                         ids=["object", "array", "null", "bool", "long"])
def test_kill_and_stdin_targets_must_be_ids(ws, target):
    # JSON-RPC names the command in params.id: anything but an id is a bad
    # parameter, and nothing of it is echoed back
    for method, params in (("kill", {"id": target}), ("stdin", {"id": target, "data": "x"})):
        m = ws.rpc(method, params, rid="k")
        assert m["error"]["code"] == -32602, m
        assert len(json.dumps(m)) < 200, m
