"""Start-up failures: a database that cannot be opened or is not ours exits
111 naming the path with nothing listening; a bad flag exits 100 with one line."""

import os
import select
import sqlite3
import subprocess

import pytest

from bchelp import command, run_once
from lib.proc import (EXIT_SYSTEM, EXIT_USAGE, clean_env, free_port, port_is_listening,
                      sanitizer_findings)
from lib.server import READY_TIMEOUT


def start_expecting_failure(args, tmp_path, env=None):
    """Run with --notify-fd and a fixed port; returns (rc, stderr, notified, port)."""
    port = free_port()
    r, w = os.pipe()
    vlog = str(tmp_path / "valgrind.log")
    try:
        p = subprocess.Popen(command(["--host", "127.0.0.1", "--port", str(port),
                                      "--notify-fd", str(w)] + list(args), vlog),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, pass_fds=(w,), env=clean_env(env))
    finally:
        os.close(w)
    try:
        out, err = p.communicate(timeout=READY_TIMEOUT)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("the server did not exit (it should refuse to start)")
    finally:
        notified = b""
        if select.select([r], [], [], 0)[0]:
            notified = os.read(r, 64)
        os.close(r)
    err = err.decode(errors="replace")
    if os.path.exists(vlog):
        with open(vlog, errors="replace") as f:
            err_v = f.read()
        assert not sanitizer_findings(err_v), err_v
    assert not sanitizer_findings(err), err
    return p.returncode, err, notified, port


def assert_refused(rc, err, notified, port, path):
    assert rc == EXIT_SYSTEM, "exit %r, expected 111; stderr: %s" % (rc, err)
    assert str(path) in err, "the error must name %s: %r" % (path, err)
    assert notified == b"", "the server signalled readiness before failing"
    assert not port_is_listening(port), "something listens on %d" % port


def test_db_is_a_directory(binary, tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    assert_refused(*start_expecting_failure(["--db", str(d)], tmp_path), d)
    assert os.listdir(d) == []


def test_db_in_missing_directory(binary, tmp_path):
    path = "/nonexistent/dir/x.db"
    assert_refused(*start_expecting_failure(["--db", path], tmp_path), path)
    assert not os.path.exists("/nonexistent")


def test_db_not_sqlite(binary, tmp_path):
    path = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    assert_refused(*start_expecting_failure(["--db", str(path)], tmp_path), path)
    assert path.read_bytes() == content, "the file was modified"
    assert not os.path.exists(str(path) + "-wal")


def test_db_of_another_app(binary, tmp_path):
    path = tmp_path / "other.db"
    c = sqlite3.connect(str(path))
    c.executescript("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
                    "INSERT INTO customers(name) VALUES ('ada');")
    c.commit()
    c.close()
    before = path.read_bytes()
    rc, err, notified, port = start_expecting_failure(["--db", str(path)], tmp_path)
    assert_refused(rc, err, notified, port, path)
    assert path.read_bytes() == before, "another app's database was modified"
    c = sqlite3.connect(str(path))
    try:
        assert [r[0] for r in c.execute("SELECT name FROM sqlite_master")] == ["customers"]
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        c.close()


def test_db_of_another_app_with_same_table_names(binary, tmp_path):
    """Tables named like ours, but no application_id: still not ours."""
    path = tmp_path / "lookalike.db"
    c = sqlite3.connect(str(path))
    c.executescript("CREATE TABLE rooms(name TEXT); CREATE TABLE messages(x);")
    c.close()
    assert_refused(*start_expecting_failure(["--db", str(path)], tmp_path), path)


def test_db_from_a_newer_version(binary, tmp_path):
    """Our database, but a schema version this server does not know."""
    path = tmp_path / "newer.db"
    c = sqlite3.connect(str(path))
    c.executescript("PRAGMA application_id = %d; PRAGMA user_version = 99; "
                    "CREATE TABLE rooms(name TEXT);" % 0x77734243)
    c.close()
    assert_refused(*start_expecting_failure(["--db", str(path)], tmp_path), path)


def test_db_created_and_reused(bc, tmp_path):
    """The positive case: a new file gets our schema in WAL mode, and a second
    start on it works."""
    path = tmp_path / "fresh.db"
    s = bc(db=path)
    ws = s.ws("/?id=r")
    ws.join()
    ws.close()
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA user_version").fetchone()[0] >= 1
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"rooms", "memberships", "messages"} <= names
    finally:
        c.close()
    assert s.finish() == []
    s2 = bc(db=path)
    ws = s2.ws("/?id=r")
    w, _ = ws.join()
    assert w["count"] == 1
    ws.close()


