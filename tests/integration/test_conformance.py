"""RFC 6455 conformance of ws-echo, Autobahn-style, over raw sockets.

Each test sends exact bytes with wsraw's frame builder and checks the
outcome RFC 6455 and docs/configuration.md require. "Expects close X" also
means the server then closes the TCP connection (EOF or RST) in time.
"""

import os
import socket
import struct
import time

import pytest

from wsraw import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT,
                   RawClient, accept_for, build_frame, close_payload, connect,
                   frame_header, http_request, t, upgrade_status)

PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
TOO_BIG = 1009


@pytest.fixture
def ws(echo):
    return connect(echo.port)


def payload_for(opcode, size):
    if opcode == OP_TEXT:
        return (b"abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:size]
    return os.urandom(size)


def fragments(opcode, pieces, **kw):
    """Frames for one message made of `pieces` (FIN only on the last)."""
    out = b""
    for i, p in enumerate(pieces):
        op = opcode if i == 0 else OP_CONT
        out += build_frame(op, p, fin=(i == len(pieces) - 1), **kw)
    return out


def split(data, n):
    size = max(1, -(-len(data) // n))
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def assert_still_serving(port):
    c = connect(port)
    c.echo(OP_TEXT, b"still alive")
    c.close()


# =============================================================================
# 1. framing

SIZES = [0, 125, 126, 127, 65535, 65536, 1 << 20]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_echo_sizes(ws, opcode, size):
    ws.echo(opcode, payload_for(opcode, size), timeout=15)


@pytest.mark.parametrize("size,hdr_len", [(0, 2), (125, 2), (126, 4), (65535, 4),
                                          (65536, 10), (100000, 10)])
def test_server_uses_minimal_length_encoding(ws, size, hdr_len):
    """Our 7/16/64-bit encodings are accepted and the echo's header uses the
    minimal encoding (RFC 6455 5.2)."""
    ws.send_binary(os.urandom(size))
    f = ws.recv_frame(timeout=10)
    assert f is not None and f.opcode == OP_BINARY
    if f.fin:
        assert len(f.payload) == size
        assert len(ws.last_header) == hdr_len, (
            "echo of %d bytes used a %d-byte header" % (size, len(ws.last_header)))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64, 1000])
def test_frame_split_across_tcp_writes(ws, chunk):
    payload = payload_for(OP_TEXT, 300)
    ws.send_slowly(build_frame(OP_TEXT, payload), chunk)
    ws.expect_message(OP_TEXT, payload)


def test_16bit_header_split_one_byte_at_a_time(ws):
    payload = os.urandom(1000)
    frame = build_frame(OP_BINARY, payload)
    ws.send_slowly(frame[:8], 1)  # 2 + 2 (length) + 4 (mask) one byte each
    ws.send(frame[8:])
    ws.expect_message(OP_BINARY, payload)


def test_64bit_frame_in_many_writes(ws):
    payload = os.urandom(70000)
    frame = build_frame(OP_BINARY, payload)
    ws.send_slowly(frame[:14], 1)
    ws.send_slowly(frame[14:], 997)
    ws.expect_message(OP_BINARY, payload, timeout=10)


def test_several_frames_split_at_odd_points(ws):
    msgs = [payload_for(OP_TEXT, n) for n in (10, 200, 0, 70000, 3)]
    data = b"".join(build_frame(OP_TEXT, m) for m in msgs)
    ws.send_slowly(data, 4099)
    for m in msgs:
        ws.expect_message(OP_TEXT, m, timeout=10)


def test_many_frames_in_one_write(ws):
    msgs = [("msg %d " % i).encode() * (i % 7) for i in range(100)]
    ws.send(b"".join(build_frame(OP_TEXT, m) for m in msgs))
    for m in msgs:
        ws.expect_message(OP_TEXT, m)


def test_many_large_frames_in_one_write(ws):
    msgs = [os.urandom(70000) for _ in range(10)]
    ws.send(b"".join(build_frame(OP_BINARY, m) for m in msgs))
    for m in msgs:
        ws.expect_message(OP_BINARY, m, timeout=10)


def test_zero_mask_key_is_valid(ws):
    ws.echo(OP_TEXT, b"masked with zeros", mask_key=b"\0\0\0\0")


def test_binary_payload_need_not_be_utf8(ws):
    ws.echo(OP_BINARY, b"\xff\xfe\xed\xa0\x80\xc0\xaf")


# =============================================================================
# 2. pings and pongs

@pytest.mark.parametrize("payload", [b"", b"hello", bytes(range(125)), b"\xff\x00\xed\xa0\x80"],
                         ids=["empty", "text", "125-bytes", "binary"])
def test_ping_answered_with_pong_same_payload(ws, payload):
    ws.send_frame(OP_PING, payload)
    op, data = ws.recv_message()
    assert op == OP_PONG, "expected a pong, got opcode %r" % op
    assert data == payload


def test_several_pings_in_one_write_all_answered(ws):
    payloads = [("ping-%d" % i).encode() for i in range(5)]
    ws.send(b"".join(build_frame(OP_PING, p) for p in payloads))
    for p in payloads:
        op, data = ws.recv_message()
        assert (op, data) == (OP_PONG, p), "missing or out-of-order pong for %r" % p


def test_pings_and_messages_in_one_write(ws):
    ws.send(build_frame(OP_PING, b"p1") + build_frame(OP_TEXT, b"t1")
            + build_frame(OP_PING, b"p2") + build_frame(OP_BINARY, b"b1"))
    got = [ws.recv_message() for _ in range(4)]
    assert [d for o, d in got if o == OP_PONG] == [b"p1", b"p2"]
    assert [(o, d) for o, d in got if o != OP_PONG] == [(OP_TEXT, b"t1"), (OP_BINARY, b"b1")]


def test_ping_payload_126_is_protocol_error(ws):
    ws.send_frame(OP_PING, b"x" * 126)
    ws.expect_close(PROTOCOL_ERROR)


def test_pong_payload_126_is_protocol_error(ws):
    ws.send_frame(OP_PONG, b"x" * 126)
    ws.expect_close(PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [OP_PING, OP_PONG, OP_CLOSE], ids=["ping", "pong", "close"])
def test_fragmented_control_frame_is_protocol_error(ws, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"frag"
    ws.send_frame(opcode, payload, fin=False)
    ws.send_frame(OP_CONT, b"ment")
    ws.expect_close(PROTOCOL_ERROR)


def test_unsolicited_pong_ignored(ws):
    ws.send_frame(OP_PONG, b"unsolicited")
    ws.send_frame(OP_PONG, b"")
    ws.send_frame(OP_PONG, b"y" * 125)
    ws.send_text(b"after pongs")
    ws.expect_message(OP_TEXT, b"after pongs")


# =============================================================================
# 3. fragmentation

@pytest.mark.parametrize("pieces", [2, 3, 10, 100, 1000])
@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_fragmented_message_reassembled(ws, opcode, pieces):
    payload = payload_for(opcode, 5000)
    ws.send(fragments(opcode, split(payload, pieces)))
    ws.expect_message(opcode, payload, timeout=10)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_fragments_in_separate_writes(ws, opcode):
    payload = payload_for(opcode, 3000)
    for i, p in enumerate(split(payload, 7)):
        ws.send_frame(opcode if i == 0 else OP_CONT, p, fin=(i == 6))
    ws.expect_message(opcode, payload)


def test_fragments_with_empty_pieces(ws):
    ws.send(fragments(OP_TEXT, [b"", b"abc", b"", b"def", b""]))
    ws.expect_message(OP_TEXT, b"abcdef")


def test_message_of_only_empty_fragments(ws):
    ws.send(fragments(OP_BINARY, [b"", b"", b""]))
    ws.expect_message(OP_BINARY, b"")


def test_pings_interleaved_between_fragments_one_write(ws):
    ws.send(build_frame(OP_TEXT, b"Hello, ", fin=False)
            + build_frame(OP_PING, b"p1")
            + build_frame(OP_CONT, b"World", fin=False)
            + build_frame(OP_PING, b"p2")
            + build_frame(OP_CONT, b"!", fin=True))
    assert ws.recv_message() == (OP_PONG, b"p1")
    assert ws.recv_message() == (OP_PONG, b"p2")
    ws.expect_message(OP_TEXT, b"Hello, World!")


def test_ping_between_fragments_answered_before_message_ends(ws):
    """The pong must come while the message is still incomplete."""
    ws.send_frame(OP_BINARY, b"part1", fin=False)
    ws.send_frame(OP_PING, b"mid-message")
    assert ws.recv_message() == (OP_PONG, b"mid-message")
    ws.send_frame(OP_CONT, b"part2", fin=True)
    ws.expect_message(OP_BINARY, b"part1part2")


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "nofin"])
def test_continuation_without_start_is_protocol_error(ws, fin):
    ws.send_frame(OP_CONT, b"orphan", fin=fin)
    ws.expect_close(PROTOCOL_ERROR)


