"""The exec engine, through the `type` dialect (JSON-RPC shares the code
and is covered in test_rpc_jsonrpc.py): output separation and encodings,
exit codes and signal deaths, stdin, cwd and env, argv passed intact,
streaming order and timeliness, timeouts, truncation with bounded memory,
process-group and orphan clean-up, disconnects, caps, kill and list."""

import base64
import hashlib
import json
import os
import re
import time

import pytest

import rpchelp
from rpchelp import t

MEM = rpchelp.MEM_SCALE


def octal(data):
    """A printf format printing exactly these bytes."""
    return "".join("\\%03o" % b for b in data)


def no_children(s, timeout=5):
    """The server has no child left (running or zombie), waited for briefly."""
    rpchelp.wait_until(lambda: s.children() == [], timeout,
                       "ws-rpc to have no children (has %r)" % (s.children(),))


# ---- output, exit status

def test_stdout_and_stderr_are_separate(ws):
    r = ws.exec(command="for i in 1 2 3; do echo out$i; echo err$i >&2; done")
    assert r["type"] == "result"
    assert r["stdout"] == "out1\nout2\nout3\n"
    assert r["stderr"] == "err1\nerr2\nerr3\n"
    assert r["exitCode"] == 0 and r["signal"] is None
    assert r["timedOut"] is False and r["truncated"] is False
    assert isinstance(r["durationMs"], int) and 0 <= r["durationMs"] < 10000


@pytest.mark.parametrize("command,code,signal", [
    ("true", 0, None),
    ("false", 1, None),
    ("exit 42", 42, None),
    ("exit 255", 255, None),
    ("kill -TERM $$", 143, "SIGTERM"),
    ("kill -KILL $$", 137, "SIGKILL"),
    ("kill -SEGV $$", 139, "SIGSEGV"),
    ("kill -INT $$", 130, "SIGINT"),
    ("kill -USR1 $$", 138, "SIGUSR1"),
])
def test_exit_codes_and_signal_deaths(ws, command, code, signal):
    r = ws.exec(command=command)
    assert (r["exitCode"], r["signal"]) == (code, signal), r


def test_command_not_found_is_127_with_the_shells_message(ws):
    r = ws.exec(command="no-such-command-xyz --flag")
    assert r["exitCode"] == 127 and r["signal"] is None
    assert "no-such-command-xyz" in r["stderr"] and "not found" in r["stderr"], r
    r = ws.exec(argv=["no-such-command-xyz", "a"])
    assert r["exitCode"] in rpchelp.failed_exec_status(127)
    assert "no-such-command-xyz" in r["stderr"] and "not found" in r["stderr"], r
    r = ws.exec(argv=["/no/such/path"])
    assert r["exitCode"] in rpchelp.failed_exec_status(127)


def test_not_executable_is_126(ws, tmp_path):
    f = tmp_path / "plain"
    f.write_text("echo hi\n")
    r = ws.exec(argv=[str(f)])
    assert r["exitCode"] in rpchelp.failed_exec_status(126) and "ermission" in r["stderr"], r
    r = ws.exec(command=str(f))
    assert r["exitCode"] == 126, r


# ---- stdin

def test_stdin_string_then_eof(ws):
    r = ws.exec(command="cat; echo '<eof>'", stdin="line1\nline2 é\n")
    assert r["stdout"] == "line1\nline2 é\n<eof>\n" and r["exitCode"] == 0
    assert ws.exec(argv=["wc", "-c"], stdin="é")["stdout"].strip() == "2"


def test_stdin_closed_when_none_given(ws):
    # without stdin (and stdinOpen) the command reads EOF at once
    r = ws.exec(argv=["cat"], timeout_ms=5000)
    assert r["stdout"] == "" and r["exitCode"] == 0 and not r["timedOut"]


def test_large_stdin_round_trip(ws):
    # bigger than a pipe's buffer: written as the command reads
    data = "".join("%06d abcdefghijklmnopqrstuvwxyz\n" % i for i in range(10000))
    assert len(data) > 300000
    r = ws.exec(argv=["cat"], stdin=data, timeout_ms=10000, timeout=30)
    assert not r["timedOut"], "stdin stalled: %d of %d bytes came back" % (
        len(r["stdout"]), len(data))
    assert r["stdout"] == data and r["exitCode"] == 0


