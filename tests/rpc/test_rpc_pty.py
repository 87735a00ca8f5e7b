"""exec on a pseudo-terminal (`"pty": {"cols", "rows"}`), through Python's
websockets: the size the program sees, its session and controlling
terminal, TERM, keystrokes in, resize as SIGWINCH, ^D as end of input, and
sizes and requests that must be refused."""

import base64
import os

import pytest

from lib.proc import wait_until
from termhelp import Conn, run

PY = "/usr/bin/python3"

SESSION = ("import os\n"
           "print(os.getsid(0) == os.getpid(), os.tcgetpgrp(0) == os.getpgrp(),\n"
           "      os.isatty(0), os.isatty(1), os.isatty(2),\n"
           "      os.ttyname(0) == os.ttyname(1) == os.ttyname(2))\n"
           "os.close(os.open('/dev/tty', os.O_RDWR))\n"
           "print('ctty ok')\n")

# os.write, not print: a handler that prints while print runs raises (reentrant call)
WINCH = ("import os, signal, sys\n"
         "def on(*a):\n"
         "    c, r = os.get_terminal_size(0)\n"
         "    os.write(1, b'winch %dx%d\\n' % (c, r))\n"
         "signal.signal(signal.SIGWINCH, on)\n"
         "os.write(1, b'ready\\n')\n"
         "while True:\n"
         "    signal.pause()\n")


async def output_of(c, **params):
    pid = await c.start(encoding="base64", **params)
    out, err, lost, _, ex = await c.collect(pid)
    return out, err, lost, ex


def test_pty_size_tty_and_term(srv):
    async def go():
        c = await Conn.open(srv)
        out, err, lost, ex = await output_of(
            c, command='stty size; tty; echo "TERM=$TERM"', pty={"cols": 100, "rows": 30})
        lines = out.decode().split("\r\n")
        assert lines[0] == "30 100"
        assert lines[1].startswith("/dev/pts/")
        assert lines[2] == "TERM=xterm-256color"
        assert err == b"" and lost == [] and ex["exitCode"] == 0
        await c.close()
    run(go())


def test_pty_default_size_is_80x24(srv):
    async def go():
        c = await Conn.open(srv)
        out, _, _, _ = await output_of(c, command="stty size", pty=True)
        assert out == b"24 80\r\n"
        await c.close()
    run(go())


def test_pty_session_leader_with_the_pty_as_controlling_terminal(srv):
    async def go():
        c = await Conn.open(srv)
        out, _, _, ex = await output_of(c, argv=[PY, "-c", SESSION], pty={"cols": 80, "rows": 24})
        assert out == b"True True True True True True\r\nctty ok\r\n", out
        assert ex["exitCode"] == 0
        await c.close()
    run(go())


def test_without_pty_the_command_has_no_terminal(srv):
    async def go():
        c = await Conn.open(srv)
        r = await c.request({"type": "exec", "command": 'tty; echo "TERM=$TERM"'})
        assert r["stdout"] == "not a tty\nTERM=dumb\n"
        await c.close()
    run(go())


def test_resize_sends_sigwinch_with_the_new_size(srv):
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(argv=[PY, "-c", WINCH], pty={"cols": 80, "rows": 24},
                            encoding="base64")
        await c.collect(pid, until_exit=False, stop=lambda o: b"ready" in o["stdout"],
                        timeout=10)
        r = await c.request({"type": "resize", "id": pid, "cols": 132, "rows": 43})
        assert r["type"] == "resize" and r["ok"] is True
        await c.collect(pid, until_exit=False, stop=lambda o: b"winch 132x43" in o["stdout"])
        r = await c.rpc("resize", {"id": pid, "cols": 20, "rows": 5})
        assert r.get("result", {}).get("ok") is True, r
        await c.collect(pid, until_exit=False, stop=lambda o: b"winch 20x5" in o["stdout"])
        await c.request({"type": "kill", "id": pid, "signal": "KILL"})
        _, _, _, _, ex = await c.collect(pid)
        assert ex["signal"] == "SIGKILL"
        await c.close()
    run(go())


def test_stdin_is_keystrokes_and_eof_is_ctrl_d(srv):
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(command='read line; echo "got:$line"; cat', pty=True,
                            encoding="base64")
        r = await c.request({"type": "stdin", "id": pid, "data": "hello\r"})
        assert r["ok"] is True
        await c.collect(pid, until_exit=False, stop=lambda o: b"got:hello\r\n" in o["stdout"])
        # cat ends at the terminal's end-of-file character
        r = await c.request({"type": "stdin", "id": pid, "eof": True})
        assert r["ok"] is True
        _, _, _, _, ex = await c.collect(pid)
        assert ex["exitCode"] == 0 and ex["signal"] is None
        await c.close()
    run(go())


@pytest.mark.parametrize("pty", [
    {"cols": 0, "rows": 24}, {"cols": 80, "rows": 0}, {"cols": 65535, "rows": 65535},
    {"cols": 1001, "rows": 24}, {"cols": -1, "rows": 24}, {"cols": "80", "rows": 24},
    {"cols": 80}, {"cols": 1.5, "rows": 24}, "yes", 1, [80, 24],
])
def test_bad_pty_sizes_are_refused(srv, pty):
    async def go():
        c = await Conn.open(srv)
        r = await c.request({"type": "exec", "command": "true", "pty": pty})
        assert r["type"] == "error" and "pty" in r["error"], r
        assert (await c.processes()) == {}
        await c.close()
    run(go())


