/*
 * encode: command output as JSON strings. UTF-8 with every invalid byte
 * replaced by U+FFFD (and an incomplete sequence at a chunk's end held back
 * for the next chunk), or base64 for exact bytes.
 */
#ifndef RPC_ENCODE_H
#define RPC_ENCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Writes valid UTF-8 for p[0..n) to out (room for 3 * n bytes). When !final,
 * a sequence cut off at the end is not written: *consumed says how much of p
 * was used. Returns the bytes written.
 */
size_t rpc_encode_utf8(const uint8_t *p, size_t n, bool final, char *out, size_t *consumed);

/*
 * Writes p[0..n) as the inside of a JSON string (no quotes), as json_dumps
 * would escape the UTF-8 text rpc_encode_utf8 makes of it: valid UTF-8 kept,
 * each invalid byte as U+FFFD, '"', '\\' and control characters escaped.
 * Writes at most `room` bytes and never part of a unit: it stops before a
 * unit that does not fit (*full is set) or, when !final, before a sequence
 * cut off at the end. *consumed says how much of p was used. Returns the
 * bytes written; out needs min(room, 6 * n) bytes.
 */
size_t rpc_encode_json(const uint8_t *p, size_t n, bool final, char *out, size_t room,
		       size_t *consumed, bool *full);

#endif