def test_large_stdin_by_messages(ws):
    chunk = "".join("%06d abcdefghijklmnopqrstuvwxyz\n" % i for i in range(3000))
    ws.send({"type": "exec", "id": "big", "command": "wc -c", "stdinOpen": True,
             "timeout_ms": 10000})
    for i in range(4):
        assert ws.request({"type": "stdin", "id": "big", "data": chunk})["ok"] is True
    assert ws.request({"type": "stdin", "id": "big", "eof": True})["ok"] is True
    r = ws.reply_to("big", timeout=30)
    assert not r["timedOut"] and r["stdout"].strip() == str(4 * len(chunk)), r


def test_stdin_messages_round_trip(ws):
    ws.send({"type": "exec", "id": "c", "argv": ["cat"], "stdin": "first ",
             "stdinOpen": True, "stream": True})
    assert ws.recv()["type"] == "start"
    out = ws.recv()
    assert out == {"type": "stdout", "id": "c", "data": "first "}, out
    assert ws.request({"type": "stdin", "id": "c", "data": "second"}) == \
        {"type": "stdin", "id": "c", "ok": True}
    out = ws.wait_for(lambda m: m["type"] == "stdout")
    assert out["data"] == "second"
    # stdin's reply carries the command's id: it is the id
    assert ws.request({"type": "stdin", "id": "c", "data": " third", "eof": True})["ok"] is True
    events, res = ws.drain_stream("c")
    assert "".join(m["data"] for m, _ in events if m["type"] == "stdout") == " third"
    assert res["exitCode"] == 0


def test_stdin_eof_alone_and_after_close(ws):
    ws.send({"type": "exec", "id": "w", "command": "wc -l", "stdinOpen": True})
    assert ws.request({"type": "stdin", "id": "w", "data": "a\nb\n"})["ok"] is True
    assert ws.request({"type": "stdin", "id": "w", "eof": True})["ok"] is True
    r = ws.reply_to("w")
    assert r["type"] == "result" and r["stdout"].strip() == "2"
    # stdin of a running command whose stdin is closed
    ws.send({"type": "exec", "id": "s", "command": "sleep 30", "stream": True})
    assert ws.recv()["type"] == "start"
    m = ws.request({"type": "stdin", "id": "s", "data": "x"})
    assert m["type"] == "error" and m["error"].startswith("Invalid params: "), m
    ws.request({"type": "kill", "id": "s", "signal": "KILL"})
    assert ws.reply_to("s")["signal"] == "SIGKILL"


# ---- cwd, env, argv

def test_cwd(ws, tmp_path):
    tmp_path = tmp_path / "cwd"
    tmp_path.mkdir()
    (tmp_path / "marker-file").write_text("x")
    r = ws.exec(command="pwd; ls", cwd=str(tmp_path))
    assert r["stdout"] == "%s\nmarker-file\n" % tmp_path
    r = ws.exec(argv=["ls"], cwd=str(tmp_path))
    assert r["stdout"] == "marker-file\n"
    r = ws.exec(command="pwd")
    assert r["exitCode"] == 0 and r["stdout"] != "%s\n" % tmp_path


# and HOME: the server's own directory for the commands (HOME_RE), not /tmp
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8", "TERM": "dumb",
}
HOME_RE = r"/tmp/ws-rpc-home\.[A-Za-z0-9]{6}"


def env_of(result):
    return dict(line.split("=", 1) for line in result["stdout"].splitlines())


def test_env_is_scrubbed(rpc):
    # nothing of the server's own environment reaches the command
    s = rpc("--rate-limit", "0", env={"SECRET_SERVER_VAR": "leak", "LD_PRELOAD": "",
                                      "HOME": "/root-home-of-server"})
    w = s.ws()
    got = env_of(w.exec(argv=["env"]))
    assert re.fullmatch(HOME_RE, got.pop("HOME"))
    assert got == BASE_ENV


def test_env_applied_over_the_base(ws):
    env = {"FOO": "bar baz", "EMPTY": "", "QUOTE": "it's \"q\"", "UNI": "ünï",
           "HOME": "/elsewhere", "NEWLINE": "a\nb"}
    r = ws.exec(argv=["env"], env=env)
    got = dict(BASE_ENV, **env)
    del got["NEWLINE"]
    lines = r["stdout"].split("\n")
    assert "NEWLINE=a" in lines and "b" in lines
    assert env_of({"stdout": "\n".join(l for l in lines if l not in ("NEWLINE=a", "b"))}) == got
    r = ws.exec(command='printf "%s|%s|%s" "$FOO" "$QUOTE" "$HOME"', env=env)
    assert r["stdout"] == "bar baz|it's \"q\"|/elsewhere"


