"""The store under pressure: a write lock held by another process, a
database at --max-db-size, a full disk. A message is delivered only once
committed; when the store cannot commit, the sender gets an error (counted
in /metrics), nobody else sees it, no seq a client saw is given twice, and
the loop never waits on the lock. Then the bounds on what is stored: idle
empty rooms expire, old memberships are pruned, stored rooms are capped, and
a version-1 database is migrated."""

import os
import sqlite3
import subprocess
import time

import pytest

from lib.proc import t, wait_until
from lib.wsclient import OP_TEXT, client_frame

BUSY = {"type": "error", "error": "Message not stored: database busy"}
FULL = {"type": "error", "error": "Message not stored: storage full"}


def metric(s, name):
    status, _, body = s.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


def history(s, room):
    ws = s.ws("/?id=%s&since=0" % room)
    w, _ = ws.join()
    seqs = [(h["seq"], h["text"]) for h in w["history"]]
    assert "more" not in w
    ws.close()
    return seqs


def pair(s, room):
    a = s.ws("/?id=%s&user=a" % room)
    a.join()
    b = s.ws("/?id=%s&user=b" % room)
    b.join()
    assert a.recv_json()["id"] == "b"
    return a, b


# --------------------------------------------------------------------------
# a lock held elsewhere

def test_locked_database_fails_fast_delivers_nothing_reuses_no_seq(bc, tmp_path):
    s = bc("--rate-limit", "0")
    a, b = pair(s, "lk")
    a.send_text("before")
    assert a.recv_json()["seq"] == 1 and b.recv_json()["seq"] == 1

    locker = sqlite3.connect(s.db, timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        t0 = time.monotonic()
        a.send_raw(b"".join(client_frame(OP_TEXT, "locked-%d" % i) for i in range(3)))
        for _ in range(3):
            assert a.recv_json() == BUSY
        elapsed = time.monotonic() - t0
        assert elapsed < t(0.5), "3 messages under a held lock took %.2fs" % elapsed
        t0 = time.monotonic()
        assert s.get("/healthz")[0] == 200
        assert time.monotonic() - t0 < t(0.5)
        # a join still works (reads are not blocked); its bookkeeping may fail
        c = s.ws("/?id=lk&user=c")
        w, _ = c.join()
        assert [h["seq"] for h in w["history"]] == [1]
        for ws in (a, b):
            assert ws.recv_json()["id"] == "c"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert metric(s, 'ws_broadcast_messages_failed_total{reason="busy"}') == 3
    # the lock is gone: the next message is seq 2, for everyone, and stored
    a.send_text("after")
    for ws in (a, b, c):
        m = ws.recv_json()
        assert (m["type"], m["text"], m["seq"]) == ("message", "after", 2), m
    assert history(s, "lk") == [(1, "before"), (2, "after")]
    for ws in (a, b, c):
        ws.close()
    # and across a restart the seq goes on from what was committed
    assert s.finish() == []
    s2 = bc("--rate-limit", "0", db=s.db)
    d = s2.ws("/?id=lk")
    d.join()
    d.send_text("restarted")
    assert d.recv_json()["seq"] == 3
    d.close()


def test_lock_held_by_another_process_does_not_stall_other_rooms(bc, tmp_path):
    """A second process (sqlite3 in python) holds BEGIN EXCLUSIVE for 2 s
    while a client sends 20 messages: each is refused at once, and another
    room's member keeps getting answers (its own messages fail too)."""
    s = bc("--rate-limit", "0")
    a = s.ws("/?id=one")
    a.join()
    other = s.ws("/?id=two")
    other.join()
    script = ("import sqlite3, sys, time\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('BEGIN EXCLUSIVE')\n"
              "print('locked', flush=True)\n"
              "time.sleep(2)\n"
              "c.execute('ROLLBACK')\n")
    p = subprocess.Popen(["/usr/bin/python3", "-c", script, s.db], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"locked"
        worst = 0.0
        for i in range(20):
            t0 = time.monotonic()
            a.send_text("m%d" % i)
            assert a.recv_json() == BUSY
            worst = max(worst, time.monotonic() - t0)
        t0 = time.monotonic()
        other.send_ping(b"x")
        assert other.recv(pongs=True).kind == "pong"
        assert time.monotonic() - t0 < t(0.2)
        assert worst < t(0.2), "a message waited %.3fs on the lock" % worst
    finally:
        p.wait(timeout=t(10))
    a.send_text("now")
    assert a.recv_json()["seq"] == 1
    a.close()
    other.close()


# --------------------------------------------------------------------------
# a full store

def send_batches(a, b, n_batches, size, per_batch=4):
    """Sends batches of messages in one write each (one loop turn); returns
    (delivered seqs as a saw them, refusals). b must see exactly a's
    delivered messages."""
    delivered, refused, k = [], [], 0
    for _ in range(n_batches):
        texts = ["%05d:%s" % (k + i, "f" * size) for i in range(per_batch)]
        k += per_batch
        a.send_raw(b"".join(client_frame(OP_TEXT, x) for x in texts))
        for _ in texts:
            m = a.recv_json(timeout=20)
            if m["type"] == "message":
                delivered.append((m["seq"], m["text"]))
            else:
                assert m == FULL, m
                refused.append(m)
        if refused:
            break
    seen = []
    while len(seen) < len(delivered):
        m = b.recv_json(timeout=20)
        if m["type"] == "message":
            seen.append((m["seq"], m["text"]))
    assert seen == delivered, "b saw other than what a was told was delivered"
    return delivered, refused


def check_no_gap(delivered, stored):
    assert [sq for sq, _ in delivered] == list(range(1, len(delivered) + 1)), \
        "delivered seqs must be 1..n without a gap"
    assert stored == delivered, "every delivered message is stored, nothing else"


def test_max_db_size_full_error_nothing_lost_then_more_space(bc, tmp_path):
    db = tmp_path / "cap.db"
    flags = ("--rate-limit", "0", "--history-size", "100000", "--max-db-size", "256k",
             "--max-message", "64k")
    s = bc(*flags, db=db)
    a, b = pair(s, "cap")
    delivered, refused = send_batches(a, b, 100, 8000)
    assert refused, "256k never filled"
    assert 5 <= len(delivered) < 40, len(delivered)
    assert metric(s, 'ws_broadcast_messages_failed_total{reason="full"}') >= len(refused)
    # the refused batch was rolled back whole, so its pages are free again:
    # single messages fill them, then are refused; the connection stays
    for i in range(20):
        a.send_text("single%d:%s" % (i, "x" * 8000))
        m = a.recv_json()
        if m["type"] == "error":
            assert m == FULL
            break
        delivered.append((m["seq"], m["text"]))
        assert b.recv_json() == m
    else:
        raise AssertionError("never full again")
    check_no_gap(delivered, history(s, "cap"))
    a.close()
    b.close()
    assert os.path.getsize(db) <= 256 * 1024
    assert s.finish() == []
    # more space: the seq goes on after the last delivered one
    s2 = bc(*(flags[:-4] + ("--max-db-size", "4m")), db=db)
    c = s2.ws("/?id=cap")
    c.join()
    c.send_text("roomy")
    assert c.recv_json()["seq"] == len(delivered) + 1
    c.close()


def test_full_disk_refuses_messages_nothing_lost(bc, tmp_path):
    """A 600 KiB tmpfs holds the database: when a write or commit hits ENOSPC
    the turn's messages are refused, never delivered, and no delivered seq
    is missing from history."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.decode().strip())
    try:
        db = mnt / "full.db"
        s = bc("--rate-limit", "0", "--history-size", "100000", "--max-message", "64k", db=db)
        a, b = pair(s, "disk")
        delivered, refused = send_batches(a, b, 200, 8000)
        assert refused, "the disk never filled"
        assert metric(s, 'ws_broadcast_messages_failed_total{reason="full"}') >= len(refused)
        check_no_gap(delivered, history(s, "disk"))
        a.close()
        b.close()
        assert s.finish() == []
        c = sqlite3.connect(str(db))
        try:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert c.execute("SELECT max(seq) FROM messages").fetchone()[0] == len(delivered)
        finally:
            c.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# --------------------------------------------------------------------------
# bounds on what is stored

def stored_rooms(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return sorted(r[0] for r in c.execute("SELECT name FROM rooms"))
    finally:
        c.close()


def test_idle_empty_room_expires_occupied_room_stays(bc, tmp_path):
    s = bc("--room-expiry", "0.5")
    old = s.ws("/?id=old&user=x")
    old.join()
    old.send_text("forget me")
    assert old.recv_json()["seq"] == 1
    kept = s.ws("/?id=kept")
    kept.join()
    old.close()
    wait_until(lambda: s.get("/rooms/old")[0] == 404, timeout=10, what="room 'old' to expire")
    assert stored_rooms(s.db) == ["kept"]
    assert metric(s, "ws_broadcast_rooms_stored") == 1
    time.sleep(1.2)                      # well past the expiry: an occupied room stays
    assert s.get_json("/rooms/kept")["count"] == 1
    # a room made again starts over: no history, seq 1
    again = s.ws("/?id=old&since=0")
    w, _ = again.join()
    assert w["history"] == []
    again.send_text("new life")
    assert again.recv_json()["seq"] == 1
    c = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True)
    try:
        assert c.execute("SELECT text FROM messages WHERE room='old'").fetchall() == \
            [("new life",)]
    finally:
        c.close()
    again.close()
    kept.close()


def test_room_expiry_zero_keeps_rooms(bc):
    s = bc("--room-expiry", "0")
    ws = s.ws("/?id=forever")
    ws.join()
    ws.close()
    time.sleep(1.5)
    assert s.get("/rooms/forever")[0] == 200


def test_old_memberships_pruned_open_ones_kept(bc):
    s = bc("--max-memberships", "10", "--rate-limit", "0")
    stay = s.ws("/?id=m&user=stay")
    stay.join()
    for i in range(40):
        ws = s.ws("/?id=m&user=c%d" % i)
        ws.join()
        ws.close()

    def count():
        c = sqlite3.connect("file:%s?mode=ro" % s.db, uri=True, timeout=10)
        try:
            return (c.execute("SELECT count(*) FROM memberships").fetchone()[0],
                    c.execute("SELECT user FROM memberships WHERE left_ms IS NULL").fetchall())
        finally:
            c.close()

    wait_until(lambda: count()[0] <= 11, timeout=10, what="memberships pruned to 10 + 1")
    assert count()[1] == [("stay",)], "the open membership was kept"
    stay.close()


def test_max_stored_rooms_503_until_one_expires(bc):
    s = bc("--max-stored-rooms", "3", "--room-expiry", "0")
    for r in ("r1", "r2", "r3"):
        ws = s.ws("/?id=%s" % r)
        ws.join()
        ws.close()
    wait_until(lambda: s.get_json("/rooms/r3")["count"] == 0, what="r3 empty")
    from lib.wsclient import HandshakeRefused
    with pytest.raises(HandshakeRefused) as e:
        s.ws("/?id=r4")
    assert e.value.status == 503 and b"too many rooms stored" in e.value.body
    ws = s.ws("/?id=r2")                 # a stored room is still joinable
    ws.join()
    ws.close()
    assert stored_rooms(s.db) == ["r1", "r2", "r3"]


def test_v1_database_is_migrated(bc, tmp_path):
    """A database written by schema version 1 (no room activity time) keeps
    its rooms, history and seqs."""
    db = tmp_path / "v1.db"
    c = sqlite3.connect(str(db))
    c.executescript("""
        PRAGMA application_id = %d; PRAGMA user_version = 1;
        CREATE TABLE rooms (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL,
                            next_seq INTEGER NOT NULL) WITHOUT ROWID;
        CREATE TABLE memberships (id INTEGER PRIMARY KEY, room TEXT NOT NULL,
            user TEXT NOT NULL, conn_id INTEGER NOT NULL, addr TEXT NOT NULL,
            joined_ms INTEGER NOT NULL, left_ms INTEGER, reason TEXT);
        CREATE INDEX memberships_open ON memberships(left_ms) WHERE left_ms IS NULL;
        CREATE TABLE messages (room TEXT NOT NULL, seq INTEGER NOT NULL,
            sender TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
            PRIMARY KEY (room, seq)) WITHOUT ROWID;
        INSERT INTO rooms VALUES ('legacy', %d, 3);
        INSERT INTO rooms VALUES ('ancient', 1000, 1);
        INSERT INTO messages VALUES ('legacy', 1, 'x', 'one', 1), ('legacy', 2, 'x', 'two', 2);
    """ % (0x77734243, int(time.time() * 1000)))
    c.close()
    before = int(time.time() * 1000)
    # a room made decades ago counts as active at the upgrade: it outlives a 2 s expiry
    s = bc("--room-expiry", "2", db=db)
    ws = s.ws("/?id=legacy&since=0")
    w, _ = ws.join()
    assert [(h["seq"], h["text"]) for h in w["history"]] == [(1, "one"), (2, "two")]
    ws.send_text("three")
    assert ws.recv_json()["seq"] == 3
    ws.close()
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 3
        assert c.execute("SELECT active_ms FROM rooms WHERE name = 'ancient'"
                         ).fetchone()[0] >= before - 1000
    finally:
        c.close()
    assert s.get("/rooms/ancient")[0] == 200, "expired at once after the upgrade"
    wait_until(lambda: s.get("/rooms/ancient")[0] == 404, timeout=10,
               what="'ancient' to expire a full --room-expiry after the upgrade")
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert c.execute("SELECT count(*) FROM rooms WHERE name = 'legacy'").fetchone()[0] == 1
    finally:
        c.close()
