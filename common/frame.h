/*
 * frame: the RFC 6455 codec. A decoder (ws_rx) that turns a client's bytes
 * into whole messages and control frames, enforcing every rule a server
 * must (masking, reserved bits and opcodes, control frame limits,
 * fragmentation order, UTF-8, close codes, the message size cap), and an
 * encoder for the server's unmasked frames. It knows nothing of sockets.
 */
#ifndef WS_FRAME_H
#define WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa,
};

enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close had no code" */
	WS_CLOSE_ABNORMAL = 1006,  /* never sent: "no close frame at all" */
	WS_CLOSE_INVALID_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
};

/* Largest frame header a server writes: 2 + 8 bytes of length. */
#define WS_FRAME_HEADER_MAX 10

/* Writes a server frame header (FIN set unless !fin, no mask); returns its length. */
size_t ws_frame_header(uint8_t out[WS_FRAME_HEADER_MAX], bool fin, enum ws_opcode op, uint64_t len);

/* Appends a whole server frame (header and payload) to b; false on OOM. */
bool ws_frame_append(struct ws_buf *b, enum ws_opcode op, const void *data, size_t len);

/* XORs p[0..n) with mask, starting at mask byte `offset` (0..3). */
void ws_frame_unmask(uint8_t *p, size_t n, const uint8_t mask[4], unsigned offset);

/* Whether a close code received from a peer is one RFC 6455 allows on the wire. */
bool ws_close_code_valid(uint16_t code);

/*
 * What the decoder hands over. Payloads are unmasked and valid only during
 * the call; the callee may modify them. A non-zero return stops the decoder
 * and is returned from ws_rx_feed() (use a negative value).
 */
struct ws_rx_handler {
	/* a whole text (UTF-8 checked) or binary message */
	int (*message)(void *ctx, enum ws_opcode op, uint8_t *data, size_t len);
	/* ping, pong, or close (code 1005 when the frame had none; reason checked) */
	int (*ping)(void *ctx, uint8_t *data, size_t len);
	int (*pong)(void *ctx, uint8_t *data, size_t len);
	int (*close)(void *ctx, uint16_t code, const uint8_t *reason, size_t len);
};

/* The decoder's state, embedded in a connection; zero-initialised is ready. */
struct ws_rx {
	struct ws_buf msg;  /* reassembly of a message that spans reads */
	uint8_t *ctl;       /* a control frame that spans reads (125 B, lazily) */
	uint64_t remaining; /* payload bytes of the current frame still to come */
	uint32_t utf8;      /* validator state of the text message in progress */
	uint8_t hdr[14];    /* a frame header that spans reads */
	uint8_t hdr_len;
	uint8_t ctl_len;
	uint8_t mask[4];
	uint8_t mask_off;
	uint8_t opcode; /* of the current frame */
	uint8_t msg_op; /* of the message in progress, 0 when none */
	bool fin;
	bool in_frame; /* header parsed, payload pending */
	bool direct;   /* current payload goes to msg (else to ctl) */
};

struct ws_rx_error {
	uint16_t code;      /* the close code to send: 1002, 1007 or 1009 */
	const char *reason; /* a short static phrase for the close frame */
};

/*
 * Feeds p[0..n) (modified in place: payloads are unmasked there).
 * Returns 0 when all was consumed, a positive close code on a protocol
 * violation (err says why; the connection must be closed with it), or a
 * handler's negative return.
 */
int ws_rx_feed(struct ws_rx *rx, uint64_t max_message, uint8_t *p, size_t n,
	       const struct ws_rx_handler *h, void *ctx, struct ws_rx_error *err);

/* Whether a message or frame is part-way through (buffers in use). */
bool ws_rx_busy(const struct ws_rx *rx);

/* Frees the buffers while keeping the state; only when !ws_rx_busy() or at the end. */
void ws_rx_trim(struct ws_rx *rx);
void ws_rx_finish(struct ws_rx *rx);

#endif
