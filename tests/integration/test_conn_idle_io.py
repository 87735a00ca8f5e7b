"""An idle connection drops its busy state (common/conn.c: struct
ws_conn_io, freed by the sweep after 2 s without input) only when nothing
is lost: a message half received, a header split across reads, or a rate
bucket not yet full again must survive the quiet spell. Each test idles
past the trim (2 s, the sweep runs every second) and checks what the
connection remembered."""

import time

import pytest

import wsraw  # noqa: E402
from wsraw import OP_BINARY, OP_CONT, OP_TEXT, build_frame, t  # noqa: E402

IDLE_PAST_TRIM = 3.5  # TRIM_AFTER_MS (2 s) plus one sweep period (1 s) plus slack


def echoes(c, n, timeout):
    """Payloads of the data messages that come back within timeout (at most n)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        try:
            op, data = c.recv_message(timeout=max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        if op is None:
            break
        if op in (OP_TEXT, OP_BINARY):
            got.append(data)
    return got


def test_a_message_half_received_survives_an_idle_spell(server):
    srv = server("ws-echo")
    c = wsraw.connect(srv.port)
    c.send_frame(OP_TEXT, b"first half ", fin=False)
    time.sleep(IDLE_PAST_TRIM)  # not readiness: the quiet spell is what is tested
    c.send_frame(OP_CONT, b"second half", fin=True)
    op, data = c.recv_message(timeout=5)
    assert (op, data) == (OP_TEXT, b"first half second half")


def test_a_frame_header_split_across_an_idle_spell_is_kept(server):
    srv = server("ws-echo")
    c = wsraw.connect(srv.port)
    frame = build_frame(OP_BINARY, b"x" * 300)  # 16-bit length: an 8-byte masked header
    c.send(frame[:3])
    time.sleep(IDLE_PAST_TRIM)
    c.send(frame[3:])
    op, data = c.recv_message(timeout=5)
    assert (op, data) == (OP_BINARY, b"x" * 300)


@pytest.mark.ws_timeout(60)
def test_a_rate_bucket_not_yet_full_is_not_reset_by_an_idle_spell(server):
    """--rate-limit 1 --rate-burst 20: drain the bucket, idle ~3.5 s (about
    3-4 tokens back, far from 20), then send 15: only a few may pass. A
    connection that forgot its bucket while idle would echo all 15."""
    srv = server("ws-echo", "--rate-limit", "1", "--rate-burst", "20")
    c = wsraw.connect(srv.port)
    for i in range(20):
        c.send_frame(OP_TEXT, b"a%d" % i)
    assert len(echoes(c, 20, t(5))) == 20
    idle_from = time.monotonic()
    time.sleep(IDLE_PAST_TRIM)
    for i in range(15):
        c.send_frame(OP_TEXT, b"b%d" % i)
    got = echoes(c, 15, 1.0)
    refilled = time.monotonic() - idle_from
    print("after %.1f s idle: %d of 15 echoed" % (refilled, len(got)))
    assert 1 <= len(got) <= int(refilled) + 2, got
