"""The listening addresses, the accept path and the process itself (issues 9, 15).

Each test names the weakness it proves fixed: listening exactly where told,
per-address counting from accept, a request head split over reads, the token
redacted and accepted under an encoded name, Host required, the process
non-dumpable with its token wiped from the environment.
"""

import os
import pathlib
import socket
import subprocess
import tempfile
import time

import pytest

import wsraw
from lib.proc import free_port, t

ALL = ("ws-echo", "ws-broadcast", "ws-rpc")


def listening(pid, port):
    """The (family, address) pairs PID listens on at PORT, read from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for fam, path in ((4, "/proc/net/tcp"), (6, "/proc/net/tcp6")):
        with open(path) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                hexaddr, hexport = local.split(":")
                if state != "0A" or int(hexport, 16) != port or inode not in inodes:
                    continue
                raw = bytes.fromhex(hexaddr)
                if fam == 4:
                    addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
                else:
                    # /proc prints each 32-bit word in host (little-endian) order
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    addr = socket.inet_ntop(socket.AF_INET6, words)
                found.add((fam, addr))
    return found


def extra_args(name, tmp_path):
    if name == "ws-rpc":
        return ["--no-auth"]
    if name == "ws-broadcast":
        return ["--db", str(tmp_path / "b.db")]
    return []


def refused(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(t(2))
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
    return False


# =============================================================================
# listening addresses (issue 15.1)

@pytest.mark.parametrize("name", ALL)
def test_ipv4_literal_binds_that_address_only(server, name, tmp_path):
    srv = server(name, *extra_args(name, tmp_path))
    assert listening(srv.pid, srv.port) == {(4, "127.0.0.1")}
    # another loopback address of the machine is not served
    assert refused("127.0.0.2", srv.port)
    assert refused("::1", srv.port)
    assert "host=127.0.0.1 port=%d" % srv.port in srv.log_text()


@pytest.mark.parametrize("name", ALL)
def test_ipv6_loopback_binds_ipv6_loopback_only(server, name, tmp_path):
    srv = server(name, *extra_args(name, tmp_path), host="::1")
    assert listening(srv.pid, srv.port) == {(6, "::1")}
    assert refused("127.0.0.1", srv.port)
    assert wsraw.http(srv.port, "/healthz", host="::1").status == 200


def test_address_list_one_socket_each(server):
    port = free_port("127.0.0.1")
    srv = server("ws-echo", host="127.0.0.1,::1", port=port)
    assert listening(srv.pid, port) == {(4, "127.0.0.1"), (6, "::1")}
    for h in ("127.0.0.1", "::1"):
        assert wsraw.http(port, "/healthz", host=h).status == 200
    assert refused("127.0.0.2", port)


def test_name_binds_each_resolved_address(server):
    port = free_port("127.0.0.1")
    srv = server("ws-echo", host="localhost", port=port)
    want = set()
    for fam, _, _, _, sa in socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM,
                                               flags=socket.AI_PASSIVE):
        want.add((4 if fam == socket.AF_INET else 6, sa[0]))
    assert listening(srv.pid, port) == want
    assert refused("127.0.0.2", port)


def test_ipv4_any_is_ipv4_only(server):
    port = free_port("127.0.0.1")
    srv = server("ws-echo", host="0.0.0.0", port=port)
    assert listening(srv.pid, port) == {(4, "0.0.0.0")}


def test_port_zero_with_two_addresses_shares_one_port(server, tmp_path):
    log = tmp_path / "p0.log"
    r, w = os.pipe()
    with open(log, "wb") as f:
        p = subprocess.Popen([os.path.join(os.environ.get("WS_BIN_DIR", "build"),
                                           "servers/echo/ws-echo"),
                              "--host", "127.0.0.1,::1", "--port", "0", "--notify-fd", str(w)],
                             stdout=f, stderr=f, pass_fds=(w,))
    os.close(w)
    try:
        assert os.read(r, 8) == b"\n"
        text = log.read_text()
        ports = {int(x.split("port=")[1].split()[0]) for x in text.splitlines()
                 if " listen " in x or x.startswith("listen") or "listen server=" in x}
        assert len(ports) == 1, text
        port = ports.pop()
        assert listening(p.pid, port) == {(4, "127.0.0.1"), (6, "::1")}
    finally:
        os.close(r)
        p.terminate()
        assert p.wait(timeout=t(10)) == 0


def test_unresolvable_host_exits_111(server):
    srv = server("ws-echo", host="no-such-host.invalid", port=free_port(), expect_exit=None,
                 notify=False)
    assert srv.wait(timeout=t(10)) == 111
    assert "listen host=no-such-host.invalid failed=yes" in srv.log_text()


# =============================================================================
# per-address counting from accept, split heads (issue 9.8, 9.9)

def test_half_open_sockets_count_against_per_ip_limit(server):
    srv = server("ws-echo", "--max-connections-per-ip", "3")
    idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
    try:
        # the three silent sockets hold 127.0.0.1's slots: a fourth is refused
        r = wsraw.upgrade_status(srv.port)
        assert r.status == 503, r
        assert b"too many connections from this address" in r.body
        # another address is another client
        c = wsraw.RawClient(srv.port, source="127.0.0.2")
        assert c.handshake().status == 101
        c.close()
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + t(5)
    while True:
        status = wsraw.upgrade_status(srv.port).status
        if status == 101 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 101


def test_silent_socket_closed_after_handshake_timeout(server):
    srv = server("ws-echo", "--handshake-timeout", "1")
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.settimeout(t(5))
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert time.monotonic() - t0 < t(4)
    s.close()


def test_head_split_over_two_reads_keeps_pipelined_frames(server):
    srv = server("ws-echo")
    c = wsraw.RawClient(srv.port)
    req = wsraw.http_request("/")
    msgs = [("m%03d-" % i).encode() + b"x" * 300 for i in range(60)]
    frames = b"".join(wsraw.build_frame(wsraw.OP_TEXT, m) for m in msgs)
    assert len(frames) > 16384
    c.send(req[:20])
    time.sleep(0.2)  # the server must see the head in two reads, not one
    c.send(req[20:] + frames)
    resp = c.read_http_response()
    assert resp.status == 101
    for m in msgs:
        assert c.recv_message() == (wsraw.OP_TEXT, m)


# =============================================================================
# token under an encoded name, Host, origins as a list (issue 15.6, 15.9)

def test_encoded_token_name_is_the_token_and_redacted(server, tmp_path):
    tok = tmp_path / "tok"
    tok.write_text("s3cr3t-value\n")
    srv = server("ws-echo", "--token-file", str(tok))
    c = wsraw.RawClient(srv.port)
    assert c.handshake("/?tok%65n=s3cr3t-value&a=1").status == 101
    c.close()
    c = wsraw.RawClient(srv.port)
    assert c.handshake("/?t%6Fken=s3cr3t-value").status == 101
    c.close()
    assert wsraw.upgrade_status(srv.port, "/?tok%65n=wrong").status == 401
    deadline = time.monotonic() + t(5)
    while srv.log_text().count(" open ") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    log = srv.log_text()
    assert "s3cr3t" not in log, log
    assert "tok%65n=***" in log


def test_plain_request_without_host_is_400(server):
    srv = server("ws-echo")
    r = wsraw.http(srv.port, "/healthz", omit=("host",))
    assert r.status == 400, r
    assert b"missing Host" in r.body
    r = wsraw.upgrade_status(srv.port, omit=("host",))
    assert r.status == 400, r


def test_allowed_origin_flag_takes_a_list(server):
    srv = server("ws-echo", "--allowed-origin", "https://a.example,https://b.example")
    for o in ("https://a.example", "https://b.example"):
        r = wsraw.upgrade_status(srv.port, extra=[("Origin", o)])
        assert r.status == 101, (o, r)
    r = wsraw.upgrade_status(srv.port, extra=[("Origin", "https://a.example,https://b.example")])
    assert r.status == 403


# =============================================================================
# the process: non-dumpable, token wiped (issue 9.3)

@pytest.mark.parametrize("name", ALL)
def test_token_wiped_from_environment(server, name, tmp_path):
    args = extra_args(name, tmp_path)
    if name == "ws-rpc":
        args = []
    srv = server(name, *args, env={"WS_TOKEN": "env-secret-123"})
    with open("/proc/%d/environ" % srv.pid, "rb") as f:
        env = f.read()
    assert b"env-secret-123" not in env
    assert b"WS_TOKEN" not in env
    # the wiped token still works
    assert wsraw.upgrade_status(srv.port, "/?token=env-secret-123").status == 101


def _as_nobody():
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)


@pytest.mark.parametrize("name", ("ws-echo", "ws-broadcast"))
def test_server_is_not_dumpable(server, name):
    if os.geteuid() != 0:
        pytest.skip("needs root to start the server under another uid")
    # a directory nobody can reach (tmp_path's parents are root's, 0700)
    d = pathlib.Path(tempfile.mkdtemp(prefix="ws-dump-"))
    os.chown(d, 65534, 65534)
    args = ["--db", str(d / "b.db")] if name == "ws-broadcast" else []
    srv = server(name, *args, env={"WS_TOKEN": "x"}, preexec=_as_nobody)
    st = os.stat("/proc/%d/environ" % srv.pid)
    # a dumpable process's /proc files belong to its uid; ours to root
    assert (st.st_uid, st.st_gid) == (0, 0)
    probe = ("import sys\n"
             "for f in ('environ', 'mem', 'cmdline'):\n"
             "    try:\n"
             "        open('/proc/%d/' + f, 'rb').read(1)\n"
             "        print('read', f)\n"
             "    except PermissionError:\n"
             "        pass\n" % srv.pid)
    out = subprocess.run(["/usr/bin/python3", "-c", probe], preexec_fn=_as_nobody,
                         capture_output=True, text=True, timeout=t(10))
    assert "read environ" not in out.stdout and "read mem" not in out.stdout, out


def test_long_query_cut_visibly_token_never_logged(server, tmp_path):
    tok = tmp_path / "tok"
    tok.write_text("s3cr3t-value\n")
    srv = server("ws-echo", "--token-file", str(tok))
    q = "&".join("k%03d=%s" % (i, "v" * 20) for i in range(40)) + "&token=s3cr3t-value"
    c = wsraw.RawClient(srv.port)
    assert c.handshake("/?" + q).status == 101
    c.close()
    deadline = time.monotonic() + t(5)
    while " open " not in srv.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [x for x in srv.log_text().splitlines() if " open " in x][0]
    assert "s3cr3t" not in line
    assert "..." in line, line
    assert "&..." not in line


# =============================================================================
# all slow readers together (issue 9: one client, or many, must not balloon memory)

@pytest.mark.ws_timeout(90)
def test_total_queued_bound_closes_slow_readers(server):
    # each reader's own queue (1m) is never reached: echo stops reading a peer
    # at 256k queued, so a 1008 here can only come from the total (512k)
    srv = server("ws-echo", "--send-queue", "1m", "--max-message", "64k",
                 "--max-queued", "512k")
    frame = wsraw.build_frame(wsraw.OP_BINARY, os.urandom(64 * 1024))
    readers = []
    for _ in range(6):
        c = wsraw.RawClient(srv.port, rcvbuf=4096, timeout=5)
        assert c.handshake("/").status == 101
        readers.append(c)
    rss0 = srv.rss_kib()
    for c in readers:
        c.sock.settimeout(t(1))
        for _ in range(64):  # 4 MiB each (past the kernel buffers), never reading
            try:
                c.sock.sendall(frame)
            except (socket.timeout, OSError):
                break
    codes = []
    for c in readers:
        try:
            f, _ = c.wait_close(timeout=2, allow=(wsraw.OP_BINARY, wsraw.OP_CONT))
            codes.append(f.close_code)
        except Exception:  # still open: its share fit
            codes.append(None)
    assert 1008 in codes, codes
    growth = srv.rss_kib() - rss0
    if not os.environ.get("WS_VALGRIND"):
        assert growth < 16 * 1024, "RSS grew %d KiB with --max-queued 512k" % growth
    # a new client is served as usual
    fresh = wsraw.connect(srv.port)
    fresh.echo(wsraw.OP_TEXT, b"still here")
    m = wsraw.http(srv.port, "/metrics")
    assert b"slow" in m.body
    assert srv.alive()
