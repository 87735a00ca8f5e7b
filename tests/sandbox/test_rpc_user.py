"""ws-rpc's commands and the server (docs/security.md): as root, commands run
as ws-exec and cannot read the server's environment or memory, signal it,
or read its token file; the server refuses to start without that user, and
with a token file that user could read. Every connection's commands are
one principal: one connection's command sees another's environment (the
documented model). Each escape succeeds with --run-as-self and
--seccomp-profile none (the old defaults) and fails under the defaults."""

import os
import subprocess
import sys

import pytest

from conftest import COMMAND_USER, PY
from test_user import REACH_PARENT, passwd_without_user, without_user  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rpc"))
import rpchelp  # noqa: E402

OLD_DEFAULTS = ["--run-as-self", "--seccomp-profile", "none"]


@pytest.fixture
def rpc(server):
    """Factory: a started ws-rpc (--no-auth unless a token is given)."""
    if not os.access(rpchelp.BINARY, os.X_OK):
        pytest.skip("ws-rpc is not built")

    def start(*flags, env=None):
        flags = [str(f) for f in flags]
        if "--token-file" not in flags:
            flags.append("--no-auth")
        return server(rpchelp.NAME, *flags, "--rate-limit", "0", cls=rpchelp.RpcServer, env=env)

    return start


def run(ws, argv, env=None):
    params = {"argv": argv}
    if env:
        params["env"] = env
    return ws.exec(**params)


def test_commands_run_as_the_dedicated_user_and_info_says_so(rpc):
    s = rpc()
    w = s.ws()
    assert run(w, ["id", "-un"])["stdout"] == COMMAND_USER + "\n"
    info = w.request({"type": "info"})
    assert info["server"]["limits"]["sandbox"]["run_as"] == COMMAND_USER, info
    assert "sandbox user=%s" % COMMAND_USER in s.log_text()


def test_escape_command_reaches_the_server(rpc):
    """9.3: the server's environment (a token), /proc/PPID/mem read-write,
    a signal to the server."""
    mark = "WS_RPC_TEST_SECRET=%s" % os.urandom(8).hex()
    key, value = mark.split("=")
    s = rpc(*OLD_DEFAULTS, env={key: value})
    r = run(s.ws(), [PY, "-c", REACH_PARENT, mark])
    assert r["stdout"].split() == ["environ-read", "mem-open", "signal-sent"], r
    s = rpc(env={key: value})
    r = run(s.ws(), [PY, "-c", REACH_PARENT, mark])
    assert r["stdout"].split() == ["environ-refused", "mem-refused", "signal-refused"], r


def test_escape_command_reads_the_token_file(rpc, tmp_path):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    os.chmod(token, 0o600)
    s = rpc(*OLD_DEFAULTS, "--token-file", token)
    r = s.ws(token="t0ken").exec(argv=["cat", str(token)])
    assert r["stdout"] == "t0ken\n", r
    s = rpc("--token-file", token)
    r = s.ws(token="t0ken").exec(argv=["cat", str(token)])
    assert r["stdout"] == "" and "Permission denied" in r["stderr"], r


def test_token_file_the_commands_can_read_is_refused(tmp_path):
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    os.chmod(token, 0o644)
    os.chmod(tmp_path, 0o755)
    parent = str(tmp_path)
    while parent != "/tmp" and parent.startswith("/tmp/"):
        os.chmod(parent, os.stat(parent).st_mode | 0o555)
        parent = os.path.dirname(parent)
    rc, _, err, _ = rpchelp.run_once(["--token-file", str(token), "--port", "0"])
    assert rc == rpchelp.EXIT_USAGE and "readable by %s" % COMMAND_USER in err, err
    os.chmod(token, 0o600)


def test_missing_dedicated_user_stops_the_start(passwd_without_user):  # noqa: F811
    if not os.access(rpchelp.BINARY, os.X_OK):
        pytest.skip("ws-rpc is not built")
    r = without_user(passwd_without_user, [rpchelp.BINARY, "--no-auth", "--port", "0"],
                     env=rpchelp.clean_env(), stdin=subprocess.DEVNULL)
    assert r.returncode == rpchelp.EXIT_USAGE, (r.returncode, r.stderr)
    assert "'%s', which does not exist" % COMMAND_USER in r.stderr, r.stderr


def test_connections_are_one_principal(rpc):
    """15.2, the documented model: every holder of the token is one
    principal. B's command reads the env A gave its command, and could
    signal it; the server itself stays out of reach (above)."""
    s = rpc()
    a, b = s.ws(), s.ws()
    secret = os.urandom(8).hex()
    a.send({"type": "exec", "id": "a", "stream": True, "argv": ["sleep", "30"],
            "env": {"API_KEY": secret}})
    pid = a.wait_for(lambda m: m.get("type") == "start")["pid"]
    code = ("import os, sys\npid = int(sys.argv[1])\n"
            "print(open('/proc/%d/environ' % pid, 'rb').read().count(sys.argv[2].encode()))\n"
            "os.kill(pid, 0); print('may-signal')")
    r = run(b, [PY, "-c", code, str(pid), "API_KEY=" + secret])
    assert r["stdout"].split() == ["1", "may-signal"], r
