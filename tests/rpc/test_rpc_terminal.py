"""The terminal endpoint (the Sandbox SDK's terminal protocol on any path
ending /terminal), through Python's websockets: a shell on a pty, resize,
reattach by id with replay from a cursor, `truncated` when the ring lost
bytes, both generations' `exit`, the token rules, and what an attacker
sends: malformed and huge control messages, bad ids, cursors and sizes,
an input flood."""

import ctypes
import json
import os
import re

import pytest
import websockets

import rpchelp
from lib import paths
from termhelp import Conn, Term, run


def test_a_shell_on_a_pty_echoes_and_sizes(srv):
    async def go():
        term = await Term.open(srv, "cols=91&rows=17")
        assert term.ready["running"] is True and term.ready["id"].startswith("p")
        await term.type("echo h''i; stty size; tty\r")
        await term.expect(b"hi\r\n17 91\r\n/dev/pts/")
        await term.resize(120, 40)
        mark = len(term.screen)
        await term.type("stty size; echo $TERM\r")
        await term.expect(b"40 120\r\nxterm-256color\r\n", start=mark)
        await term.type("exit 7\r")
        ex = await term.control("exit")
        # 0.12 reads code/signal, 0.13 exit.{code,signal} and the cursor
        assert ex["code"] == 7 and ex["signal"] is None
        assert ex["exit"] == {"code": 7, "signal": None}
        assert int(ex["cursor"]) == term.cursor
        assert await term.until_closed() == 1000
    run(go())


def test_both_paths_serve_it_and_other_paths_do_not(srv):
    async def go():
        for path in ("/terminal", "/ws/terminal", "/a/b/terminal"):
            term = await Term.open(srv, path=path)
            await term.type("exit\r")
            await term.control("exit")
        c = await Conn.open(srv, "/terminals")
        r = await c.request({"type": "ping"})
        assert r["type"] == "pong"
        await c.close()
    run(go())


def test_reattach_by_id_replays_from_the_cursor_exactly(srv):
    async def go():
        a = await Term.open(srv)
        tid = a.ready["id"]
        await a.type("echo one-$((40+2))\r")
        await a.expect(b"one-42\r\n")
        cut = a.cursor
        seen = bytes(a.screen)
        a.abort()
        # the shell keeps running: output while nobody is attached is kept
        c = await Conn.open(srv)
        await c.request({"type": "stdin", "id": tid, "data": "echo two-$((40+3))\r"})
        b = await Term.open(srv, "id=%s&cursor=%d" % (tid, cut))
        assert b.ready["id"] == tid and int(b.ready["cursor"]) == cut
        await b.expect(b"two-43\r\n")
        assert b.controls == []  # no truncated
        # a third client replays everything from 0: what a saw, then what b saw
        d = await Term.open(srv, "id=%s&cursor=0" % tid)
        await d.expect(b"two-43\r\n")
        # each up to the output both waited for: the next prompt may have reached only one
        mark = b"two-43\r\n"

        def upto(x):
            return x[:x.index(mark) + len(mark)]
        assert upto(bytes(d.screen)) == seen + upto(bytes(b.screen))
        await c.request({"type": "kill", "id": tid, "signal": "KILL"})
        ex = await b.control("exit")
        assert ex["signal"] == "SIGKILL" and ex["exit"]["signal"] == "SIGKILL"
        await c.close()
    run(go())


def test_a_cursor_the_ring_no_longer_holds_gets_truncated(rpc):
    s = rpc("--rate-limit", "0", "--keep-buffer", "4k")

    async def go():
        a = await Term.open(s)
        tid = a.ready["id"]
        await a.type("head -c 20000 /dev/zero | tr '\\0' x; echo; echo do''ne; exit\r")
        ex = await a.control("exit")
        end = int(ex["cursor"])
        assert end == a.cursor and end > 20000
        # an exited terminal stays attachable (--kept-linger) with what its ring holds
        b = await Term.open(s, "id=%s&cursor=5" % tid)
        assert b.ready["running"] is False
        t = await b.control("truncated")
        assert (t["from"], t["to"], int(t["cursor"])) == (5, end - 4096, end - 4096)
        ex = await b.control("exit")
        assert len(b.screen) == 4096 and b.cursor == end == int(ex["cursor"])
        assert bytes(b.screen) == bytes(a.screen[-4096:])
    run(go())