def test_continuation_after_complete_message_is_protocol_error(ws):
    ws.send(build_frame(OP_TEXT, b"complete") + build_frame(OP_CONT, b"orphan"))
    f, before = ws.expect_close(PROTOCOL_ERROR, allow=(OP_TEXT,))
    assert [b.payload for b in before] in ([], [b"complete"])


@pytest.mark.parametrize("first,second,second_fin", [
    (OP_TEXT, OP_TEXT, True), (OP_TEXT, OP_BINARY, False), (OP_BINARY, OP_TEXT, True),
    (OP_BINARY, OP_BINARY, False)], ids=["text-text", "text-binary", "binary-text", "binary-binary"])
def test_new_data_frame_during_fragmented_message_is_protocol_error(ws, first, second, second_fin):
    ws.send_frame(first, b"start", fin=False)
    ws.send_frame(second, b"intruder", fin=second_fin)
    ws.expect_close(PROTOCOL_ERROR)


# =============================================================================
# 4. reserved bits and opcodes, masking

@pytest.mark.parametrize("rsv", range(1, 8))
def test_reserved_bits_on_text_are_protocol_error(ws, rsv):
    ws.send_frame(OP_TEXT, b"rsv", rsv=rsv)
    ws.expect_close(PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [OP_BINARY, OP_PING, OP_CLOSE], ids=["binary", "ping", "close"])