def test_argv_resolved_with_the_commands_path(rpc, tmp_path):
    # the command's PATH (base or given) finds argv[0], not the server's own
    s = rpc("--rate-limit", "0", env={"PATH": str(tmp_path)})
    w = s.ws()
    r = w.exec(argv=["echo", "found"])
    assert r["stdout"] == "found\n" and r["exitCode"] == 0, r
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\necho mytool ran\n")
    tool.chmod(0o755)
    r = w.exec(argv=["mytool"], env={"PATH": "%s:/usr/bin:/bin" % bindir})
    assert r["stdout"] == "mytool ran\n", r


def test_argv_script_without_shebang_runs_in_the_shell(ws, tmp_path):
    # execvp's rule (and a terminal's): an executable text file without "#!"
    # is run by /bin/sh, found through PATH or by its path
    d = tmp_path / "bin"
    d.mkdir()
    script = d / "noshebang"
    script.write_text("echo ran as script \"$1\"\n")
    script.chmod(0o755)
    r = ws.exec(argv=[str(script), "a b"])
    assert (r["exitCode"], r["stdout"]) == (0, "ran as script a b\n"), r
    r = ws.exec(argv=["noshebang", "x"], env={"PATH": "%s:/usr/bin:/bin" % d})
    assert (r["exitCode"], r["stdout"]) == (0, "ran as script x\n"), r


def test_argv_with_spaces_and_quotes_passed_intact(ws):
    args = ["a b", "  lead and trail  ", 'dq"uote', "it's", "$HOME", "*", "`id`",
            "back\\slash", "", "tab\there", "new\nline", "ünï €", "-n", ";", "|", "&&"]
    r = ws.exec(argv=["printf", "[%s]\\n"] + args)
    assert r["stdout"] == "".join("[%s]\n" % a for a in args), r
    assert r["exitCode"] == 0
    # through the shell, the shell's own quoting applies
    r = ws.exec(command="printf '[%s]\\n' 'a b' \"c\\\"d\" e\\ f")
    assert r["stdout"] == "[a b]\n[c\"d]\n[e f]\n"


# ---- encodings

def test_utf8_output(ws):
    text = "héllo € 😀 ünï"
    r = ws.exec(command="printf '%s'" % octal(text.encode()))
    assert r["stdout"] == text


def test_invalid_utf8_becomes_replacement_chars(ws):
    raw = b"a\xffb\x80c\xc3xd\xc3"
    r = ws.exec(command="printf '%s'; printf '%s' >&2" % (octal(raw), octal(b"\xfe!")))
    assert r["stdout"] == "a\ufffdb\ufffdc\ufffdxd\ufffd", ascii(r["stdout"])
    assert r["stderr"] == "\ufffd!"


def test_nul_bytes_survive_in_utf8(ws):
    r = ws.exec(command="printf 'a\\000b'")
    assert r["stdout"] == "a\x00b"


def test_base64_is_exact(ws):
    raw = bytes(range(256)) * 3 + b"\xff\xfe\x00"
    r = ws.exec(command="printf '%s'; printf '%s' >&2" % (octal(raw), octal(raw[::-1])),
                encoding="base64")
    assert base64.b64decode(r["stdout"], validate=True) == raw
    assert base64.b64decode(r["stderr"], validate=True) == raw[::-1]
    assert ws.exec(command="true", encoding="base64")["stdout"] == ""


def test_explicit_utf8_encoding(ws):
    assert ws.exec(command="printf 'é'", encoding="utf8")["stdout"] == "é"


def test_binary_output_streamed_in_base64(ws):
    # random bytes on stderr, their digest on stdout
    ws.send({"type": "exec", "id": "b", "stream": True, "encoding": "base64",
             "command": "head -c 200000 /dev/urandom | tee /dev/stderr | sha256sum"})
    events, res = ws.drain_stream("b")
    err = b"".join(base64.b64decode(m["data"], validate=True)
                   for m, _ in events if m["type"] == "stderr")
    out = b"".join(base64.b64decode(m["data"], validate=True)
                   for m, _ in events if m["type"] == "stdout")
    assert len(err) == 200000
    assert out.split()[0].decode() == hashlib.sha256(err).hexdigest()
    assert res["exitCode"] == 0 and res["stdout"] == "" and res["stderr"] == ""


def test_utf8_sequence_split_between_chunks_is_kept_whole(ws):
    # "é" is \303\251: its two bytes leave in two writes 0.3 s apart
    ws.send({"type": "exec", "id": "u", "stream": True,
             "command": "printf 'x\\303'; sleep 0.3; printf '\\251y'; sleep 0.3; printf 'z\\342\\202'"})
    events, res = ws.drain_stream("u")
    chunks = [m["data"] for m, _ in events if m["type"] == "stdout"]
    joined = "".join(chunks)
    # whole where the bytes were valid; the sequence cut off by the end is
    # replaced (one U+FFFD per maximal subpart is the Unicode recommendation,
    # one per byte is accepted too)
    assert joined.startswith("x\u00e9yz"), chunks
    assert joined[4:] in ("\ufffd", "\ufffd\ufffd"), chunks
    assert len(chunks) >= 2, chunks


