/*
 * wsclient: the client side of RFC 6455 that ws-loadgen needs: the
 * handshake key and its expected accept value, the check of a 101 response,
 * masked frame headers, and the length of a server frame header. It knows
 * nothing of sockets.
 */
#ifndef LG_WSCLIENT_H
#define LG_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum wsclient_opcode {
	WSC_OP_CONT = 0x0,
	WSC_OP_TEXT = 0x1,
	WSC_OP_BINARY = 0x2,
	WSC_OP_CLOSE = 0x8,
	WSC_OP_PING = 0x9,
	WSC_OP_PONG = 0xa,
};

/* A masked control frame: 2 header bytes, the mask, at most 125 payload bytes. */
#define WSC_CTL_FRAME_MAX (2 + 4 + 125)
/* base64 of 16 and of 20 bytes, with the terminating NUL. */
#define WSC_KEY_LEN 25
#define WSC_ACCEPT_LEN 29

/* Turns a random 16-byte nonce into a Sec-WebSocket-Key and the Sec-WebSocket-Accept it calls for.
 */
void wsclient_key(const uint8_t nonce[16], char key[WSC_KEY_LEN], char accept[WSC_ACCEPT_LEN]);

/*
 * Whether a response header (NUL-terminated, its blank line at hdr_end) is
 * a 101 carrying the expected accept value and no extension (none is ever
 * offered).
 */
bool wsclient_response_ok(const char *resp, const char *hdr_end, const char *accept);

/* Writes a masked client frame header (FIN set) into h and returns its length (6..14). */
size_t wsclient_header(uint8_t h[14], enum wsclient_opcode op, uint64_t len, const uint8_t mask[4]);

/* XORs p[0..n) with mask, from mask byte 0. */
void wsclient_mask(uint8_t *p, size_t n, const uint8_t mask[4]);

/* Length of a whole client frame carrying size payload bytes. */
static inline uint32_t
wsclient_frame_len(uint32_t size)
{
	return size + (size < 126 ? 6 : size <= 0xffff ? 8 : 14);
}

/* Length of a server frame header given its second byte (a server never masks). */
static inline unsigned
wsclient_server_header_len(uint8_t b1)
{
	unsigned len7 = b1 & 0x7f;
	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0);
}

#endif