def test_reserved_bit_on_other_frames_is_protocol_error(ws, opcode):
    payload = close_payload(1000) if opcode == OP_CLOSE else b"rsv"
    ws.send_frame(opcode, payload, rsv=4)
    ws.expect_close(PROTOCOL_ERROR)


def test_reserved_bit_on_continuation_is_protocol_error(ws):
    ws.send_frame(OP_TEXT, b"first", fin=False)
    ws.send_frame(OP_CONT, b"second", rsv=2)
    ws.expect_close(PROTOCOL_ERROR)


def test_reserved_bits_after_valid_message_then_ping(ws):
    """Autobahn 3.3: echo, then the bad frame fails the connection; the ping
    after it in the same write is not answered."""
    ws.send(build_frame(OP_TEXT, b"good") + build_frame(OP_TEXT, b"bad", rsv=3)
            + build_frame(OP_PING, b"never"))
    f, before = ws.expect_close(PROTOCOL_ERROR, allow=(OP_TEXT,))
    assert [b.payload for b in before] in ([], [b"good"])


RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=[hex(o) for o in RESERVED_OPCODES])
def test_reserved_opcode_is_protocol_error(ws, opcode):
    ws.send_frame(opcode, b"")
    ws.expect_close(PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [5, 0xD], ids=["0x5", "0xd"])
def test_reserved_opcode_with_payload_after_valid_message(ws, opcode):
    ws.send(build_frame(OP_TEXT, b"good") + build_frame(opcode, b"reserved payload")
            + build_frame(OP_PING, b"never"))
    f, before = ws.expect_close(PROTOCOL_ERROR, allow=(OP_TEXT,))
    assert [b.payload for b in before] in ([], [b"good"])


@pytest.mark.parametrize("opcode,payload", [
    (OP_TEXT, b"unmasked"), (OP_BINARY, b"unmasked"), (OP_TEXT, b""),
    (OP_PING, b"unmasked"), (OP_CLOSE, close_payload(1000))],
    ids=["text", "binary", "empty-text", "ping", "close"])
def test_unmasked_client_frame_is_protocol_error(ws, opcode, payload):
    ws.send_frame(opcode, payload, mask=False)
    ws.expect_close(PROTOCOL_ERROR)