# ---- streaming

def test_streaming_is_timely(ws):
    # print, sleep 1, print: the first chunk arrives long before the result
    sent = time.monotonic()
    ws.send({"type": "exec", "id": "t", "command": "echo first; sleep 1; echo second",
             "stream": True})
    events, res = [], None
    while res is None:
        m, at = ws.recv_timed(timeout=15)
        if m["type"] == "result":
            res, res_at = m, at
        else:
            events.append((m, at))
    assert events[0][0] == {"type": "start", "id": "t", "pid": events[0][0]["pid"]}
    outs = [(m, at) for m, at in events if m["type"] == "stdout"]
    assert outs[0][0]["data"].startswith("first\n"), outs
    assert "".join(m["data"] for m, _ in outs) == "first\nsecond\n"
    first_at = outs[0][1]
    # the sleep is 1 s: the first chunk must not have waited for it
    assert res_at - first_at >= 0.5, (first_at - sent, res_at - sent)
    assert first_at - sent < res_at - sent - 0.5
    assert res["exitCode"] == 0 and res["stdout"] == "" and res["stderr"] == ""
    assert res["durationMs"] >= 900


def test_streaming_keeps_order_per_stream(ws):
    n = 3000
    ws.send({"type": "exec", "id": 1, "stream": True,
             "command": "i=0; while [ $i -lt %d ]; do echo o$i; echo e$i >&2; "
                        "i=$((i+1)); done" % n})
    events, res = ws.drain_stream(1, timeout=60)
    assert events[0][0]["type"] == "start" and all(m["type"] != "start" for m, _ in events[1:])
    out = "".join(m["data"] for m, _ in events if m["type"] == "stdout")
    err = "".join(m["data"] for m, _ in events if m["type"] == "stderr")
    assert out == "".join("o%d\n" % i for i in range(n))
    assert err == "".join("e%d\n" % i for i in range(n))
    assert res["exitCode"] == 0


def test_start_carries_the_pid(srv):
    w = srv.ws()
    w.send({"type": "exec", "id": "p", "command": "echo $$", "stream": True})
    events, _ = w.drain_stream("p")
    pid = events[0][0]["pid"]
    assert "".join(m["data"] for m, _ in events[1:]) == "%d\n" % pid


# ---- timeouts

def test_timeout_keeps_partial_output(ws):
    r = ws.exec(command="echo partial; echo e >&2; sleep 10", timeout_ms=500)
    assert r["timedOut"] is True
    assert r["stdout"] == "partial\n" and r["stderr"] == "e\n"
    assert r["signal"] == "SIGTERM" and r["exitCode"] == 143
    assert 400 <= r["durationMs"] < 5000, r


def test_timeout_escalates_to_kill_after_grace(rpc):
    s = rpc("--kill-grace", "0.3", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="trap '' TERM; echo stubborn; sleep 10; echo never", timeout_ms=300)
    assert r["timedOut"] is True and r["stdout"] == "stubborn\n"
    assert r["signal"] == "SIGKILL" and r["exitCode"] == 137
    assert 500 <= r["durationMs"] < 5000, r
    no_children(s)


def test_timeout_while_streaming(ws):
    ws.send({"type": "exec", "id": "ts", "stream": True, "timeout_ms": 400,
             "command": "echo before; sleep 10"})
    events, res = ws.drain_stream("ts")
    assert "".join(m["data"] for m, _ in events if m["type"] == "stdout") == "before\n"
    assert res["timedOut"] is True and res["signal"] == "SIGTERM"


def test_default_timeout_and_its_cap(rpc):
    s = rpc("--exec-timeout", "0.4", "--exec-timeout-max", "0.8", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="sleep 10")                      # the default applies
    assert r["timedOut"] and 300 <= r["durationMs"] < 3000, r
    r = w.exec(command="sleep 10", timeout_ms=600000)   # capped by the maximum
    assert r["timedOut"] and 700 <= r["durationMs"] < 3000, r
    r = w.exec(command="sleep 0.6", timeout_ms=700)     # more than the default is allowed
    assert not r["timedOut"] and r["exitCode"] == 0, r


