"""Fan-out: 1,000 members of one room each receive every message of a
10,000-message run, in the same order, with no loss and no duplicates.

10M deliveries are too many to JSON-decode in Python within a minute, so:
- the sender's connection is parsed frame by frame: its stream after the
  last join must be exactly messages seq 1..N with the texts it sent, in order;
- every receiver's stream after its joins must be byte-identical to that
  (same length, same SHA-1), and holds exactly N message frames (counted);
- a random sample of receivers keeps its bytes and is parsed frame by frame
  too, checking the seq sequence directly.
The sender is paced by the slowest receiver (a window of messages in flight)
so that the server's per-member send queue is never the thing under test.
"""

import asyncio
import hashlib
import json
import os
import random
import time

import pytest

from bchelp import presence_events
from lib.http import accept_for, upgrade_request
from lib.proc import raise_nofile, t
from lib.wsclient import OP_TEXT, client_frame, parse_frame

N_RECEIVERS = int(os.environ.get("BC_FANOUT_RECEIVERS", "1000"))
N_MESSAGES = int(os.environ.get("BC_FANOUT_MESSAGES", "10000"))
SAMPLE = 25
WINDOW = 1500          # messages in flight beyond the slowest receiver
MSG_MARK = b'{"type":"message"'
END_TEXT = "END"


def text_of(i):
    return END_TEXT if i == N_MESSAGES else "m%05d" % i


class Receiver(asyncio.Protocol):
    def __init__(self, key, keep):
        self.key = key
        self.keep = keep
        self.state = "handshake"
        self.pre = bytearray()
        self.hash = hashlib.sha1()
        self.nbytes = 0
        self.count = 0         # message frames seen (by their JSON prefix)
        self.tail = b""
        self.kept = bytearray() if keep else None
        self.done = asyncio.get_running_loop().create_future()
        self.joined = asyncio.get_running_loop().create_future()
        self.transport = None
        self.error = None

    def connection_made(self, transport):
        self.transport = transport

    def fail(self, why):
        if not self.done.done():
            self.done.set_exception(AssertionError(why))
        if not self.joined.done():
            self.joined.set_exception(AssertionError(why))

    def data_received(self, data):
        if self.state == "handshake":
            self.pre += data
            i = self.pre.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(self.pre[:i])
            if not head.startswith(b"HTTP/1.1 101 ") or accept_for(self.key).encode() not in head:
                return self.fail("bad handshake: %r" % head)
            data = bytes(self.pre[i + 4:])
            self.pre = bytearray()
            self.state = "pre"
            self.joined.set_result(True)
        if self.state == "pre":
            self.pre += data
            i = self.pre.find(MSG_MARK)
            if i < 0:
                return
            # the first message frame: header is 2 bytes (< 126) or 4 bytes
            if i >= 2 and self.pre[i - 2] == 0x81 and self.pre[i - 1] < 126:
                start = i - 2
            elif i >= 4 and self.pre[i - 4] == 0x81 and self.pre[i - 3] == 126:
                start = i - 4
            else:
                return self.fail("cannot find the first message frame header")
            data = bytes(self.pre[start:])
            self.pre = bytes(self.pre[:start])       # welcome + joins, kept for checks
            self.state = "msgs"
        if self.state == "msgs":
            self.hash.update(data)
            self.nbytes += len(data)
            if self.kept is not None:
                self.kept += data
            # count message frames; the mark cannot straddle two reads unseen:
            # look at the last len(MSG_MARK)-1 bytes of before plus this read
            window = self.tail + data
            self.count += window.count(MSG_MARK)
            self.tail = window[-(len(MSG_MARK) - 1):]
            if self.count >= N_MESSAGES and data.endswith(b"}") and not self.done.done():
                self.done.set_result(True)

    def connection_lost(self, exc):
        self.fail("connection lost after %d messages (%r)" % (self.count, exc))


def parse_stream(data):
    """Frames of a server byte stream: list of (opcode, payload)."""
    out, pos = [], 0
    while pos < len(data):
        f = parse_frame(data, pos)
        assert f is not None, "truncated frame at %d of %d" % (pos, len(data))
        fin, op, payload, pos = f
        assert fin
        out.append((op, payload))
    return out