# =============================================================================
# 5. UTF-8

VALID_UTF8 = {
    "ascii": "Hello, World",
    "latin": "Hello-µ@ßöäüàá-UTF-8!!",
    "greek": "κόσμε",
    "3-byte": "€ ≠ ∞ 日本語",
    "4-byte": "\U0001F600 \U00010000 \U0010FFFF",
    "boundaries": "\u0000\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\uffff",
    "bom": "\ufeffbom",
}


@pytest.mark.parametrize("name", list(VALID_UTF8))
def test_valid_utf8_echoed(ws, name):
    ws.echo(OP_TEXT, VALID_UTF8[name].encode("utf-8"))


INVALID_UTF8 = {
    "lone-ff": b"\xff",
    "lone-fe": b"\xfe",
    "lone-continuation": b"\x80",
    "continuations": b"\x80\xbf\x80",
    "truncated-2": b"\xc3",
    "truncated-3": b"\xe2\x82",
    "truncated-4": b"\xf0\x9f\x98",
    "lead-then-ascii": b"Hello\xc3(World",
    "overlong-2-slash": b"\xc0\xaf",
    "overlong-2-nul": b"\xc0\x80",
    "overlong-2-max": b"\xc1\xbf",
    "overlong-3-slash": b"\xe0\x80\xaf",
    "overlong-3-max": b"\xe0\x9f\xbf",
    "overlong-4-slash": b"\xf0\x80\x80\xaf",
    "overlong-4-max": b"\xf0\x8f\xbf\xbf",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "lead-f5": b"\xf5\x80\x80\x80",
    "lead-f7": b"\xf7\xbf\xbf\xbf",
    "5-byte": b"\xf8\x88\x80\x80\x80",
    "6-byte": b"\xfc\x84\x80\x80\x80\x80",
    "invalid-in-middle": "κόσμε".encode() + b"\xed\xa0\x80" + b"edited",
    "valid-then-bad-at-end": b"valid text \xe2\x82",
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_text_closes_1007(ws, name):
    ws.send_text(INVALID_UTF8[name])
    ws.expect_close(INVALID_DATA)


def test_invalid_utf8_one_byte_per_fragment_closes_1007(ws):
    bad = "κόσμε".encode() + b"\xed\xa0\x80" + b"edited"
    ws.send(fragments(OP_TEXT, [bad[i:i + 1] for i in range(len(bad))]))
    ws.expect_close(INVALID_DATA)


@pytest.mark.parametrize("first,second", [
    (b"abc\xff", None),
    ("κόσμε".encode(), "κόσμε".encode() + b"\xf4\x90\x80\x80"),
    (b"abc\xed", b"\xa0\x80more"),
    (b"ok \xf0\x9f", b"\x98\x80\xc0\xaf"),
], ids=["first-fragment", "second-fragment", "surrogate-across-boundary",
        "bad-after-split-codepoint"])
def test_invalid_utf8_in_fragment_fails_fast(ws, first, second):
    """The server must close 1007 before the final fragment is sent."""
    ws.send_frame(OP_TEXT, first, fin=False)
    if second is not None:
        ws.send_frame(OP_CONT, second, fin=False)
    # No final fragment: the close must come anyway.
    ws.expect_close(INVALID_DATA)


def test_truncated_code_point_at_message_end_closes_1007(ws):
    ws.send(fragments(OP_TEXT, [b"abc\xe2\x82", b""]))
    ws.expect_close(INVALID_DATA)


@pytest.mark.parametrize("text,cuts", [
    ("\U0001F600", [1]), ("\U0001F600", [2]), ("\U0001F600", [3]), ("\U0001F600", [1, 2, 3]),
    ("aκb", [2]), ("€uro", [1]), ("€uro", [2]), ("x\U0010FFFFy", [2, 4]),
], ids=["4b-1+3", "4b-2+2", "4b-3+1", "4b-1+1+1+1", "2b-split", "3b-1+2", "3b-2+1",
        "max-codepoint"])
def test_code_point_split_across_fragments_is_valid(ws, text, cuts):
    data = text.encode("utf-8")
    bounds = [0] + cuts + [len(data)]
    ws.send(fragments(OP_TEXT, [data[a:b] for a, b in zip(bounds, bounds[1:])]))
    ws.expect_message(OP_TEXT, data)


def test_code_point_split_across_fragments_in_separate_writes(ws):
    data = "\U0001F600".encode()
    ws.send_frame(OP_TEXT, data[:2], fin=False)
    ws.send_frame(OP_PING, b"between")
    assert ws.recv_message() == (OP_PONG, b"between")
    ws.send_frame(OP_CONT, data[2:], fin=True)
    ws.expect_message(OP_TEXT, data)


# =============================================================================
# 6. close

def test_close_without_payload(ws):
    ws.send_close()
    f, _ = ws.expect_close((None, 1000), allow=())


VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999]


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_close_valid_code_echoed(ws, code):
    ws.send_close(code)
    ws.expect_close(code, allow=())