def test_exec_timeout_longer_than_max_is_a_usage_error(binary, tmp_path):
    rc, _, err, _ = rpchelp.run_once(["--no-auth", "--exec-timeout", "20",
                                      "--exec-timeout-max", "10"], tmp_path=tmp_path)
    assert rc == rpchelp.EXIT_USAGE and "exec-timeout" in err


# ---- truncation and memory

def vm_hwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])


@pytest.mark.heavy
def test_yes_50m_truncated_with_bounded_memory(rpc):
    s = rpc("--max-output", "1m", "--rate-limit", "0")
    w = s.ws()
    base = s.rss_kib()
    r = w.exec(command="yes | head -c 50M", timeout=60)
    assert r["truncated"] is True and r["timedOut"] is False
    # the command ran to its end: truncation does not kill it
    assert r["exitCode"] == 0 and r["signal"] is None
    assert r["stdout"] == "y\n" * (512 * 1024)
    peak = vm_hwm(s.pid)
    # 50 MiB went through; the server never held more than a few MiB of it
    assert peak - base < 24 * 1024 * MEM, (base, peak)
    assert s.rss_kib() - base < 24 * 1024 * MEM


@pytest.mark.heavy
def test_yes_50m_with_the_default_limits(rpc):
    # the defaults: 10 MiB kept per stream, and the result must still arrive
    s = rpc("--rate-limit", "0")
    w = s.ws()
    base = s.rss_kib()
    r = w.exec(command="yes | head -c 50M", timeout=60)
    assert r["truncated"] is True and r["exitCode"] == 0
    assert len(r["stdout"]) == 10 << 20
    assert vm_hwm(s.pid) - base < 100 * 1024 * MEM


def test_max_output_per_request_and_per_stream(ws):
    r = ws.exec(command="yes | head -c 100000; head -c 50 /dev/zero | tr '\\0' e >&2",
                max_output=100)
    assert r["stdout"] == "y\n" * 50 and r["truncated"] is True
    assert r["stderr"] == "e" * 50
    r = ws.exec(command="printf 12345", max_output=5)
    assert r["stdout"] == "12345" and r["truncated"] is False
    r = ws.exec(command="printf 123456", max_output=5, encoding="base64")
    assert base64.b64decode(r["stdout"]) == b"12345" and r["truncated"] is True


def test_max_output_is_capped_by_the_server(rpc):
    s = rpc("--max-output", "1k", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="head -c 5000 /dev/zero | tr '\\0' a", max_output=1 << 30)
    assert r["stdout"] == "a" * 1024 and r["truncated"] is True


def test_streamed_output_is_truncated_too(rpc):
    s = rpc("--max-output", "64k", "--rate-limit", "0")
    w = s.ws()
    w.send({"type": "exec", "id": "y", "command": "yes | head -c 5M", "stream": True})
    events, res = w.drain_stream("y", timeout=30)
    out = "".join(m["data"] for m, _ in events if m["type"] == "stdout")
    assert len(out) == 64 * 1024 and set(out) == {"y", "\n"}
    assert res["truncated"] is True and res["exitCode"] == 0


@pytest.mark.heavy
def test_slow_reader_of_a_streaming_flood_keeps_memory_bounded(rpc):
    s = rpc("--rate-limit", "0", "--max-output", "1g")
    w = s.ws()
    base = s.rss_kib()
    # a reader that reads nothing for a while: the server must stop reading the
    # command (back-pressure), not buffer its output
    w.send({"type": "exec", "id": "f", "command": "yes", "stream": True, "timeout_ms": 60000})
    time.sleep(1.5)
    grown = s.rss_kib() - base
    assert grown < 32 * 1024 * MEM, grown
    # a second connection still gets answers meanwhile
    other = s.ws()
    assert other.request({"type": "ping"}, timeout=5)["type"] == "pong"
    # now read: it flows again (the paused command is resumed), then stop it
    got = 0
    deadline = time.monotonic() + t(15)
    while got < 4 << 20 and time.monotonic() < deadline:
        m = w.recv()
        if m.get("type") == "stdout":
            got += len(m["data"])
    assert got >= 4 << 20, got
    w.send({"type": "kill", "id": "f", "signal": "KILL"})
    r = w.wait_for(lambda m: m.get("type") == "result", keep=False, timeout=30)
    assert r["signal"] == "SIGKILL"
    assert vm_hwm(s.pid) - base < 48 * 1024 * MEM
    assert not w.closed


# ---- process clean-up

