/*
 * base64: RFC 4648 base64 with padding, for the handshake's accept key
 * (common/http) and for binary command output (rpc/).
 */
#ifndef WS_BASE64_H
#define WS_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes ws_base64_encode() writes for n input bytes (no NUL). */
#define WS_BASE64_LEN(n) (4 * (((size_t)(n) + 2) / 3))

/* Writes base64 of p[0..n) to out (WS_BASE64_LEN(n) bytes, no NUL); returns that length. */
size_t ws_base64_encode(const void *p, size_t n, char *out);

/* The 6-bit value of one base64 character, or -1 when c is not one ('=' included). */
int ws_base64_value(char c);

/* Bytes ws_base64url_encode() writes for n input bytes (unpadded, no NUL). */
#define WS_BASE64URL_LEN(n) (((size_t)(n)*4 + 2) / 3)

/* Writes unpadded base64url (RFC 4648 section 5) of p[0..n); returns its length. */
size_t ws_base64url_encode(const void *p, size_t n, char *out);

/*
 * Decodes unpadded base64url s[0..n) into out (cap bytes), setting *outn.
 * Canonical only: false on any byte outside the alphabet ('=' included),
 * an impossible length, or unused low bits that are not zero, so one value
 * has one encoding (a signature cannot be re-spelled).
 */
bool ws_base64url_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outn);

#endif