def test_two_terminals_on_one_process_see_the_same_bytes(srv):
    async def go():
        a = await Term.open(srv)
        b = await Term.open(srv, "id=%s&cursor=0" % a.ready["id"])
        await a.type("echo from-a\r")
        await b.expect(b"from-a\r\n")
        await b.type("echo from-b\r")
        await a.expect(b"from-b\r\n")
        await b.expect(b"from-b\r\n")
        # both at the same cursor, with the same bytes
        while a.cursor != b.cursor:
            await (a if a.cursor < b.cursor else b)._next(5)
        assert a.screen == b.screen
        await a.type("exit\r")
        for t in (a, b):
            await t.control("exit")
    run(go())


def test_the_token_rules_are_ws_rpcs(rpc, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret-terminal\n")
    tok.chmod(0o600)
    s = rpc("--token-file", tok, "--rate-limit", "0")

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await Term.open(s)
        assert e.value.status_code == 401
        term = await Term.open(s, "token=s3cret-terminal")
        await term.type("exit\r")
        await term.control("exit")
    run(go())


@pytest.mark.parametrize("query,why", [
    ("id=p999", "no such terminal"),
    ("id=" + "x" * 100, "id"),
    ("id=%ZZ", "id"),
    ("id=p1%00", "id"),
    ("cursor=-1", "cursor"),
    ("cursor=abc", "cursor"),
    ("cursor=99999999999999999999999", "cursor"),
    ("cursor=", "cursor"),
    ("cols=0", "pty"),
    ("rows=65535", "pty"),
    ("cols=1001&rows=5", "pty"),
    ("cols=-80", "pty"),
])
def test_bad_queries_get_an_error_and_a_close(srv, query, why):
    async def go():
        ws = await websockets.connect("ws://127.0.0.1:%d/ws/terminal?%s" % (srv.port, query))
        m = json.loads(await ws.recv())
        assert m["type"] == "error" and why in m["message"], m
        with pytest.raises(websockets.ConnectionClosed) as e:
            await ws.recv()
        assert e.value.rcvd.code == 1008
        c = await Conn.open(srv)
        assert await c.processes() == {}  # nothing was started
        await c.close()
    run(go())


@pytest.mark.parametrize("control,why", [
    ("not json", "JSON"),
    ("[1,2]", "JSON"),
    ('{"type":7}', "JSON"),
    ('{"cols":80}', "JSON"),
    ('{"type":"resize","cols":0,"rows":24}', "resize"),
    ('{"type":"resize","cols":65535,"rows":65535}', "resize"),
    ('{"type":"resize","cols":"80","rows":24}', "resize"),
    ('{"type":"resize"}', "resize"),
    ('{"type":"launch-missiles"}', "unknown"),
    ('{"type":"resize","cols":80,"rows":24' + ' ' * 5000 + '}', "4096"),
])
def test_bad_control_messages_get_an_error_and_the_terminal_goes_on(srv, control, why):
    async def go():
        term = await Term.open(srv, "cols=33&rows=11")
        await term.send_control(control)
        err = await term.control("error")
        assert why in err["message"], err
        await term.type("stty size\r")
        await term.expect(b"11 33\r\n")
        await term.type("exit\r")
        await term.control("exit")
    run(go())


def test_an_input_flood_is_bounded_and_reported(srv):
    async def go():
        term = await Term.open(srv)
        # the shell runs a program that reads nothing: input piles up in the pty, then is refused
        await term.type("sleep 30\r")
        chunk = b"y" * 65536
        for _ in range(40):  # 2.5 MiB
            await term.type(chunk)
        err = await term.control("error", timeout=20)
        assert "input dropped" in err["message"]
        c = await Conn.open(srv)
        procs = await c.processes()
        assert procs[term.ready["id"]]["running"] is True
        await c.request({"type": "kill", "id": term.ready["id"], "signal": "KILL"})
        await term.control("exit")
        await c.close()
    run(go())


def test_a_huge_binary_frame_is_refused_by_the_message_limit(rpc):
    s = rpc("--rate-limit", "0", "--max-message", "64k")

    async def go():
        term = await Term.open(s)
        await term.type(b"z" * (1 << 20))
        code = await term.until_closed()
        assert code == 1009
        c = await Conn.open(s)
        assert (await c.processes())[term.ready["id"]]["running"] is True
        await c.close()
    run(go())


def test_the_terminal_limit_is_max_kept(rpc):
    s = rpc("--rate-limit", "0", "--max-kept", "1")

    async def go():
        a = await Term.open(s)
        ws = await websockets.connect("ws://127.0.0.1:%d/terminal" % s.port)
        m = json.loads(await ws.recv())
        assert m["type"] == "error" and "--max-kept" in m["message"]
        await a.type("exit\r")
        await a.control("exit")
    run(go())


def test_a_named_session_is_started_once_then_attached(srv):
    # the SDK's addons reconnect with the session (terminal) id the page chose
    async def go():
        a = await Term.open(srv, "session=main-1&cols=50&rows=10")
        assert a.ready["session"] == "main-1"
        tid = a.ready["id"]
        await a.type("echo fi''rst\r")
        await a.expect(b"first\r\n")
        b = await Term.open(srv, "session=main-1&cursor=0")
        assert b.ready["id"] == tid
        await b.expect(b"first\r\n")
        other = await Term.open(srv, "session=main-2")
        assert other.ready["id"] != tid
        c = await Conn.open(srv)
        procs = await c.processes()
        assert procs[tid]["name"] == "main-1" and procs[tid]["attached"] == 2
        # attach, stdin and kill take the name too
        r = await c.request({"type": "attach", "id": "main-1", "since": 10 ** 9})
        assert r["type"] == "attached" and r["process"] == tid
        await c.request({"type": "kill", "id": "main-2", "signal": "KILL"})
        await other.control("exit")
        await a.type("exit\r")
        await a.control("exit")
        await b.control("exit")
        await c.close()
    run(go())


@pytest.mark.parametrize("query", [
    "session=p12", "session=", "session=a%20b", "session=" + "x" * 24, "session=a%00",
    "session=%C3%A9", "session=a/b", "id=p1&session=x",
])
def test_bad_session_names_are_refused(srv, query):
    async def go():
        ws = await websockets.connect("ws://127.0.0.1:%d/terminal?%s" % (srv.port, query))
        m = json.loads(await ws.recv())
        assert m["type"] == "error" and ("session" in m["message"] or "id" in m["message"]), m
        with pytest.raises(websockets.ConnectionClosed):
            await ws.recv()
        c = await Conn.open(srv)
        assert await c.processes() == {}
        await c.close()
    run(go())


def test_terminal_shell_sets_what_a_new_terminal_runs(rpc):
    s = rpc("--rate-limit", "0", "--terminal-shell", "/bin/sh")

    async def go():
        term = await Term.open(s)
        await term.type('echo "zero=$0"\r')
        await term.expect(b"zero=-sh\r\n")  # login style: argv[0] is "-sh"
        await term.type("exit\r")
        await term.control("exit")
    run(go())


@pytest.mark.parametrize("shell", ["sh", "", "bin/bash"])
def test_terminal_shell_must_be_an_absolute_path(shell):
    import rpchelp
    rc, _, err, _ = rpchelp.run_once(["--no-auth", "--terminal-shell", shell])
    assert rc == rpchelp.EXIT_USAGE and "terminal-shell" in err, (rc, err)


def plant_login_files_in_a_private_tmp(binary):
    """preexec for the server: a mount namespace of its own with a fresh /tmp
    (the host's is untouched) in which another user, nobody, has planted the
    files a login bash reads from its HOME. A checkout that itself lives
    under /tmp (a CI clone) is bound back into the fresh /tmp, or the
    server's own binary would be hidden."""
    rel = os.path.relpath(os.path.realpath(binary), "/tmp")
    keep = None if rel.startswith("..") else rel.split(os.sep)[0]

    def preexec():
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newns, ms_rec, ms_private, ms_bind = 0x20000, 0x4000, 0x40000, 0x1000
        if (libc.unshare(clone_newns) != 0
                or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0):
            os._exit(99)
        # opened in the new namespace, before /tmp is covered: the way back to it
        old = os.open("/tmp", os.O_PATH | os.O_DIRECTORY) if keep else -1
        if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"mode=1777") != 0:
            os._exit(99)
        if keep:
            os.mkdir("/tmp/" + keep)
            src = ("/proc/self/fd/%d/%s" % (old, keep)).encode()
            if libc.mount(src, ("/tmp/" + keep).encode(), None, ms_bind | ms_rec, None) != 0:
                os._exit(98)
            os.close(old)
        for name in (".bash_profile", ".bash_login", ".profile", ".bashrc"):
            path = "/tmp/" + name
            with open(path, "w") as f:
                f.write("echo PLANTED-$((6*7))\n")
            os.chown(path, 65534, 65534)
    return preexec