@pytest.mark.parametrize("how", [
    "sleep 60 & echo $!",                                   # same group, holds the pipes
    "sleep 60 >/dev/null 2>&1 & echo $!",                   # same group, pipes closed
    "setsid sleep 60 >/dev/null 2>&1 & echo $!",            # its own session
    "setsid sleep 60 & echo $!",                            # own session, holds the pipes
    "sh -c 'sleep 60 >/dev/null 2>&1 & echo $!' &"          # double fork
    " wait",
    "sh -c 'setsid sleep 60 & echo $!' & wait",             # double fork, own session, pipes
])
def test_background_grandchild_is_killed_and_reaped(srv, how):
    w = srv.ws()
    t0 = time.monotonic()
    r = w.exec(command=how, timeout_ms=30000)
    took = time.monotonic() - t0
    assert r["exitCode"] == 0 and not r["timedOut"], r
    pid = int(r["stdout"].split()[0])
    # the result does not wait for the grandchild to end by itself
    assert took < t(10), took
    rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "grandchild %d to die" % pid)
    no_children(srv)
    assert srv.zombies() == []


def test_grandchild_killed_while_the_server_keeps_serving(srv):
    w = srv.ws()
    pids = []
    for _ in range(5):
        r = w.exec(command="setsid sh -c 'sleep 60' >/dev/null 2>&1 & echo $!")
        pids.append(int(r["stdout"]))
    for pid in pids:
        rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "grandchild to die")
    no_children(srv)
    assert w.request({"type": "ping"})["type"] == "pong"


def test_disconnect_kills_running_commands(srv):
    w = srv.ws()
    pids = []
    for rid in ("a", "b"):
        w.send({"type": "exec", "id": rid, "command": "sleep 60 & sleep 60; wait",
                "stream": True})
        pids.append(w.recv()["pid"])
    kids = [c[0] for c in srv.children()]
    assert set(pids) <= set(kids)
    w.abort()  # no close frame: the TCP connection just goes
    for pid in pids:
        rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "command %d to die" % pid)
    no_children(srv)


def test_clean_close_kills_running_commands(srv):
    w = srv.ws()
    w.send({"type": "exec", "id": "x", "command": "sleep 60", "stream": True})
    pid = w.recv()["pid"]
    w.close()
    rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "command to die")
    no_children(srv)


def test_keep_on_disconnect_lets_commands_finish(rpc, tmp_path):
    s = rpc("--keep-on-disconnect", "--rate-limit", "0")
    w = s.ws()
    done = tmp_path / "done"
    w.send({"type": "exec", "id": "k", "stream": True,
            "command": "sleep 1; echo finished > '%s'" % done})
    pid = w.recv()["pid"]
    w.abort()
    other = s.ws()
    # still running after the disconnect was seen (connections back to 1)
    rpchelp.wait_until(lambda: other.request({"type": "info"})["server"]["connections"] == 1,
                       5, "the disconnect to be noticed")
    assert rpchelp.pid_alive(pid) and not done.exists()
    rpchelp.wait_until(done.exists, 10, "the kept command to finish")
    rpchelp.wait_until(lambda: done.read_text() == "finished\n", 5, "its output")
    rpchelp.wait_until(lambda: other.request({"type": "info"})["server"]["running"] == 0,
                       5, "the kept command to be reaped")
    no_children(s)


@pytest.mark.parametrize("stream", [True, False])
def test_server_stop_kills_running_commands(rpc, stream):
    # SIGTERM while a client is connected and its commands run: the drain
    # closes the client, the commands die, the server exits 0
    s = rpc("--rate-limit", "0", "--drain-timeout", "1")
    w = s.ws()
    w.send({"type": "exec", "id": 1, "command": "sleep 60", "stream": True})
    pid = w.recv()["pid"]
    w.send({"type": "exec", "id": 2, "command": "sleep 60 & sleep 60; wait", "stream": stream})
    rpchelp.wait_until(lambda: len(s.children()) >= 2, 5, "both commands to start")
    kids = [k[0] for k in s.children()]
    assert s.finish(close_clients=False) == []
    assert s.returncode == 0
    for p in kids + [pid]:
        rpchelp.wait_until(lambda: not rpchelp.pid_alive(p), 5, "command %d to die" % p)


# ---- caps

def test_per_connection_cap(rpc):
    s = rpc("--max-exec-per-conn", "2", "--rate-limit", "0")
    a = s.ws()
    for rid in (1, 2):
        a.send({"type": "exec", "id": rid, "command": "sleep 30", "stream": True})
        assert a.recv()["type"] == "start"
    r = a.exec(id=3, command="echo no")
    assert r == {"type": "error", "id": 3, "error": "Too many running commands"}, r
    # another connection has its own allowance
    b = s.ws()
    assert b.exec(command="echo yes")["stdout"] == "yes\n"
    # a finished command frees its slot
    a.request({"type": "kill", "id": 1})
    assert a.reply_to(1)["type"] == "result"
    assert a.exec(id=4, command="echo again")["stdout"] == "again\n"