@pytest.mark.parametrize("code", [1000, 3000])
def test_close_with_reason_code_echoed(ws, code):
    ws.send_close(code, "bye, κόσμε")
    ws.expect_close(code, allow=())


def test_close_payload_125_bytes_ok(ws):
    ws.send_close(1000, b"r" * 123)
    ws.expect_close(1000, allow=())


INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", INVALID_CLOSE_CODES)
def test_close_invalid_code_is_protocol_error(ws, code):
    ws.send_close(code)
    ws.expect_close(PROTOCOL_ERROR, allow=())


def test_close_one_byte_payload_is_protocol_error(ws):
    ws.send_frame(OP_CLOSE, b"\x03")
    ws.expect_close(PROTOCOL_ERROR, allow=())


def test_close_reason_invalid_utf8_closes_1007(ws):
    ws.send_close(1000, b"bad \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80")
    ws.expect_close(INVALID_DATA, allow=())


def test_close_payload_over_125_is_protocol_error(ws):
    ws.send_frame(OP_CLOSE, close_payload(1000, b"r" * 124))
    ws.expect_close(PROTOCOL_ERROR, allow=())


def test_data_after_close_in_same_write_ignored(ws):
    ws.send(build_frame(OP_CLOSE, close_payload(1000)) + build_frame(OP_TEXT, b"after close")
            + build_frame(OP_PING, b"after close"))
    ws.expect_close(1000, allow=())  # no echo, no pong


def test_data_after_close_in_later_write_ignored(ws):
    ws.send_close(1000)
    f, _ = ws.wait_close(allow=())
    assert f.close_code == 1000
    try:
        ws.send_text(b"after close")
    except OSError:
        pass
    ws.expect_eof()


def test_message_before_close_echoed_then_close(ws):
    ws.send(build_frame(OP_TEXT, b"last words") + build_frame(OP_CLOSE, close_payload(1000)))
    ws.expect_message(OP_TEXT, b"last words")
    ws.expect_close(1000, allow=())


# =============================================================================
# 7. limits (--max-message)

@pytest.fixture
def small(server):
    """ws-echo with --max-message 1000."""
    return server("ws-echo", "--max-message", "1000")


def test_message_at_limit_echoed(small):
    c = connect(small.port)
    c.echo(OP_BINARY, os.urandom(1000))
    c.echo(OP_TEXT, b"t" * 1000)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_message_over_limit_closes_1009(small, opcode):
    c = connect(small.port)
    c.send_frame(opcode, payload_for(opcode, 1001))
    c.expect_close(TOO_BIG)


def test_default_limit_is_1mib(echo):
    c = connect(echo.port)
    c.echo(OP_BINARY, os.urandom(1 << 20), timeout=15)
    hdr, key = frame_header(OP_BINARY, (1 << 20) + 1)
    c.send(hdr + b"\0" * 1000)  # only the header matters
    c.expect_close(TOO_BIG)


@pytest.mark.parametrize("opcode", [OP_TEXT, OP_BINARY], ids=["text", "binary"])
def test_declared_64mib_then_stall_closes_1009_promptly(echo, opcode):
    """The header alone declares 64 MiB; the client sends 100 bytes and
    stalls. The server must refuse at the header, not wait for payload."""
    c = connect(echo.port)
    hdr, key = frame_header(opcode, 64 << 20)
    c.send(hdr + b"a" * 100)
    t0 = time.monotonic()
    c.expect_close(TOO_BIG, timeout=5)
    print("1009 after %.1f ms" % ((time.monotonic() - t0) * 1e3))


