"""ws-rpc runs commands, so it serves no stranger: it starts only with a
token or an explicit --no-auth, refuses a missing or wrong token with 401
before the upgrade (counted in /metrics), and serves the right token given
as a Bearer header or as ?token=."""

import re

import pytest

import rpchelp
from rpchelp import EXIT_USAGE

TOKEN = "s3cret-Token_42"


def test_refuses_to_start_without_token_or_no_auth(binary, tmp_path):
    rc, out, err, vg = rpchelp.run_once(["--host", "127.0.0.1", "--port", "0"],
                                        tmp_path=tmp_path)
    assert rc == EXIT_USAGE, (rc, out, err)
    # a clear message naming both ways out
    assert "--token-file" in err and "WS_TOKEN" in err and "--no-auth" in err, err
    assert "listen" not in err
    assert not rpchelp.sanitizer_findings(err + vg)


def test_unreadable_or_empty_token_file_refuses_to_start(binary, tmp_path):
    # the project's convention: a file named by a flag that cannot be read is
    # exit 111 (a system call failed); an empty one may be either 100 or 111
    rc, _, err, _ = rpchelp.run_once(["--token-file", str(tmp_path / "missing")],
                                     tmp_path=tmp_path)
    assert rc == rpchelp.EXIT_SYSTEM and "token-file" in err, (rc, err)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    rc, _, err, _ = rpchelp.run_once(["--token-file", str(empty)], tmp_path=tmp_path)
    assert rc in (EXIT_USAGE, rpchelp.EXIT_SYSTEM) and "token" in err, (rc, err)
    assert "listen" not in err


def test_no_auth_warns_at_start(rpc):
    s = rpc()  # the fixture adds --no-auth
    assert re.search(r"warn .*--no-auth", s.log_text()), s.log_tail()
    w = s.ws()
    assert w.request({"type": "ping"})["type"] == "pong"


@pytest.fixture(params=["file", "env"])
def authed(rpc, tmp_path, request):
    if request.param == "file":
        f = tmp_path / "token"
        f.write_text(TOKEN + "\n")
        # readable by the server only: ws-rpc refuses a token its commands' user can read
        f.chmod(0o600)
        return rpc("--token-file", f)
    return rpc(env={"WS_TOKEN": TOKEN})


def test_missing_and_wrong_token_get_401_and_are_counted(authed):
    s = authed
    assert s.metric("ws_rejected_total", 'reason="token"') == 0
    assert "--no-auth" not in s.log_text()
    assert rpchelp.upgrade_status(s.port, "/") == 401
    assert rpchelp.upgrade_status(s.port, "/", [("Authorization", "Bearer wrong")]) == 401
    assert rpchelp.upgrade_status(s.port, "/", [("Authorization", "Bearer " + TOKEN + "x")]) == 401
    assert rpchelp.upgrade_status(s.port, "/", [("Authorization", "Bearer " + TOKEN[:-1])]) == 401
    assert rpchelp.upgrade_status(s.port, "/?token=wrong") == 401
    assert rpchelp.upgrade_status(s.port, "/?token=") == 401
    # the 401 says how to authenticate
    req, _ = rpchelp.upgrade_request("/")
    status, headers, _ = rpchelp.http_exchange(s.port, req)
    assert status == 401 and headers.get("www-authenticate", "").startswith("Bearer"), headers
    assert s.metric("ws_rejected_total", 'reason="token"') == 7
    assert s.metric("ws_connections_total") == 0
    with pytest.raises(rpchelp.Closed, match="401"):
        s.ws(token="nope")


def test_right_token_in_header_is_served(authed):
    w = authed.ws(token=TOKEN)
    assert w.request({"type": "ping"})["type"] == "pong"
    r = w.exec(command="echo served")
    assert r["stdout"] == "served\n"


def test_right_token_in_query_is_served(authed):
    w = authed.ws("/?token=" + TOKEN)
    assert w.rpc("ping")["result"]["timestamp"] > 0
    # URL-encoded and among other arguments
    w2 = authed.ws("/?a=1&token=" + TOKEN.replace("_", "%5F") + "&b=2")
    assert w2.request({"type": "ping"})["type"] == "pong"
    assert authed.metric("ws_rejected_total", 'reason="token"') == 0
    assert authed.metric("ws_connections_total") == 2


def test_token_never_reaches_the_log(authed):
    authed.ws("/?token=" + TOKEN).request({"type": "ping"})
    authed.ws(token=TOKEN).request({"type": "ping"})
    rpchelp.upgrade_status(authed.port, "/?token=" + TOKEN + "bad")
    for c in authed.clients:
        c.close()
    assert TOKEN not in authed.log_text()