def test_server_wide_cap(rpc):
    s = rpc("--max-exec", "3", "--max-exec-per-conn", "2", "--rate-limit", "0")
    a, b = s.ws(), s.ws()
    for c, rid in ((a, 1), (a, 2), (b, 3)):
        c.send({"type": "exec", "id": rid, "command": "sleep 30", "stream": True})
        assert c.recv()["type"] == "start"
    r = b.exec(id=4, command="echo no")
    assert r == {"type": "error", "id": 4, "error": "Too many running commands"}, r
    third = s.ws()
    assert third.exec(id=5, command="echo no")["error"] == "Too many running commands"
    assert third.request({"type": "info"})["server"]["running"] == 3
    a.request({"type": "kill", "id": 2, "signal": "KILL"})
    a.reply_to(2)
    assert b.exec(id=6, command="echo now")["stdout"] == "now\n"


# ---- kill and list

@pytest.mark.parametrize("signal,name,code", [
    ("TERM", "SIGTERM", 143), ("KILL", "SIGKILL", 137), ("SIGINT", "SIGINT", 130),
    (9, "SIGKILL", 137), (None, "SIGTERM", 143), ("HUP", "SIGHUP", 129),
])
def test_kill(ws, signal, name, code):
    ws.send({"type": "exec", "id": "k", "command": "sleep 60", "stream": True})
    assert ws.recv()["type"] == "start"
    msg = {"type": "kill", "id": "k"}
    if signal is not None:
        msg["signal"] = signal
    assert ws.request(msg) == {"type": "kill", "id": "k", "ok": True, "signal": name}
    r = ws.reply_to("k")
    assert r["type"] == "result" and r["signal"] == name and r["exitCode"] == code, r
    assert r["timedOut"] is False


def test_kill_reaches_the_whole_group(srv):
    w = srv.ws()
    w.send({"type": "exec", "id": "g", "stream": True,
            "command": "sleep 60 & echo $!; sleep 60 & echo $!; wait"})
    events = []
    while sum(m.get("data", "").count("\n") for m in events) < 2:
        events.append(w.recv())
    pids = [int(x) for x in "".join(m.get("data", "") for m in events).split()]
    w.request({"type": "kill", "id": "g", "signal": "TERM"})
    r = w.reply_to("g")
    assert r["type"] == "result"
    for pid in pids:
        rpchelp.wait_until(lambda: not rpchelp.pid_alive(pid), 5, "group member to die")
    no_children(srv)


def test_kill_a_command_that_handles_the_signal(ws):
    ws.send({"type": "exec", "id": "h", "stream": True,
             "command": "trap 'echo caught; exit 3' TERM; echo ready; "
                        "while :; do sleep 0.1; done"})
    ws.wait_for(lambda m: m.get("type") == "stdout" and "ready" in m["data"], keep=False)
    assert ws.request({"type": "kill", "id": "h"})["ok"] is True
    events, r = ws.drain_stream("h")
    assert "caught\n" in "".join(m["data"] for m, _ in events if m["type"] == "stdout")
    assert r["exitCode"] == 3 and r["signal"] is None


def test_list(srv):
    a, b = srv.ws(), srv.ws()
    assert a.request({"type": "list"})["commands"] == []
    a.send({"type": "exec", "id": "one", "command": "sleep 30", "stream": True})
    pid1 = a.recv()["pid"]
    a.send({"type": "exec", "id": 2, "argv": ["sleep", "31"]})
    first = {json.dumps(c["id"]): c["durationMs"]
             for c in a.request({"type": "list"})["commands"]}
    time.sleep(0.1)  # durationMs grows with the time running
    m = a.request({"type": "list", "id": "L"})
    assert m["type"] == "list" and m["id"] == "L"
    cmds = sorted(m["commands"], key=lambda c: str(c["id"]))
    assert [c["id"] for c in cmds] == [2, "one"]
    assert cmds[1]["pid"] == pid1 and cmds[1]["command"] == "sleep 30" and cmds[1]["stream"] is True
    assert cmds[0]["command"] == "sleep" and cmds[0]["stream"] is False and cmds[0]["pid"] > 0
    assert all(c["durationMs"] >= first[json.dumps(c["id"])] + 90 for c in cmds), (first, cmds)
    assert set(cmds[0]) == {"id", "pid", "command", "durationMs", "stream"}
    # another connection lists only its own
    assert b.request({"type": "list"})["commands"] == []
    for rid in ("one", 2):
        a.request({"type": "kill", "id": rid, "signal": "KILL"})
        a.reply_to(rid)
    assert a.request({"type": "list"})["commands"] == []


