"""Signed identities (--jwt-secret-file): an HS256 JWT where the shared
token goes (?token= or Authorization: Bearer) decides who a client is. The
user is the token's sub (?user= is ignored), every message's from is that
sub, a room outside the token's "rooms" gets 403, an expired, forged or
alg-none token gets 401, and the token's "info" rides on join notices,
welcomes and messages. Tokens are minted here with hmac/hashlib; the
client is Python's websockets."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time

import pytest

pytest.importorskip("websockets")
import websockets.client  # noqa: E402
import websockets.exceptions  # noqa: E402

from lib.http import http_exchange  # noqa: E402

SECRET = b"a-test-secret-of-more-than-32-bytes-0123456789"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims, secret=SECRET, header=None):
    """An HS256 token of claims (a dict, or JSON text as it is)."""
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64((claims if isinstance(claims, str) else json.dumps(claims)).encode())
    sig = hmac.new(secret, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64(sig)


def claims(sub, **kw):
    c = {"sub": sub, "exp": int(time.time()) + 600}
    c.update(kw)
    return c


@pytest.fixture
def secret_file(tmp_path):
    f = tmp_path / "jwt-secret"
    f.write_bytes(SECRET + b"\n")
    os.chmod(f, 0o600)
    return f


@pytest.fixture
def token_file(tmp_path):
    f = tmp_path / "shared-token"
    f.write_text("shared-secret-token\n")
    return str(f)


@pytest.fixture
def jwt_bc(bc, secret_file):
    def start(*flags):
        return bc("--jwt-secret-file", str(secret_file), *flags)
    return start


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def connect(s, query, headers=None):
    return await websockets.client.connect("ws://127.0.0.1:%d/%s" % (s.port, query),
                                           extra_headers=headers or {}, max_size=1 << 22)


async def recv(ws, typ=None):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if typ is None or m["type"] == typ:
            return m


async def refused(s, query, headers=None):
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as e:
        ws = await connect(s, query, headers)
        await ws.close()
    return e.value.status_code


def test_user_is_the_token_sub_and_query_user_is_ignored(jwt_bc):
    s = jwt_bc()

    async def go():
        ws = await connect(s, "?id=lobby&user=admin&token=" + mint(claims("alice")))
        w = await recv(ws, "welcome")
        assert w["id"] == "alice"
        assert w["members"] == ["alice"]
        j = await recv(ws, "join")
        assert j["id"] == "alice"
        await ws.close()
    run(go())


def test_from_is_always_the_sub_whatever_the_client_claims(jwt_bc):
    s = jwt_bc()

    async def go():
        a = await connect(s, "?id=r&token=" + mint(claims("alice")))
        await recv(a, "welcome")
        b = await connect(s, "?id=r&user=alice",
                          {"Authorization": "Bearer " + mint(claims("bob"))})
        wb = await recv(b, "welcome")
        assert wb["id"] == "bob"
        # bob tries to speak as alice: a "from" field in the JSON, plain text
        await b.send(json.dumps({"type": "message", "text": "hi", "from": "alice",
                                 "user": "alice", "id": "alice"}))
        await b.send("plain text")
        for ws in (a, b):
            m1 = await recv(ws, "message")
            m2 = await recv(ws, "message")
            assert (m1["from"], m1["text"]) == ("bob", "hi")
            assert (m2["from"], m2["text"]) == ("bob", "plain text")
        await a.close()
        await b.close()
    run(go())


def test_same_sub_twice_keeps_its_name(jwt_bc):
    """No '#2' suffix for a token's user: both connections are alice."""
    s = jwt_bc()

    async def go():
        t = mint(claims("alice"))
        a = await connect(s, "?id=r&token=" + t)
        await recv(a, "welcome")
        a2 = await connect(s, "?id=r&token=" + t)
        w = await recv(a2, "welcome")
        assert w["id"] == "alice" and w["members"] == ["alice", "alice"] and w["count"] == 2
        await a.close()
        await a2.close()
    run(go())


