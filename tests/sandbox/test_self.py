"""Servers confine themselves once listening: ws-echo's allowlist kills it
on execve (the debug hook), --no-self-sandbox turns the filter off, and the
RPC kind keeps a server able to run sandboxed commands (checked with the
sandbox-stack helper, which does what ws-rpc does)."""

import os
import select
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import ECHO, PROBE_SOURCE, PY, STACK, need


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_echo(*flags, port=0, env=None):
    """ws-echo on loopback; returns (process, ready) once it wrote its
    readiness newline (or gave up)."""
    r, w = os.pipe()
    p = subprocess.Popen([need(ECHO), "--host", "127.0.0.1", "--port", str(port), "--notify-fd",
                          str(w)] + list(flags),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, pass_fds=(w,), env=env, text=True)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 10)
        got = os.read(r, 8) if ready else b""
    finally:
        os.close(r)
    return p, got == b"\n"


def has_debug_hook():
    r = subprocess.run([need(ECHO), "--help"], capture_output=True, text=True, timeout=10)
    return "--debug-exec-after-start" in r.stdout + r.stderr


def test_echo_execve_after_start_killed_by_sigsys():
    if not has_debug_hook():
        pytest.skip("NDEBUG build: no --debug-exec-after-start")
    p, _ = start_echo("--debug-exec-after-start")
    try:
        p.wait(timeout=10)
    finally:
        p.kill()
        _, err = p.communicate()
    assert p.returncode == -signal.SIGSYS, (p.returncode, err)
    assert "sandbox self=echo" in err


def test_echo_without_self_sandbox_execs():
    """The same hook with --no-self-sandbox: execve works (the process becomes
    /bin/true and exits 0), and a warning says the filter is off."""
    if not has_debug_hook():
        pytest.skip("NDEBUG build: no --debug-exec-after-start")
    p, _ = start_echo("--no-self-sandbox", "--debug-exec-after-start")
    try:
        p.wait(timeout=10)
    finally:
        p.kill()
        _, err = p.communicate()
    assert p.returncode == 0, (p.returncode, err)
    assert "sandbox self=off" in err and "warn" in err


def status_fields(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_echo_confined_serves_and_drains():
    """Confined, ws-echo answers HTTP and a WebSocket echo, then drains on
    SIGTERM and exits 0: the allowlist covers its whole life."""
    port = free_port()
    p, ready = start_echo(port=port)
    try:
        assert ready, "no readiness newline"
        st = status_fields(p.pid)
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"200" in s.recv(4096).split(b"\r\n")[0]
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 101")
            mask = b"\x01\x02\x03\x04"
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(b"hello"))
            s.sendall(b"\x81\x85" + mask + payload)
            frame = s.recv(64)
            assert frame == b"\x81\x05hello"
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=15)
    finally:
        p.kill()
        _, err = p.communicate()
    assert p.returncode == 0, (p.returncode, err)
    assert "sandbox self=echo" in err


def test_echo_under_valgrind_fails_closed():
    """Where no filter can be installed (valgrind has no seccomp(2)), the
    server refuses to start (111) rather than serve unconfined."""
    if not shutil.which("valgrind"):
        pytest.skip("no valgrind")
    with open(need(ECHO), "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip("a sanitizer build does not run under valgrind")
    r = subprocess.run(["valgrind", "-q", need(ECHO), "--host", "127.0.0.1", "--port", "0"],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 111, (r.returncode, r.stderr[-2000:])
    assert "confine failed=yes" in r.stderr


def test_rpc_self_filter_stacks_with_command_sandbox():
    r = subprocess.run([need(STACK), "--", "sh", "-c",
                        "ls / >/dev/null && grep -E '^Seccomp_filters' /proc/self/status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "self syslog=EPERM" in lines and "self unshare-uts=EPERM" in lines
    # sanitizer builds let the server ptrace (the leak check needs it)
    sanitized = "sanitizer=yes" in r.stderr
    assert ("self ptrace=EPERM" in lines) != sanitized, lines
    # each side loads two programs: libseccomp's and the one for personality's values
    assert "Seccomp_filters:\t4" in lines


def test_rpc_self_filter_lets_children_isolate():
    """The server's filter lets a child unshare exactly the namespaces of
    --isolate (and mount /proc), while the server itself still cannot
    unshare any other."""
    r = subprocess.run([need(STACK), "--isolate", "net,pid,mount,user", "--run-as", "nobody",
                        "--", "sh", "-c", "id -u; echo $$; unshare -U true"],
                       capture_output=True, text=True, timeout=30)
    lines = r.stdout.splitlines()
    assert lines[2:5] == ["self unshare-uts=EPERM", "65534", "1"], r.stdout
    assert r.returncode == 1 and "Operation not permitted" in r.stderr


def test_rpc_children_still_get_sigsys_for_other_arches(tmp_path):
    from test_escapes import int80

    class Factory:
        def mktemp(self, name):
            d = tmp_path / name
            d.mkdir()
            return d
    helper = int80(Factory())
    if subprocess.run([helper], timeout=30).returncode == -signal.SIGSEGV:
        pytest.skip("int 0x80 faults here even unfiltered (no 32-bit entry in this VM)")
    r = subprocess.run([need(STACK), "--", helper], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 128 + signal.SIGSYS


def test_rpc_self_filter_follows_the_policy_file(tmp_path):
    """A call the commands' policy file allows is not denied by the server's
    own filter either (stacked filters take the stricter answer)."""
    policy = tmp_path / "policy"
    policy.write_text("allow keyctl\n")
    r = subprocess.run([need(STACK), "--policy", str(policy), "--", PY, "-c", PROBE_SOURCE,
                        "keyctl"], capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines()[-1] == "ok", r.stdout + r.stderr
    r = subprocess.run([need(STACK), "--", PY, "-c", PROBE_SOURCE, "keyctl"],
                       capture_output=True, text=True, timeout=30)
    assert r.stdout.splitlines()[-1] == "EPERM", r.stdout + r.stderr