def test_env_twins_of_the_storage_flags_apply(bc, tmp_path):
    """WS_MAX_DB_SIZE and WS_MAX_WELCOME reach the server like their flags."""
    env = {"WS_MAX_DB_SIZE": "128k", "WS_MAX_WELCOME": "2k"}
    s = bc("--rate-limit", "0", "--history-size", "100000", "--max-message", "64k", env=env)
    assert "welcome_max=2048" in s.log_text()
    ws = s.ws("/?id=env")
    ws.join()
    for i in range(64):
        ws.send_text("e" * 8000)
        m = ws.recv_json()
        if m["type"] == "error":
            assert m["error"] == "Message not stored: storage full"
            break
    else:
        raise AssertionError("128k never filled")
    ws.close()


# --------------------------------------------------------------------------
# bad flags

BAD_FLAGS = [
    (["--history-size", "-1"], "history-size"),
    (["--history-size", "abc"], "history-size"),
    (["--history-size", "1000001"], "history-size"),
    (["--history-on-join", "-5"], "history-on-join"),
    (["--max-rooms", "0"], "max-rooms"),
    (["--max-room-members", "-1"], "max-room-members"),
    (["--max-chat-message", "0"], "max-chat-message"),
    (["--max-chat-message", "lots"], "max-chat-message"),
    (["--max-welcome", "100"], "max-welcome"),
    (["--max-welcome", "2g"], "max-welcome"),
    (["--room-expiry", "-1"], "room-expiry"),
    (["--room-expiry", "soon"], "room-expiry"),
    (["--max-stored-rooms", "0"], "max-stored-rooms"),
    (["--max-memberships", "0"], "max-memberships"),
    (["--max-db-size", "1k"], "max-db-size"),
    (["--max-db-size", "big"], "max-db-size"),
    (["--max-fanout", "-1"], "max-fanout"),
    (["--rate-limit", "-1"], "rate-limit"),
    (["--send-queue", "1x"], "send-queue"),
    (["--port", "70000"], "port"),
    (["--bogus"], "bogus"),
    (["--db"], "db"),
]


@pytest.mark.parametrize("flags,name", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flag_exit_100_one_line(binary, tmp_path, flags, name):
    db = tmp_path / "never.db"
    args = (["--db", str(db)] if flags != ["--db"] else []) + flags
    rc, out, err, vtext = run_once(args, tmp_path=tmp_path)
    assert rc == EXIT_USAGE, "exit %r, stderr %r" % (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, "one line expected: %r" % err
    assert name in lines[0], lines[0]
    assert out == ""
    assert not db.exists(), "a database was created despite the bad flag"
    assert not sanitizer_findings(err + vtext)


@pytest.mark.parametrize("var,value", [("WS_HISTORY_SIZE", "-1"), ("WS_MAX_ROOMS", "many"),
                                       ("WS_MAX_WELCOME", "1"), ("WS_ROOM_EXPIRY", "x"),
                                       ("WS_MAX_STORED_ROOMS", "0"), ("WS_MAX_MEMBERSHIPS", "-3"),
                                       ("WS_MAX_DB_SIZE", "10"), ("WS_MAX_FANOUT", "lots")])
def test_bad_env_value_exit_100(binary, tmp_path, var, value):
    db = tmp_path / "never.db"
    rc, out, err, _ = run_once(["--db", str(db)], env={var: value}, tmp_path=tmp_path)
    assert rc == EXIT_USAGE, (rc, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and var in lines[0], err
    assert not db.exists()


def test_help_lists_broadcast_flags(binary, tmp_path):
    rc, out, err, _ = run_once(["--help"], tmp_path=tmp_path)
    assert rc == 0
    for flag in ("--db", "--history-size", "--history-on-join", "--max-rooms",
                 "--max-room-members", "--max-chat-message", "--max-welcome", "--room-expiry",
                 "--max-stored-rooms", "--max-memberships", "--max-db-size", "--max-fanout"):
        assert flag in out, flag