@pytest.mark.parametrize("case", [
    "expired", "bad-signature", "alg-none", "alg-none-signed", "hs512", "missing",
    "garbage", "no-sub", "no-exp", "not-yet", "sub-not-a-name", "crit", "dup-sub",
    "padding", "shared-token",
])
def test_bad_tokens_get_401(jwt_bc, token_file, case):
    now = int(time.time())
    tokens = {
        "expired": mint({"sub": "alice", "exp": now - 3600}),
        "bad-signature": mint(claims("alice"), secret=b"x" * 48),
        "alg-none": b64(b'{"alg":"none","typ":"JWT"}') + "." +
        b64(json.dumps(claims("alice")).encode()) + ".",
        "alg-none-signed": mint(claims("alice"), header={"alg": "none"}),
        "hs512": mint(claims("alice"), header={"alg": "HS512"}),
        "missing": None,
        "garbage": "not.a.token",
        "no-sub": mint({"exp": now + 600}),
        "no-exp": mint({"sub": "alice"}),
        "not-yet": mint(claims("alice", nbf=now + 3600)),
        "sub-not-a-name": mint(claims("alice smith")),
        "crit": mint(claims("alice"), header={"alg": "HS256", "crit": ["exp"]}),
        "padding": mint(claims("alice")) + "=",
        "shared-token": "shared-secret-token",
    }
    s = jwt_bc("--token-file", token_file)
    if case == "dup-sub":
        h = b64(b'{"alg":"HS256"}')
        p = b64(('{"sub":"bob","exp":%d,"sub":"admin"}' % (now + 600)).encode())
        sig = hmac.new(SECRET, (h + "." + p).encode(), hashlib.sha256).digest()
        tok = h + "." + p + "." + b64(sig)
    else:
        tok = tokens[case]
    query = "?id=r&user=alice" + ("&token=" + tok if tok else "")
    assert run(refused(s, query)) == 401
    if tok:
        assert run(refused(s, "?id=r", {"Authorization": "Bearer " + tok})) == 401


def test_expired_reason_is_told(jwt_bc):
    s = jwt_bc()
    tok = mint({"sub": "alice", "exp": int(time.time()) - 60})
    req = ("GET /?id=r&token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n" % tok)
    status, _, body = http_exchange(s.port, req.encode())
    assert status == 401 and b"token expired" in body


def test_leeway_flag_admits_a_just_expired_token(jwt_bc):
    s = jwt_bc("--jwt-leeway", "120")

    async def go():
        ws = await connect(s, "?id=r&token=" + mint({"sub": "alice",
                                                       "exp": int(time.time()) - 30}))
        assert (await recv(ws, "welcome"))["id"] == "alice"
        await ws.close()
        # past the leeway: refused
        assert await refused(s, "?id=r&token=" + mint({"sub": "alice",
                                                         "exp": int(time.time()) - 300})) == 401
    run(go())


def test_rooms_claim_403_outside_and_patterns_inside(jwt_bc):
    s = jwt_bc()
    tok = mint(claims("alice", rooms=["lobby", "team-*"]))

    async def go():
        for room in ("lobby", "team-", "team-red"):
            ws = await connect(s, "?id=%s&token=%s" % (room, tok))
            assert (await recv(ws, "welcome"))["room"] == room
            await ws.close()
        for room in ("lobby2", "team", "other", "default"):
            assert await refused(s, "?id=%s&token=%s" % (room, tok)) == 403
        assert await refused(s, "?token=" + mint(claims("alice", rooms=[]))) == 403
    run(go())


def test_info_on_join_welcome_and_messages(jwt_bc):
    s = jwt_bc()
    info_a = {"name": "Alice \u00e9", "color": "#0af"}

    async def go():
        a = await connect(s, "?id=r&token=" + mint(claims("alice", info=info_a)))
        wa = await recv(a, "welcome")
        assert wa["members_info"] == [info_a]
        ja = await recv(a, "join")
        assert ja["info"] == info_a
        b = await connect(s, "?id=r&token=" + mint(claims("bob")))
        wb = await recv(b, "welcome")
        assert wb["members"] == ["bob", "alice"]
        assert wb["members_info"] == [None, info_a]
        jb = await recv(a, "join")
        assert jb["id"] == "bob" and "info" not in jb
        await a.send("hello")
        for ws in (a, b):
            m = await recv(ws, "message")
            assert m["from"] == "alice" and m["info"] == info_a
        await b.send("yo")
        m = await recv(a, "message")
        assert m["from"] == "bob" and "info" not in m
        await a.close()
        await b.close()
    run(go())