@pytest.mark.skipif(os.geteuid() != 0, reason="plants files as another user: needs root")
def test_home_is_the_commands_own_so_files_planted_in_tmp_are_not_sourced(server, command_user):
    s = server(rpchelp.NAME, "--no-auth", "--rate-limit", "0", cls=rpchelp.RpcServer,
               preexec=plant_login_files_in_a_private_tmp(paths.require_binary(rpchelp.NAME)))

    async def go():
        term = await Term.open(s)
        await term.type('echo "H=$HOME"; stat -c "M=%a:%U" "$HOME"; echo "I=$(id -un)-END"\r')
        await term.expect(b"-END\r\n")
        screen = bytes(term.screen)
        assert b"PLANTED-42" not in screen
        assert re.search(rb"H=/tmp/ws-rpc-home\.[A-Za-z0-9]{6}\r\nM=700:%s\r\nI=%s-END"
                         % (command_user.encode(), command_user.encode()), screen), screen
        # commands that are not terminals get the same HOME
        c = await Conn.open(s)
        r = await c.request({"type": "exec", "command": 'echo "$HOME"'})
        assert re.fullmatch(r"/tmp/ws-rpc-home\.[A-Za-z0-9]{6}\n", r["stdout"]), r
        await term.type("exit\r")
        await term.until_closed()
        await c.close()
    run(go())


