/*
 * ratelimit: a token bucket per connection. The clock is the caller's
 * (milliseconds from any monotonic origin), so the arithmetic is testable.
 *
 * A message over the limit is dropped. When the messages dropped since the
 * bucket was last full pass the burst size, the flood is "sustained" and the
 * caller should close the connection.
 */
#ifndef WS_RATELIMIT_H
#define WS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ws_rate_config {
	uint32_t rate;  /* messages per second; 0 = no limit */
	uint32_t burst; /* bucket size in messages (>= 1 when rate > 0) */
};

struct ws_rate {
	uint64_t last_ms;
	uint64_t milli_tokens; /* tokens * 1000 */
	uint32_t dropped;      /* since the bucket was last full */
};

enum ws_rate_verdict {
	WS_RATE_OK,
	WS_RATE_DROP,  /* over the limit: drop this message */
	WS_RATE_FLOOD, /* over the limit for long: close the connection */
};

/* Starts with a full bucket at time now_ms. */
void ws_rate_init(struct ws_rate *r, const struct ws_rate_config *cfg, uint64_t now_ms);

/* Takes one token for a message arriving at now_ms. */
enum ws_rate_verdict ws_rate_take(struct ws_rate *r, const struct ws_rate_config *cfg,
				  uint64_t now_ms);

/*
 * Whether the bucket is full again at now_ms: then it is no different from
 * a new one (ws_rate_init), and a caller may drop it and start afresh.
 */
bool ws_rate_full(const struct ws_rate *r, const struct ws_rate_config *cfg, uint64_t now_ms);

#endif