def test_64bit_length_with_msb_set_is_refused(echo):
    c = connect(echo.port)
    b0 = 0x80 | OP_BINARY
    c.send(bytes([b0, 0x80 | 127]) + struct.pack("!Q", (1 << 63) | 5) + b"\0\0\0\0" + b"hello")
    c.expect_close((PROTOCOL_ERROR, TOO_BIG))


def test_fragmented_message_over_limit_closes_1009(small):
    c = connect(small.port)
    c.send(build_frame(OP_TEXT, b"a" * 400, fin=False) + build_frame(OP_CONT, b"b" * 400, fin=False)
           + build_frame(OP_CONT, b"c" * 400, fin=True))
    c.expect_close(TOO_BIG)


def test_fragmented_over_limit_refused_at_header(small):
    """The third fragment's header passes the limit; its payload never comes."""
    c = connect(small.port)
    c.send(build_frame(OP_BINARY, b"a" * 400, fin=False) + build_frame(OP_CONT, b"b" * 400, fin=False))
    hdr, key = frame_header(OP_CONT, 400, fin=False)
    c.send(hdr)
    c.expect_close(TOO_BIG)


def test_fragmented_message_at_limit_with_pings_echoed(small):
    """Control frames inside the message do not count towards its size."""
    c = connect(small.port)
    c.send(build_frame(OP_TEXT, b"a" * 500, fin=False) + build_frame(OP_PING, b"p" * 125)
           + build_frame(OP_CONT, b"b" * 500, fin=True))
    assert c.recv_message() == (OP_PONG, b"p" * 125)
    c.expect_message(OP_TEXT, b"a" * 500 + b"b" * 500)


def test_limit_close_does_not_affect_other_clients(small):
    other = connect(small.port)
    other.echo(OP_TEXT, b"before")
    c = connect(small.port)
    c.send_binary(os.urandom(5000))
    c.expect_close(TOO_BIG)
    other.echo(OP_TEXT, b"after")
    assert_still_serving(small.port)


# =============================================================================
# 8. opening handshake

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_for_rfc_sample_key(echo):
    assert accept_for(RFC_KEY) == RFC_ACCEPT
    c = RawClient(echo.port)
    r = c.handshake("/", key=RFC_KEY)
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == RFC_ACCEPT
    assert r.header("upgrade", "").lower() == "websocket"
    assert "upgrade" in r.header("connection", "").lower()
    c.echo(OP_TEXT, b"after upgrade")


def test_missing_key_400(echo):
    r = upgrade_status(echo.port, key=False)
    assert r.status == 400, r
    assert r.header("connection", "").lower() == "close", r