def test_the_commands_home_is_removed_when_the_server_stops(srv):
    async def go():
        term = await Term.open(srv)
        # what a user leaves there, a link out of it included (not followed)
        await term.type('mkdir -p ~/a/b && touch ~/a/b/f ~/keep && ln -s /etc ~/a/out && '
                        'echo "H=$HOME-END"\r')
        await term.expect(b"-END\r\n")
        home = re.search(rb"H=(/tmp/ws-rpc-home\.[A-Za-z0-9]{6})-END", term.screen).group(1)
        await term.type("exit\r")
        await term.until_closed()
        return home.decode()
    home = run(go())
    assert os.path.isdir(home + "/a/b")
    assert srv.stop() == 0
    assert not os.path.exists(home) and os.path.isdir("/etc")


def test_the_endpoint_refuses_a_kept_process_not_on_a_pty(srv):
    # a pipe process's stderr has offsets of its own: its bytes are not one terminal stream
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(command="printf OUT; printf ERR >&2; exec sleep 30")
        ws = await websockets.connect("ws://127.0.0.1:%d/terminal?id=%s&cursor=0"
                                      % (srv.port, pid))
        m = json.loads(await ws.recv())
        assert m["type"] == "error" and m["message"].startswith("not a terminal"), m
        with pytest.raises(websockets.ConnectionClosed) as e:
            await ws.recv()
        assert e.value.rcvd.code == 1008
        # still there for ws-rpc's attach, stdout and stderr apart
        r = await c.request({"type": "kill", "id": pid, "signal": "KILL"})
        assert r.get("ok") is True, r
        await c.close()
    run(go())