# ---- hygiene and the event loop

def test_commands_log_no_warnings(srv):
    # running commands is routine: it must not fill the log with warnings
    w = srv.ws()
    w.exec(command="echo a")
    w.send({"type": "exec", "id": "s", "command": "echo b", "stream": True})
    w.drain_stream("s")
    w.exec(argv=["cat"], stdin="x")
    warnings = [l for l in srv.log_text().splitlines()
                if " warn " in l and "--no-auth" not in l]
    assert warnings == [], "\n".join(warnings[:6])


@pytest.mark.heavy
@pytest.mark.ws_timeout(180)
def test_200_sequential_execs_leave_no_descriptor_or_zombie(srv):
    w = srv.ws()
    fds_before = rpchelp.fd_targets(srv.pid)
    for i in range(200):
        kind = i % 4
        if kind == 0:
            r = w.exec(command="echo %d" % i)
            assert r["stdout"] == "%d\n" % i
        elif kind == 1:
            r = w.exec(argv=["cat"], stdin="in%d" % i)
            assert r["stdout"] == "in%d" % i
        elif kind == 2:
            w.send({"type": "exec", "id": "s%d" % i, "command": "echo %d >&2" % i,
                    "stream": True})
            _, r = w.drain_stream("s%d" % i)
        else:
            r = w.exec(command="sleep 5 & exit 0")
        assert r["type"] == "result", r
    no_children(srv)
    # watches close asynchronously (on the loop's next turn): allow a moment
    try:
        rpchelp.wait_until(lambda: rpchelp.fd_targets(srv.pid) == fds_before, 3,
                           "descriptors to be closed")
    except AssertionError:
        pass
    fds_after = rpchelp.fd_targets(srv.pid)
    assert len(fds_after) == len(fds_before), "\n".join(
        ["before:"] + ["  %d %s" % f for f in fds_before] +
        ["after:"] + ["  %d %s" % f for f in fds_after])
    assert sorted(fds_after) == sorted(fds_before)
    assert srv.zombies() == []


def test_failed_spawns_leave_nothing_behind(srv):
    w = srv.ws()
    before = rpchelp.fd_targets(srv.pid)
    for _ in range(20):
        w.exec(argv=["/no/such/binary"])
        w.exec(command="true", cwd="/")
        w.exec(command="true", cwd="/nonexistent")
    no_children(srv)
    rpchelp.wait_until(lambda: rpchelp.fd_targets(srv.pid) == before, 3,
                       "descriptors back to %r (now %r)" % (before, rpchelp.fd_targets(srv.pid)))


@pytest.mark.heavy
def test_pings_answered_while_a_command_floods_output(rpc):
    srv = rpc("--rate-limit", "0", "--max-output", "1m")
    w = srv.ws()
    w.send({"type": "exec", "id": "flood", "command": "yes", "timeout_ms": 60000})
    other = srv.ws()
    worst = 0.0
    for i in range(20):
        t0 = time.monotonic()
        assert w.request({"type": "ping", "id": "p%d" % i}, timeout=10)["type"] == "pong"
        assert other.request({"type": "ping"}, timeout=10)["type"] == "pong"
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.05)
    assert worst < t(2), worst
    w.request({"type": "kill", "id": "flood", "signal": "KILL"})
    r = w.reply_to("flood", timeout=30)
    assert r["truncated"] is True and r["signal"] == "SIGKILL"


@pytest.mark.heavy
def test_pings_answered_while_a_streamed_flood_is_read(srv):
    w = srv.ws()
    w.send({"type": "exec", "id": "f", "command": "yes", "stream": True, "timeout_ms": 60000})
    pongs = 0
    for i in range(10):
        w.send({"type": "ping", "id": "p%d" % i})
        w.wait_for(lambda m: m.get("id") == "p%d" % i and m["type"] == "pong", keep=False,
                   timeout=10)
        pongs += 1
    assert pongs == 10
    w.send({"type": "kill", "id": "f", "signal": "KILL"})
    w.wait_for(lambda m: m.get("type") == "result", keep=False, timeout=30)


def test_run_as_drops_to_the_user(rpc):
    # required when the server runs as root (the issue's --run-as USER)
    if os.geteuid() != 0:
        pytest.skip("needs root")
    s = rpc("--run-as", "nobody", "--rate-limit", "0")
    w = s.ws()
    r = w.exec(command="id -u; id -g; id -G")
    assert r["stdout"].split() == ["65534", "65534", "65534"], r