@pytest.mark.parametrize("key", ["AAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                 "!!!!!!!!!!!!!!!!!!!!!!==", ""],
                         ids=["8-bytes", "20-bytes", "not-base64", "empty"])
def test_key_not_16_bytes_400(echo, key):
    r = upgrade_status(echo.port, key=key)
    assert r.status == 400, r
    assert r.header("connection", "").lower() == "close", r


@pytest.mark.parametrize("version", ["12", "8", "14", "abc", None],
                         ids=["12", "8", "14", "abc", "missing"])
def test_bad_version_426(echo, version):
    r = upgrade_status(echo.port, version=version)
    assert r.status == 426, r
    assert r.header("sec-websocket-version") == "13", r
    assert r.header("connection", "").lower() == "close", r


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_non_get_upgrade_405(echo, method):
    r = upgrade_status(echo.port, method=method)
    assert r.status == 405, r
    assert r.header("connection", "").lower() == "close", r


@pytest.mark.parametrize("upgrade", [None, "h2c"], ids=["missing", "h2c"])
def test_websocket_headers_without_upgrade_426(echo, upgrade):
    r = upgrade_status(echo.port, upgrade=upgrade)
    assert r.status == 426, r
    assert r.header("connection", "").lower() == "close", r


def test_headers_over_8kib_431(echo):
    r = upgrade_status(echo.port, extra=[("X-Pad", "p" * 10240)])
    assert r.status == 431, r
    assert r.header("connection", "").lower() == "close", r


def test_many_headers_over_8kib_431(echo):
    r = upgrade_status(echo.port, extra=[("X-Pad-%d" % i, "v" * 50) for i in range(200)])
    assert r.status == 431, r


def test_headers_of_6kib_accepted(echo):
    r = upgrade_status(echo.port, extra=[("X-Pad", "p" * 6144)])
    assert r.status == 101, r


def test_lowercase_header_names_and_extra_whitespace(echo):
    key = "x3JJHMbDL1EzLkh9GBhXDw=="
    req = ("GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade:   websocket  \r\n"
           "connection: Upgrade\r\nsec-websocket-key: %s\r\n"
           "sec-websocket-version:13\r\n\r\n" % key).encode()
    c = RawClient(echo.port)
    c.send(req)
    r = c.read_http_response()
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == accept_for(key)
    c.echo(OP_TEXT, b"lowercase")


def test_upgrade_header_values_case_insensitive_and_token_list(echo):
    c = RawClient(echo.port)
    r = c.handshake("/", upgrade="WebSocket", connection="keep-alive, Upgrade")
    assert r.status == 101, r
    c.echo(OP_TEXT, b"firefox style")


@pytest.mark.parametrize("garbage", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),
    b"\x00\x01\x02\x03garbage\xff\xfe\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\r\n\r\n\r\n\r\n",
], ids=["tls-hello", "binary", "ssh-banner", "empty-lines"])
def test_garbage_bytes_dropped_server_alive(echo, garbage):
    c = RawClient(echo.port)
    c.send(garbage)
    got = b""
    deadline = time.monotonic() + t(5)
    while not c.eof:
        try:
            c._fill(deadline)
        except TimeoutError:
            raise AssertionError("server kept a garbage connection open for 5s "
                                 "(received %r)" % bytes(c.buf)) from None
    got = bytes(c.buf)
    assert not got.startswith(b"HTTP/1.1 101"), got
    assert got == b"", "contract: 'not HTTP at all -> the connection is dropped'; got %r" % got[:200]
    assert_still_serving(echo.port)


def test_slowloris_partial_request_closed(server):
    s = server("ws-echo", "--handshake-timeout", "1")
    c = RawClient(s.port, timeout=8)
    c.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    t0 = time.monotonic()
    deadline = t0 + t(6)
    while not c.eof:
        try:
            c._fill(deadline)
        except TimeoutError:
            raise AssertionError("partial request still open 6s after a 1s "
                                 "--handshake-timeout") from None
    print("partial request dropped after %.2fs" % (time.monotonic() - t0))
    assert not bytes(c.buf).startswith(b"HTTP/1.1 101")
    assert_still_serving(s.port)


def test_slowloris_dribbling_bytes_still_closed(server):
    """The timeout covers the whole request, not the gap between bytes."""
    s = server("ws-echo", "--handshake-timeout", "1")
    c = RawClient(s.port, timeout=8)
    req = http_request("/")[:-2]  # never finished
    t0 = time.monotonic()
    closed = False
    for i in range(len(req)):
        if time.monotonic() - t0 > t(6):
            break
        try:
            c.send(req[i:i + 1])
        except OSError:
            closed = True
            break
        c.sock.settimeout(t(0.2))
        try:
            data = c.sock.recv(4096)
            if data == b"":
                closed = True
                break
            assert not data.startswith(b"HTTP/1.1 101"), data
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
    assert closed, "a client dribbling one byte every 0.2s was not dropped within 6s"
    print("dribbling client dropped after %.2fs" % (time.monotonic() - t0))


def test_established_connection_not_subject_to_handshake_timeout(server):
    s = server("ws-echo", "--handshake-timeout", "1")
    c = connect(s.port)
    time.sleep(2.0)  # the test's subject is elapsed time itself
    c.echo(OP_TEXT, b"still open after 2s")


def test_request_split_one_byte_per_write(echo):
    c = RawClient(echo.port)
    c.key = "x3JJHMbDL1EzLkh9GBhXDw=="
    c.send_slowly(http_request("/", key=c.key), 1)
    r = c.read_http_response()
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == accept_for(c.key)
    c.echo(OP_TEXT, b"ok")


