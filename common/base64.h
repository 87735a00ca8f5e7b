/*
 * base64: RFC 4648 base64 with padding, for the handshake's accept key
 * (common/http) and for binary command output (rpc/).
 */
#ifndef WS_BASE64_H
#define WS_BASE64_H

#include <stddef.h>

/* Bytes ws_base64_encode() writes for n input bytes (no NUL). */
#define WS_BASE64_LEN(n) (4 * (((size_t)(n) + 2) / 3))

/* Writes base64 of p[0..n) to out (WS_BASE64_LEN(n) bytes, no NUL); returns that length. */
size_t ws_base64_encode(const void *p, size_t n, char *out);

/* The 6-bit value of one base64 character, or -1 when c is not one ('=' included). */
int ws_base64_value(char c);

#endif
