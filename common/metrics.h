/*
 * metrics: the counters every server keeps, rendered in Prometheus' text
 * format for GET /metrics. Plain integers: the servers are single-threaded.
 */
#ifndef WS_METRICS_H
#define WS_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

enum ws_reject {
	WS_REJECT_CAPACITY,  /* --max-connections */
	WS_REJECT_PER_IP,    /* --max-connections-per-ip */
	WS_REJECT_ORIGIN,    /* --allowed-origin */
	WS_REJECT_TOKEN,     /* --token-file / WS_TOKEN */
	WS_REJECT_HANDSHAKE, /* malformed upgrade: 400/405/426/431 */
	WS_REJECT_GARBAGE,   /* not HTTP at all */
	WS_REJECT_TIMEOUT,   /* --handshake-timeout */
	WS_REJECT_APP,       /* refused by the server's own admission check */
	WS_REJECT_MAX
};

struct ws_metrics {
	uint64_t connections_open;
	uint64_t connections_total;
	uint64_t messages_in, messages_out;
	uint64_t bytes_in, bytes_out;
	uint64_t http_requests;
	uint64_t rate_limited;
	uint64_t slow_consumers;
	uint64_t rejected[WS_REJECT_MAX];
	uint64_t closes_rfc[16]; /* close codes 1000..1015 */
	uint64_t closes_app;     /* 3000..4999 */
};

void ws_metrics_reject(struct ws_metrics *m, enum ws_reject why);
void ws_metrics_close(struct ws_metrics *m, uint16_t code);

/* Appends the exposition text, with `server` as a label on every line. */
bool ws_metrics_render(const struct ws_metrics *m, const char *server, struct ws_buf *out);

#endif
