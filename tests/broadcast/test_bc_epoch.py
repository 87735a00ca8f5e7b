"""Recovery that tells the truth (SQLite engine): every room has an epoch
made with its history; the welcome carries `epoch` and `last_seq`, and for
a ?since= join `recovered`, false when the history no longer holds
everything after since or when &epoch= is not the room's. A fresh database
(a sandbox that slept) is a new epoch."""

import os

from bchelp import run_once


def chat(ws, texts):
    for x in texts:
        ws.send_json({"type": "message", "text": x})
    seqs = []
    while len(seqs) < len(texts):
        m = ws.recv_json()
        if m.get("type") == "message":
            seqs.append(m["seq"])
    return seqs


def welcome(s, path):
    ws = s.ws(path)
    w = ws.recv_json()
    assert w["type"] == "welcome", w
    return ws, w


def test_welcome_has_epoch_and_last_seq_and_recovered_only_with_since(bc):
    s = bc()
    ws, w = welcome(s, "/?id=e1")
    assert len(w["epoch"]) == 16 and int(w["epoch"], 16) >= 0, w
    assert w["last_seq"] == 0 and "recovered" not in w, w
    assert chat(ws, ["a", "b", "c"]) == [1, 2, 3]
    c, w2 = welcome(s, "/?id=e1&since=1&epoch=" + w["epoch"])
    assert w2["epoch"] == w["epoch"] and w2["last_seq"] == 3 and w2["recovered"] is True, w2
    assert [h["seq"] for h in w2["history"]] == [2, 3]
    # without &epoch= the history check alone decides
    c2, w3 = welcome(s, "/?id=e1&since=3")
    assert w3["recovered"] is True and w3["history"] == [], w3
    for x in (ws, c, c2):
        x.close()


def test_epoch_survives_restart_on_the_same_database(bc, tmp_path):
    db = tmp_path / "keep.db"
    s = bc(db=db)
    ws, w = welcome(s, "/?id=keep")
    chat(ws, ["x", "y"])
    ws.close()
    s.stop()
    s2 = bc(db=db)
    c, w2 = welcome(s2, "/?id=keep&since=2&epoch=" + w["epoch"])
    assert w2["epoch"] == w["epoch"] and w2["last_seq"] == 2 and w2["recovered"] is True, w2
    c.close()


def test_fresh_database_is_a_new_epoch_and_old_since_is_not_recovered(bc, tmp_path):
    """The sandbox slept and came back with a fresh disk: seq restarts, and a
    client reconnecting with since=500 is told recovered:false, not nothing."""
    s = bc(db=tmp_path / "before.db")
    ws, w = welcome(s, "/?id=nap")
    chat(ws, ["m%d" % i for i in range(5)])
    ws.close()
    s.stop()
    s2 = bc(db=tmp_path / "after.db")
    c, w2 = welcome(s2, "/?id=nap&since=500&epoch=" + w["epoch"])
    assert w2["epoch"] != w["epoch"], (w, w2)
    assert w2["last_seq"] == 0 and w2["recovered"] is False and w2["history"] == [], w2
    # even an old since inside the new range is refused by the epoch
    chat(c, ["n1", "n2", "n3"])
    d, w3 = welcome(s2, "/?id=nap&since=1&epoch=" + w["epoch"])
    assert w3["recovered"] is False and w3["last_seq"] == 3, w3
    # and since=500 without an epoch: past the room's last seq, not recovered
    e, w4 = welcome(s2, "/?id=nap&since=500")
    assert w4["recovered"] is False, w4
    for x in (c, d, e):
        x.close()


def test_since_older_than_the_history_is_not_recovered(bc):
    s = bc("--history-size", "5", "--rate-limit", "0")
    ws, w = welcome(s, "/?id=short")
    chat(ws, ["t%d" % i for i in range(12)])
    ep = "&epoch=" + w["epoch"]
    for since, want in ((7, True), (6, False), (0, False), (12, True), (13, False)):
        c, w2 = welcome(s, "/?id=short&since=%d%s" % (since, ep))
        assert w2["recovered"] is want, (since, w2)
        c.close()
    ws.close()


def test_bad_epoch_gets_400(bc):
    s = bc()
    for bad in ("x" * 17, "a%20b", "%00", ""):
        try:
            s.ws("/?id=r&since=0&epoch=" + bad)
        except Exception as e:  # HandshakeRefused
            assert getattr(e, "status", None) == 400, e
        else:
            assert bad == "", bad


def test_engine_flag_and_db_alias(binary, tmp_path):
    rc, _, err, _ = run_once(["--engine", "rediss://127.0.0.1:6379"], tmp_path=tmp_path)
    assert rc == 100 and "rediss://" in err and "TLS" in err, err
    rc, _, err, _ = run_once(["--engine", "mysql://x"], tmp_path=tmp_path)
    assert rc == 100 and "expected sqlite:PATH" in err, err
    rc, _, err, _ = run_once(["--engine", "sqlite:" + str(tmp_path / "a.db"), "--db",
                              str(tmp_path / "b.db")], tmp_path=tmp_path)
    assert rc == 100 and "alias" in err, err


def test_engine_sqlite_path_is_used(server, tmp_path):
    from bchelp import NAME
    from lib.server import Server
    db = tmp_path / "via-engine.db"
    s = server(NAME, "--engine", "sqlite:%s" % db, cls=Server)
    import bchelp
    ws = bchelp.WS.connect(s.port, "/?id=viaengine")
    assert ws.recv_json()["type"] == "welcome"
    ws.close()
    assert os.path.exists(db)