@pytest.mark.parametrize("size", [(0, 24), (80, 0), (65535, 65535), (1001, 1), (-5, 10),
                                  ("80", 24), (None, None)])
def test_bad_resizes_are_refused_and_the_terminal_keeps_its_size(srv, size):
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(command="read x; stty size", pty={"cols": 77, "rows": 11},
                            encoding="base64")
        msg = {"type": "resize", "id": pid}
        if size[0] is not None:
            msg.update(cols=size[0], rows=size[1])
        r = await c.request(msg)
        assert r["type"] == "error" and "resize" in r["error"], r
        await c.request({"type": "stdin", "id": pid, "data": "\r"})
        out, _, _, _, _ = await c.collect(pid)
        assert out.endswith(b"11 77\r\n")
        await c.close()
    run(go())


def test_resize_of_a_command_without_pty_or_unknown_is_an_error(srv):
    async def go():
        c = await Conn.open(srv)
        pid = await c.start(command="sleep 5")
        r = await c.request({"type": "resize", "id": pid, "cols": 80, "rows": 24})
        assert r["type"] == "error" and "not a terminal" in r["error"]
        r = await c.request({"type": "resize", "id": "p999", "cols": 80, "rows": 24})
        assert r["type"] == "error" and "No such command" in r["error"]
        await c.request({"type": "kill", "id": pid, "signal": "KILL"})
        await c.close()
    run(go())


def test_jsonrpc_pty_exec_streams_process_notifications(srv):
    async def go():
        c = await Conn.open(srv)
        r = await c.rpc("exec", {"command": "stty size", "pty": {"cols": 50, "rows": 10},
                                 "encoding": "base64"})
        pid = r["result"]["process"]
        assert r["result"]["pty"] is True
        got = b""
        while True:
            m = await c.wait_for(lambda m: m.get("method", "").startswith("process."))
            assert m["params"]["id"] == pid
            if m["method"] == "process.exit":
                break
            got += base64.b64decode(m["params"]["data"])
        assert got == b"10 50\r\n" and m["params"]["exitCode"] == 0
        await c.close()
    run(go())


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces for --isolate as root")
def test_a_pty_under_isolation_keeps_its_terminal_and_size(rpc):
    # with a pid namespace the sandbox forks once more: the command is PID 1
    # of its own tree, still on the pty, and still gets the resize
    s = rpc("--rate-limit", "0", "--isolate", "net,pid,mount")

    async def go():
        c = await Conn.open(s)
        pid = await c.start(command="stty size; tty; echo pid=$$; read x; stty size",
                            pty={"cols": 70, "rows": 21})
        first, _, _, _, _ = await c.collect(pid, until_exit=False,
                                            stop=lambda o: b"pid=" in o["stdout"])
        await c.request({"type": "resize", "id": pid, "cols": 99, "rows": 33})
        await c.request({"type": "stdin", "id": pid, "data": "\r"})
        rest, _, _, _, ex = await c.collect(pid)
        assert ex["exitCode"] == 0
        await c.close()
        return first + rest
    out = run(go())
    assert b"pid=1\r\n" in out and out.endswith(b"33 99\r\n"), out
    assert b"/dev/pts/" in out


# closes 0, 1 and 2 (no slave of the pty open in it), says so with a file, waits
# on a fifo, then opens /dev/tty again and writes 200 KB: the pty must still be there
REOPEN = ("import os, sys\n"
          "mark, fifo = sys.argv[1], sys.argv[2]\n"
          "os.write(1, b'closing\\n')\n"
          "for fd in (0, 1, 2):\n"
          "    os.close(fd)\n"
          "os.close(os.open(mark, os.O_CREAT | os.O_WRONLY, 0o644))\n"
          "with open(fifo) as f:\n"
          "    f.read()\n"
          "fd = os.open('/dev/tty', os.O_WRONLY)\n"
          "data = b'y' * 200000\n"
          "while data:\n"
          "    data = data[os.write(fd, data):]\n"
          "os._exit(7)\n")


def test_a_program_that_closes_its_terminal_and_reopens_it_keeps_it(srv, tmp_path):
    mark, fifo = str(tmp_path / "closed"), str(tmp_path / "go")
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)

    async def go():
        c = await Conn.open(srv)
        pid = await c.start(argv=[PY, "-c", REOPEN, mark, fifo], pty=True, timeout_ms=20000)
        wait_until(lambda: os.path.exists(mark), what="the program closed 0, 1 and 2")
        # no slave is open in the program now: the terminal is still there
        r = await c.request({"type": "resize", "id": pid, "cols": 90, "rows": 20})
        assert r["type"] == "resize" and r["ok"] is True, r
        with open(fifo, "w") as f:
            f.write("go")
        out, _, lost, _, ex = await c.collect(pid)
        assert out.startswith(b"closing\r\n") and out.count(b"y") == 200000, len(out)
        assert ex["exitCode"] == 7 and ex["timedOut"] is False and lost == []
        await c.close()
    run(go())
