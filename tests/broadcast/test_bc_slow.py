"""A member that stops reading is cut off (1008 "slow consumer") while the
rest of the room gets everything, and the server's memory stays bounded."""

import socket
import struct
import threading
import time

import pytest

from bchelp import BINARY, presence_events
from lib.http import accept_for, upgrade_request
from lib.proc import t
from lib.wsclient import OP_CLOSE, OP_TEXT, parse_frame

N_MESSAGES = 4000
TEXT_SIZE = 8000           # ~32 MB of chat in all, far past any socket buffer
RSS_LIMIT_KIB = 100 * 1024


def _is_asan():
    try:
        with open(BINARY, "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


ASAN = _is_asan()


def metric(s, name):
    status, _, body = s.get("/metrics")
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no metric %s" % name)


def connect_slow(port, path):
    """A raw client with a small receive buffer that reads the 101 and nothing after."""
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(t(10))
    slow.connect(("127.0.0.1", port))
    req, key = upgrade_request(path)
    slow.sendall(req)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = slow.recv(1)                      # byte by byte: leave the frames unread
        assert chunk, "closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 ") and accept_for(key).encode() in head
    return slow


@pytest.mark.heavy
@pytest.mark.ws_timeout(90)
@pytest.mark.parametrize("n_slow", [1, 20])
def test_slow_reader_cut_off_others_get_everything(bc, n_slow):
    s = bc("--rate-limit", "0", "--send-queue", "64k", "--max-message", "16k",
           "--ping-interval", "0")
    room = "busy"
    slows = [connect_slow(s.port, "/?id=%s&user=slow%d" % (room, i)) for i in range(n_slow)]

    sender = s.ws("/?id=%s&user=sender" % room)
    reader = s.ws("/?id=%s&user=reader" % room)
    sender.join()
    reader.join()
    assert sender.recv_json()["id"] == "reader"
    assert s.get_json("/rooms/%s" % room)["count"] == n_slow + 2

    rss_max = [s.rss_kib()]
    stop = threading.Event()

    def sample_rss():
        while not stop.is_set():
            rss_max[0] = max(rss_max[0], s.rss_kib())
            stop.wait(0.02)

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()

    got = {"sender": [], "reader": []}
    events = {"sender": [], "reader": []}
    errors = []

    def consume(name, ws):
        try:
            while len(got[name]) < N_MESSAGES:
                m = ws.recv(timeout=30)
                assert m.kind == "text", m
                if m.obj["type"] == "message":
                    got[name].append(m.obj["seq"])
                else:
                    events[name].extend(presence_events(m.obj) or [m.obj])
        except BaseException as e:  # noqa: B902 - reported by the main thread
            errors.append((name, e))

    threads = [threading.Thread(target=consume, args=(n, w), daemon=True)
               for n, w in (("sender", sender), ("reader", reader))]
    for th in threads:
        th.start()
    pad = "p" * TEXT_SIZE
    t0 = time.monotonic()
    deadline = t0 + t(60)
    for i in range(1, N_MESSAGES + 1):
        # keep the sender itself within its send queue: at most ~5 unread messages
        while i - len(got["sender"]) > 5 and not errors:
            assert time.monotonic() < deadline, "sender's echo stalled at %d" % len(got["sender"])
            time.sleep(0.0005)
        assert not errors, errors
        sender.send_text("%d:%s" % (i, pad))
    for th in threads:
        th.join(t(60))
    stop.set()
    sampler.join(t(5))
    assert not errors, errors
    # the others got everything, in order
    assert got["sender"] == list(range(1, N_MESSAGES + 1))
    assert got["reader"] == list(range(1, N_MESSAGES + 1))
    assert metric(s, "ws_slow_consumers_total") == n_slow
    # ... and see the slow ones leave: at once, or when the server gives up on
    # the close handshake (they never read the close frame)
    leaves = [e for e in events["reader"] if e["type"] == "leave"]
    while len(leaves) < n_slow:
        more = presence_events(reader.recv_json(timeout=15))
        assert more and all(e["type"] == "leave" for e in more), more
        leaves += more
    assert sorted(e["id"] for e in leaves) == sorted("slow%d" % i for i in range(n_slow))
    assert [e["count"] for e in leaves] == list(range(n_slow + 1, 1, -1))
    assert s.get_json("/rooms/%s" % room)["count"] == 2
    assert sorted(s.get_json("/rooms/%s" % room)["members"]) == ["reader", "sender"]
    if ASAN:
        print("ASan build: VmRSS (max %d KiB) includes ASan's quarantine; bound not checked"
              % rss_max[0])
    else:
        assert rss_max[0] < RSS_LIMIT_KIB, "server VmRSS reached %d KiB" % rss_max[0]

    # the slow ones, reading now: whatever was queued, then close 1008
    # "slow consumer", or the TCP connection is simply gone
    closes = [read_to_end(slow) for slow in slows]
    sender.close()
    reader.close()
    print("slow readers: %d; %d x %d B in %.1fs, max VmRSS %d KiB, closes %r"
          % (n_slow, N_MESSAGES, TEXT_SIZE, time.monotonic() - t0, rss_max[0], set(closes)))


def read_to_end(slow):
    buf = bytearray()
    close = None
    slow.settimeout(t(10))
    end = time.monotonic() + t(20)
    eof = False
    while time.monotonic() < end and close is None and not eof:
        try:
            chunk = slow.recv(1 << 20)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError("the slow reader is still connected (no close, no EOF)")
        if not chunk:
            eof = True
        buf += chunk
        pos = 0
        while True:
            f = parse_frame(buf, pos)
            if f is None:
                break
            fin, op, payload, pos = f
            if op == OP_CLOSE:
                close = (struct.unpack("!H", payload[:2])[0], payload[2:])
                break
            assert op == OP_TEXT
        del buf[:pos]
    assert close is not None or eof, "the slow reader was not cut off"
    if close is not None:
        assert close == (1008, b"slow consumer"), close
    slow.close()
    return close