def test_info_too_large_or_not_an_object_401(jwt_bc):
    s = jwt_bc()

    async def go():
        big = {"name": "x" * 600}
        assert await refused(s, "?id=r&token=" + mint(claims("a", info=big))) == 401
        assert await refused(s, "?id=r&token=" + mint(claims("a", info="Alice"))) == 401
    run(go())


def test_oversized_and_hostile_tokens_refused_server_stays(jwt_bc):
    s = jwt_bc()

    async def go():
        # a token over 4096 bytes, a deeply nested payload, a payload of junk bytes
        huge = mint(claims("alice", pad="x" * 5000))
        assert await refused(s, "?id=r", {"Authorization": "Bearer " + huge}) == 401
        assert await refused(s, "?id=r&token=" + huge) == 401
        deep = mint('{"sub":"a","exp":%d,"x":%s%s}' % (time.time() + 60, "[" * 1000, "]" * 1000))
        ws = await connect(s, "?id=r&token=" + deep)
        assert (await recv(ws, "welcome"))["id"] == "a"
        await ws.close()
        for junk in ("a.b.c", "...", "eyJ.eyJ.eyJ", "%00.%00.%00", "=" * 40):
            assert await refused(s, "?id=r&token=" + junk) == 401
        # still serving
        ws = await connect(s, "?id=r&token=" + mint(claims("bob")))
        assert (await recv(ws, "welcome"))["id"] == "bob"
        await ws.close()
    run(go())


def test_shared_token_only_with_allow_flag(bc, secret_file, token_file):
    s = bc("--jwt-secret-file", str(secret_file), "--token-file", token_file,
           "--jwt-allow-token")

    async def go():
        ws = await connect(s, "?id=r&user=alice&token=shared-secret-token")
        w = await recv(ws, "welcome")
        # the shared token names nobody: ?user= still cannot pick a name
        assert w["id"] != "alice" and w["id"].startswith("u-")
        await ws.close()
        ws = await connect(s, "?id=r&token=" + mint(claims("carol")))
        assert (await recv(ws, "welcome"))["id"] == "carol"
        await ws.close()
        assert await refused(s, "?id=r&token=wrong") == 401
    run(go())


def get(s, path, headers=()):
    lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1", "Connection: close"]
    lines += ["%s: %s" % h for h in headers]
    return http_exchange(s.port, ("\r\n".join(lines) + "\r\n\r\n").encode())


def test_rooms_http_needs_a_token_for_the_room(jwt_bc):
    s = jwt_bc()

    async def go():
        ws = await connect(s, "?id=lobby&token=" + mint(claims("alice")))
        await recv(ws, "welcome")
        return ws
    loop = asyncio.new_event_loop()
    ws = loop.run_until_complete(go())
    try:
        assert get(s, "/rooms")[0] == 401
        assert get(s, "/rooms/lobby?token=" + mint(claims("x"), secret=b"y" * 40))[0] == 401
        status, _, body = get(s, "/rooms/lobby?token=" + mint(claims("bob", rooms=["lobby"])))
        assert status == 200 and json.loads(body)["members"] == ["alice"]
        assert get(s, "/rooms/lobby?token=" + mint(claims("bob", rooms=["other"])))[0] == 403
        # the list of all rooms needs a token for all rooms
        assert get(s, "/rooms?token=" + mint(claims("bob", rooms=["lobby"])))[0] == 403
        status, _, body = get(s, "/rooms", (("Authorization",
                                             "Bearer " + mint(claims("bob", rooms=["*"]))),))
        assert status == 200 and json.loads(body)[0]["room"] == "lobby"
        assert get(s, "/rooms?token=" + mint(claims("bob")))[0] == 200
    finally:
        loop.run_until_complete(ws.close())
        loop.close()