@pytest.mark.heavy
@pytest.mark.ws_timeout(150)
def test_fanout_1000_clients_10000_messages(bc):
    nofile = raise_nofile()
    assert nofile > N_RECEIVERS + 100, "fd limit %d too small" % nofile
    s = bc("--rate-limit", "0", "--ping-interval", "0", "--history-on-join", "0")
    room = "fanout"
    rng = random.Random(7)
    sample = set(rng.sample(range(N_RECEIVERS), min(SAMPLE, N_RECEIVERS)))
    timing = {}

    async def main():
        loop = asyncio.get_running_loop()
        # the sender: an ordinary stream client, parsed fully
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port, limit=1 << 22)
        req, key = upgrade_request("/?id=%s&user=sender" % room)
        writer.write(req)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), t(10))
        assert head.startswith(b"HTTP/1.1 101 "), head
        sbuf = bytearray()
        sender_frames = []                   # (op, payload, raw bytes) after the full join

        async def next_frame():
            while True:
                f = parse_frame(sbuf)
                if f is not None:
                    raw = bytes(sbuf[:f[3]])
                    del sbuf[:f[3]]
                    return f[1], f[2], raw
                chunk = await asyncio.wait_for(reader.read(1 << 20), t(30))
                assert chunk, "the server closed the sender"
                sbuf.extend(chunk)

        op, payload, _ = await next_frame()
        assert json.loads(payload)["type"] == "welcome"

        # the receivers
        t0 = time.monotonic()
        receivers = []

        async def connect(i):
            req, key = upgrade_request("/?id=%s&user=r%d" % (room, i))
            r = Receiver(key, i in sample)
            await asyncio.wait_for(loop.create_connection(lambda: r, "127.0.0.1", s.port), t(20))
            r.transport.write(req)
            await asyncio.wait_for(r.joined, t(20))
            receivers.append(r)

        for base in range(0, N_RECEIVERS, 100):
            await asyncio.gather(*(connect(i) for i in range(base, min(N_RECEIVERS,
                                                                         base + 100))))
        # wait (on the sender's stream) for the last join: count = receivers + sender
        for _ in range(N_RECEIVERS + 1):
            op, payload, _ = await next_frame()
            m = json.loads(payload)
            assert m["type"] in ("join", "presence") and "left" not in m, m
            if m["count"] == N_RECEIVERS + 1:
                break
        else:
            raise AssertionError("never saw count %d" % (N_RECEIVERS + 1))
        timing["connect"] = time.monotonic() - t0

        # send, paced by the slowest receiver
        t1 = time.monotonic()
        sent = 0
        deadline = time.monotonic() + t(100)

        async def reader_task():
            for _ in range(N_MESSAGES):
                sender_frames.append(await next_frame())

        rtask = asyncio.create_task(reader_task())
        while sent < N_MESSAGES:
            slowest = min(r.count for r in receivers)
            if sent - slowest >= WINDOW:
                assert time.monotonic() < deadline, "receivers stalled at %d" % slowest
                for r in receivers:
                    if r.done.done() and r.done.exception():
                        raise r.done.exception()
                await asyncio.sleep(0.002)
                continue
            batch = min(200, N_MESSAGES - sent)
            writer.write(b"".join(client_frame(OP_TEXT, text_of(i))
                                  for i in range(sent + 1, sent + batch + 1)))
            sent += batch
            await writer.drain()
        await asyncio.wait_for(rtask, t(60))
        left = max(1.0, deadline - time.monotonic())
        await asyncio.wait_for(asyncio.gather(*(r.done for r in receivers)), left)
        timing["send+deliver"] = time.monotonic() - t1

        for r in receivers:
            r.transport.abort()
        writer.close()
        return receivers, sender_frames

    receivers, sender_frames = asyncio.run(main())

    # the sender's own stream: exactly the messages, in order, seq 1..N
    assert len(sender_frames) == N_MESSAGES
    ref = hashlib.sha1()
    nbytes = 0
    for i, (op, payload, raw) in enumerate(sender_frames, 1):
        assert op == OP_TEXT
        m = json.loads(payload)
        assert m["type"] == "message" and m["seq"] == i and m["text"] == text_of(i), m
        assert m["from"] == "sender" and m["room"] == room
        ref.update(raw)
        nbytes += len(raw)
    digest = ref.hexdigest()

    assert len(receivers) == N_RECEIVERS
    bad = []
    for r in receivers:
        if r.count != N_MESSAGES or r.nbytes != nbytes or r.hash.hexdigest() != digest:
            bad.append((r.count, r.nbytes, r.hash.hexdigest()))
        # before the messages: the welcome then joins only
        pre = parse_stream(r.pre)
        assert json.loads(pre[0][1])["type"] == "welcome"
        assert all(e["type"] == "join" for _, p in pre[1:]
                   for e in presence_events(json.loads(p)))
        assert all(presence_events(json.loads(p)) for _, p in pre[1:])
    assert not bad, "%d receivers differ from the sender's stream (%d messages, %d bytes): %r" \
        % (len(bad), N_MESSAGES, nbytes, bad[:5])
    for r in receivers:
        if r.kept is not None:
            seqs = [json.loads(p)["seq"] for _, p in parse_stream(r.kept)]
            assert seqs == list(range(1, N_MESSAGES + 1))
    print("fan-out: %d receivers x %d messages; connect %.1fs, send+deliver %.1fs "
          "(%.0f deliveries/s)" % (N_RECEIVERS, N_MESSAGES, timing["connect"],
                                   timing["send+deliver"],
                                   N_RECEIVERS * N_MESSAGES / timing["send+deliver"]))
