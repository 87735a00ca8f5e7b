#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const reject_names[WS_REJECT_MAX] = {
	"capacity", "per_ip", "origin", "token", "handshake", "garbage", "timeout", "app",
};

void
ws_metrics_reject(struct ws_metrics *m, enum ws_reject why)
{
	m->rejected[why]++;
}

void
ws_metrics_close(struct ws_metrics *m, uint16_t code)
{
	if (code >= 1000 && code < 1016)
		m->closes_rfc[code - 1000]++;
	else
		m->closes_app++;
}

static bool put(struct ws_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool
put(struct ws_buf *out, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	return n > 0 && (size_t)n < sizeof(line) && ws_buf_append(out, line, (size_t)n);
}

static bool
counter(struct ws_buf *out, const char *name, const char *help, const char *type,
	const char *server, uint64_t v)
{
	return put(out, "# HELP %s %s\n# TYPE %s %s\n%s{server=\"%s\"} %llu\n", name, help, name,
		   type, name, server, (unsigned long long)v);
}

bool
ws_metrics_render(const struct ws_metrics *m, const char *s, struct ws_buf *out)
{
	bool ok = counter(out, "ws_connections_open", "Open WebSocket connections.", "gauge", s,
			  m->connections_open) &&
		  counter(out, "ws_connections_total", "WebSocket connections accepted.", "counter",
			  s, m->connections_total) &&
		  counter(out, "ws_messages_in_total", "Messages received.", "counter", s,
			  m->messages_in) &&
		  counter(out, "ws_messages_out_total", "Messages sent.", "counter", s,
			  m->messages_out) &&
		  counter(out, "ws_bytes_in_total", "Bytes received, framing included.", "counter",
			  s, m->bytes_in) &&
		  counter(out, "ws_bytes_out_total", "Bytes sent, framing included.", "counter", s,
			  m->bytes_out) &&
		  counter(out, "ws_http_requests_total", "Plain HTTP requests answered.", "counter",
			  s, m->http_requests) &&
		  counter(out, "ws_rate_limited_total", "Messages dropped by the rate limit.",
			  "counter", s, m->rate_limited) &&
		  counter(out, "ws_slow_consumers_total",
			  "Connections closed for exceeding the send queue.", "counter", s,
			  m->slow_consumers);
	ok = ok && put(out, "# HELP ws_rejected_total Connections refused, by reason.\n"
			    "# TYPE ws_rejected_total counter\n");
	for (int i = 0; ok && i < WS_REJECT_MAX; i++)
		ok = put(out, "ws_rejected_total{server=\"%s\",reason=\"%s\"} %llu\n", s,
			 reject_names[i], (unsigned long long)m->rejected[i]);
	ok = ok && put(out, "# HELP ws_closes_total Closed WebSocket connections, by close code.\n"
			    "# TYPE ws_closes_total counter\n");
	for (int i = 0; ok && i < 16; i++) {
		if (m->closes_rfc[i])
			ok = put(out, "ws_closes_total{server=\"%s\",code=\"%d\"} %llu\n", s,
				 1000 + i, (unsigned long long)m->closes_rfc[i]);
	}
	if (ok && m->closes_app)
		ok = put(out, "ws_closes_total{server=\"%s\",code=\"other\"} %llu\n", s,
			 (unsigned long long)m->closes_app);
	return ok;
}