def test_detach_takes_the_session_name_as_attach_does(srv):
    async def go():
        term = await Term.open(srv, "session=work")
        tid = term.ready["id"]
        c = await Conn.open(srv)
        r = await c.request({"type": "attach", "id": "work", "since": 10 ** 9})
        assert r["type"] == "attached" and r["process"] == tid
        r = await c.request({"type": "detach", "id": "work"})
        assert r["type"] == "detached" and r["ok"] is True, r
        assert (await c.processes())[tid]["attached"] == 1
        r = await c.request({"type": "detach", "id": "work"})
        assert r["type"] == "error", r  # no longer watched
        r = await c.rpc("attach", {"id": "work", "since": 10 ** 9})
        assert r["result"]["process"] == tid
        r = await c.rpc("detach", {"id": "work"})
        assert r["result"] == {"ok": True}, r
        await term.type("exit\r")
        await term.control("exit")
        await c.close()
    run(go())


def test_an_exited_named_session_is_replayed_with_a_cursor_and_restarted_without(srv):
    async def go():
        a = await Term.open(srv, "session=dev")
        old = a.ready["id"]
        await a.type("echo o''ld; exit 3\r")
        assert (await a.control("exit"))["code"] == 3
        await a.until_closed()
        # a reconnect (with its cursor) gets the rest and the exit
        b = await Term.open(srv, "session=dev&cursor=0")
        assert b.ready["id"] == old and b.ready["running"] is False
        await b.expect(b"old\r\n")
        assert (await b.control("exit"))["code"] == 3
        await b.until_closed()
        # a fresh open gets a new shell under the name; the old record is gone
        d = await Term.open(srv, "session=dev")
        assert d.ready["running"] is True and d.ready["id"] != old
        assert d.ready["session"] == "dev"
        await d.type("echo n''ew\r")
        await d.expect(b"new\r\n")
        c = await Conn.open(srv)
        procs = await c.processes()
        assert old not in procs and procs[d.ready["id"]]["name"] == "dev"
        await d.type("exit\r")
        await d.control("exit")
        await c.close()
    run(go())


def test_max_exec_counts_kept_processes_and_bounds_terminals_and_keep(rpc):
    """--max-exec bounds every running command: a kept one counts, and at the
    bound a terminal is refused (1008) and an exec with keep gets the error."""
    s = rpc("--rate-limit", "0", "--max-exec", "1")

    async def go():
        c = await Conn.open(s)
        pid = await c.start(command="cat", stdinOpen=True)
        r = await c.request({"type": "exec", "keep": True, "command": "cat"})
        assert r["type"] == "error" and r["error"].startswith("Too many running commands"), r
        ws = await websockets.connect("ws://127.0.0.1:%d/ws/terminal" % s.port)
        m = json.loads(await ws.recv())
        assert m["type"] == "error" and "too many running commands" in m["message"], m
        with pytest.raises(websockets.ConnectionClosed) as e:
            await ws.recv()
        assert e.value.rcvd.code == 1008
        assert list(await c.processes()) == [pid]  # nothing else was started
        # below the bound again: a terminal starts
        await c.request({"type": "stdin", "id": pid, "data": "", "eof": True})
        await c.collect(pid)
        term = await Term.open(s)
        assert term.ready["running"] is True
        await term.type("exit\r")
        await term.control("exit")
        await c.close()
    run(go())