def test_request_and_frames_in_same_write(echo):
    c = RawClient(echo.port)
    key = "x3JJHMbDL1EzLkh9GBhXDw=="
    frames = build_frame(OP_TEXT, b"first") + build_frame(OP_PING, b"p") + build_frame(OP_BINARY, b"\x01\x02")
    c.send(http_request("/", key=key) + frames)
    r = c.read_http_response()
    assert r.status == 101, r
    assert r.header("sec-websocket-accept") == accept_for(key)
    got = [c.recv_message() for _ in range(3)]
    assert [d for o, d in got if o == OP_PONG] == [b"p"]
    assert [(o, d) for o, d in got if o != OP_PONG] == [(OP_TEXT, b"first"), (OP_BINARY, b"\x01\x02")]


def test_permessage_deflate_offer_not_negotiated(echo):
    c = RawClient(echo.port)
    r = c.handshake("/", extra=[("Sec-WebSocket-Extensions",
                                 "permessage-deflate; client_max_window_bits")])
    assert r.status == 101, r
    assert r.header("sec-websocket-extensions") is None, r
    # Uncompressed echo (recv_message asserts RSV bits are 0).
    c.echo(OP_TEXT, b"hello hello hello hello")
    c.echo(OP_BINARY, b"")
    # And RSV1 from the client is still a protocol error.
    c.send_frame(OP_TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)
    c.expect_close(PROTOCOL_ERROR)


def test_offered_subprotocol_first_one_echoed(echo):
    """docs/protocol-echo.md: 'A subprotocol offered by the client is
    accepted: the first one offered is echoed back.'"""
    c = RawClient(echo.port)
    r = c.handshake("/", extra=[("Sec-WebSocket-Protocol", "chat, superchat")])
    assert r.status == 101, r
    assert r.header("sec-websocket-protocol") == "chat", r
    c.echo(OP_TEXT, b"with a subprotocol")


def test_no_subprotocol_header_when_none_offered(echo):
    c = RawClient(echo.port)
    r = c.handshake("/")
    assert r.status == 101, r
    assert r.header("sec-websocket-protocol") is None, r


# =============================================================================
# 9. robustness

def test_control_frames_split_one_byte_per_write(ws):
    ws.send_slowly(build_frame(OP_PING, b"split ping"), 1)
    assert ws.recv_message() == (OP_PONG, b"split ping")
    ws.send_slowly(build_frame(OP_CLOSE, close_payload(1000, "split close")), 1)
    ws.expect_close(1000, allow=())


def _abort(c, rst):
    if rst:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_abrupt_disconnects_leave_server_healthy(echo, rst):
    """Clients vanish mid-handshake, mid-header, mid-payload, mid-message and
    mid-close; the server frees them (connections back to 0; the teardown
    checks for sanitizer/valgrind reports) and keeps serving."""
    import json
    hdr, _ = frame_header(OP_BINARY, 1000)
    cases = [
        lambda c: c.send(http_request("/")[:30]),
        lambda c: c.send(http_request("/") + b"\x82"),
        lambda c: c.send(http_request("/") + hdr + b"x" * 10),
        lambda c: c.send(http_request("/") + build_frame(OP_TEXT, b"part", fin=False)),
        lambda c: c.send(http_request("/") + build_frame(OP_TEXT, "κόσμε".encode()[:3], fin=False)),
        lambda c: c.send(http_request("/") + build_frame(OP_CLOSE, close_payload(1000))),
        lambda c: c.send(http_request("/") + build_frame(OP_BINARY, os.urandom(200000))),
        lambda c: c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
    ]
    for _round in range(3):
        for case in cases:
            c = RawClient(echo.port)
            try:
                case(c)
            except OSError:
                pass
            _abort(c, rst)
    deadline = time.monotonic() + t(5)
    while True:
        r = RawClient(echo.port)
        r.send(http_request("/healthz", websocket=False))
        n = json.loads(r.read_http_response().body)["connections"]
        r.close()
        if n == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert n == 0, "%d connections still counted after every client vanished" % n
    assert_still_serving(echo.port)
