/*
 * event: what the Redis engine publishes on a room's channel: "EV SEQ
 * JSON" from its scripts (the room's event counter, the message's seq, 0
 * for a join or leave, and the JSON object members receive), and "B..."
 * binary relays. Parsed from Redis' bytes before anything is sent to a
 * member.
 */
#ifndef BC_EVENT_H
#define BC_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bc_event {
	uint64_t ev;      /* >= 1 */
	uint64_t seq;     /* 0: not a message */
	const char *json; /* into the input; a JSON object ('{' ... '}') */
	size_t len;
};

/*
 * Splits p[0..n): 1-19 digits, a space, 1-19 digits, a space, then an
 * object of at least "{}". False for anything else (and for EV 0).
 */
bool bc_event_parse(const char *p, size_t n, struct bc_event *out);

/* A binary relay: "B" NODE ":" MEMBER " " BYTES (from the member's server). */
struct bc_relay {
	char node[17]; /* 16 lower-case hex digits */
	uint64_t member;
	const uint8_t *data; /* into the input */
	size_t len;
};

/* Splits a relay; false for anything else. */
bool bc_relay_parse(const char *p, size_t n, struct bc_relay *out);

#endif