@pytest.mark.parametrize("content,why", [
    (b"short-secret\n", "shorter than 32"),
    (b"", "shorter than 32"),
    (b"x" * 5000, "longer than 4096"),
])
def test_bad_secret_file_refuses_to_start(binary, tmp_path, content, why):
    from bchelp import run_once
    f = tmp_path / "s"
    f.write_bytes(content)
    rc, _, err, _ = run_once(["--jwt-secret-file", str(f), "--db", str(tmp_path / "d.db"),
                              "--port", "0"], tmp_path=tmp_path)
    assert rc == 100 and why in err


def test_missing_secret_file_refuses_to_start(binary, tmp_path):
    from bchelp import run_once
    rc, _, err, _ = run_once(["--jwt-secret-file", str(tmp_path / "nope"), "--db",
                              str(tmp_path / "d.db"), "--port", "0"], tmp_path=tmp_path)
    assert rc == 100 and "cannot open" in err


def test_world_readable_secret_warns(bc, tmp_path):
    f = tmp_path / "loose"
    f.write_bytes(SECRET)
    os.chmod(f, 0o644)
    s = bc("--jwt-secret-file", str(f))

    async def go():
        ws = await connect(s, "?id=r&token=" + mint(claims("dave")))
        assert (await recv(ws, "welcome"))["id"] == "dave"
        await ws.close()
    run(go())
    assert "readable_by_others=yes" in s.log_text()


def test_info_rides_on_batched_joins(jwt_bc):
    """Joins that share a presence message carry each joiner's info in
    joined_info, aligned with joined (null for a token without info)."""
    from bchelp import presence_events
    s = jwt_bc("--rate-limit", "0")
    n = 40

    async def go():
        obs = await connect(s, "?id=r&token=" + mint(claims("observer")))
        await recv(obs, "welcome")
        await recv(obs, "join")
        infos = {"m%d" % i: ({"name": "M %d" % i} if i % 3 else None) for i in range(n)}

        def token(name):
            extra = {"info": infos[name]} if infos[name] else {}
            return mint(claims(name, **extra))
        joiners = await asyncio.gather(*(connect(s, "?id=r&token=" + token(name))
                                         for name in infos))
        seen, batched = {}, 0
        while len(seen) < n:
            m = json.loads(await asyncio.wait_for(obs.recv(), 10))
            batched += m["type"] == "presence"
            for e in presence_events(m):
                assert e["type"] == "join"
                seen[e["id"]] = e.get("info")
        assert seen == infos
        # the joiners read nothing: close them at once, not each after the other's timeout
        await asyncio.gather(*(ws.close() for ws in joiners + [obs]))
        return batched
    batched = run(go())
    print("presence messages among %d joins: %d" % (n, batched))
    # 40 handshakes at once: some share a loop turn, so joined_info was on the wire
    assert batched >= 1


def test_presence_batches_are_bounded_in_size(jwt_bc):
    """Joins with large infos in one turn are cut into several presence
    messages of at most ~16 KiB each (PRESENCE_BATCH_MAX), never one frame
    that grows with the storm; together they still carry every join."""
    from bchelp import presence_events
    s = jwt_bc("--rate-limit", "0")
    n = 80

    async def go():
        obs = await connect(s, "?id=r&token=" + mint(claims("observer")))
        await recv(obs, "welcome")
        await recv(obs, "join")
        names = ["big%d" % i for i in range(n)]
        joiners = await asyncio.gather(*(
            connect(s, "?id=r&token=" + mint(claims(name, info={"pad": name * 0 + "x" * 480})))
            for name in names))
        seen, largest = [], 0
        while len(seen) < n:
            raw = await asyncio.wait_for(obs.recv(), 10)
            largest = max(largest, len(raw))
            seen += [e["id"] for e in presence_events(json.loads(raw))]
        assert sorted(seen) == sorted(names)
        await asyncio.gather(*(ws.close() for ws in joiners + [obs]))
        return largest
    largest = run(go())
    print("largest presence message: %d bytes" % largest)
    # 80 x ~500 bytes of info = 40 KB: more than one batch, each within the bound
    assert largest < 17 * 1024, largest
