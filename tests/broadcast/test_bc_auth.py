"""Room state over HTTP (/rooms, /rooms/ROOM: names, members, last_seq)
needs the same credential as the upgrade: the token and the Origin
allowlist. Without a token configured it stays open, as the upgrade does."""

import json

import pytest

from lib.http import http_exchange
from lib.wsclient import HandshakeRefused

TOKEN = "s3cret-token-for-tests"


def get(s, path, headers=()):
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    lines += ["%s: %s" % h for h in headers]
    return http_exchange(s.port, ("\r\n".join(lines) + "\r\n\r\n").encode())


def metric(s, name):
    status, _, body = s.get("/metrics")
    for line in body.decode().splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


@pytest.fixture
def tokened(bc, tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    s = bc("--token-file", str(f))
    ws = s.ws("/?id=secret-room&user=alice&token=" + TOKEN)
    ws.join()
    yield s
    ws.close()


@pytest.mark.parametrize("path", ["/rooms", "/rooms/secret-room", "/rooms/never-used",
                                  "/rooms/"])
def test_rooms_without_token_401_and_nothing_leaks(tokened, path):
    s = tokened
    for headers in ((), (("Authorization", "Bearer wrong"),)):
        status, hdrs, body = get(s, path, headers)
        assert status == 401, (path, status, body)
        assert hdrs.get("www-authenticate") == "Bearer"
        assert b"secret-room" not in body and b"alice" not in body
    status, _, body = get(s, path + "?token=wrong")
    assert status == 401


def test_rooms_with_token_header_or_query(tokened):
    s = tokened
    status, _, body = get(s, "/rooms", (("Authorization", "Bearer " + TOKEN),))
    assert status == 200
    assert json.loads(body) == [{"room": "secret-room", "count": 1, "last_seq": 0}]
    status, _, body = get(s, "/rooms/secret-room?token=" + TOKEN)
    assert status == 200 and json.loads(body)["members"] == ["alice"]
    status, _, _ = get(s, "/rooms/never-used?token=" + TOKEN)
    assert status == 404
    rejected = metric(s, 'ws_rejected_total{server="ws-broadcast",reason="token"}')
    get(s, "/rooms")
    assert metric(s, 'ws_rejected_total{server="ws-broadcast",reason="token"}') == rejected + 1


def test_health_and_metrics_stay_open_with_a_token(tokened):
    assert tokened.get("/healthz")[0] == 200
    assert tokened.get("/metrics")[0] == 200
    with pytest.raises(HandshakeRefused) as e:
        tokened.ws("/?id=secret-room")
    assert e.value.status == 401


def test_rooms_origin_not_allowed_403(bc):
    s = bc("--allowed-origin", "https://chat.example")
    ws = s.ws("/?id=r&user=u")
    ws.join()
    status, _, body = get(s, "/rooms", (("Origin", "https://evil.example"),))
    assert status == 403 and b'"r"' not in body
    status, _, _ = get(s, "/rooms/r", (("Origin", "https://evil.example"),))
    assert status == 403
    status, _, body = get(s, "/rooms", (("Origin", "https://chat.example"),))
    assert status == 200 and json.loads(body)[0]["room"] == "r"
    assert get(s, "/rooms")[0] == 200           # no Origin: not a browser
    ws.close()
