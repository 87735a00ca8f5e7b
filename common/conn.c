/*
 * One connection's life: the HTTP request head, the upgrade and its checks,
 * WebSocket frames through the codec, the output buffer and its bounds, and
 * the closing handshake. Replies go into c->io->out and leave, together,
 * when the event that produced them ends (ws_conn_flush_all). An idle
 * connection has no c->io (see struct ws_conn_io).
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "log.h"
#include "server_private.h"

/* Queued bytes (a handshake reply, a pong) that still count as an empty queue. */
#define LONE_SLACK 4096u
/* An idle connection's buffers are freed after this long without input. */
#define TRIM_AFTER_MS 2000u
/* Time a closing handshake (or a plain HTTP reply) may take. */
#define CLOSE_TIMEOUT_S 5
/* Per-address connection counts live in a small chained hash table. */
#define IP_BUCKETS 1024

/* An idle connection's whole cost besides lws's: keep it in one 112 B malloc chunk. */
_Static_assert(sizeof(struct ws_conn) <= 104, "struct ws_conn grew past 104 B");

struct ip_slot {
	struct ip_slot *next;
	struct in6_addr addr;
	uint32_t count;
};

/* Keeps srv->queued, the bytes queued to every peer, in step with c->io->out. */
static void
account(struct ws_conn *c)
{
	struct ws_conn_io *io = c->io;
	if (!io)
		return;
	c->srv->queued += io->out.len;
	c->srv->queued -= io->counted;
	io->counted = io->out.len;
}

static uint32_t
out_len(const struct ws_conn *c)
{
	return c->io ? c->io->out.len : 0;
}

static void
kill_async(struct ws_conn *c)
{
	c->flags |= CONN_DEAD;
	if (c->io)
		c->io->out.len = 0;
	account(c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The connection's busy state, made on first need; NULL (connection killed) on OOM. */
static struct ws_conn_io *
io_get(struct ws_conn *c)
{
	if (c->io)
		return c->io;
	c->io = calloc(1, sizeof(*c->io));
	if (!c->io) {
		ws_log(WS_LOG_ERROR, "oom id=%llu need=%zu", (unsigned long long)c->id,
		       sizeof(*c->io));
		kill_async(c);
		return NULL;
	}
	/* a bucket dropped while full (io_idle) comes back full: the same thing */
	if (c->srv->rate.rate)
		ws_rate_init(&c->io->rate, &c->srv->rate, ws_clock_mono_ms());
	return c->io;
}

static void
io_free(struct ws_conn *c)
{
	struct ws_conn_io *io = c->io;
	if (!io)
		return;
	ws_buf_finish(&io->in);
	io->out.len = 0;
	account(c);
	ws_buf_finish(&io->out);
	ws_rx_finish(&io->rx);
	free(io);
	c->io = NULL;
}

/* Whether dropping c->io now loses nothing: the next io_get() makes an equal one. */
static bool
io_idle(const struct ws_conn *c, uint64_t now_ms)
{
	const struct ws_conn_io *io = c->io;
	return !(c->flags & (CONN_DIRTY | CONN_PING_OUT | CONN_RX_PAUSED)) && io->out.len == 0 &&
	       io->in.len == 0 && !io->notify_drained && !ws_rx_busy(&io->rx) &&
	       ws_rate_full(&io->rate, &c->srv->rate, now_ms);
}

/* Needs c->io. */
static void
mark_dirty(struct ws_conn *c)
{
	account(c);
	if (c->flags & CONN_DIRTY)
		return;
	c->flags |= CONN_DIRTY;
	c->io->dirty_next = c->srv->dirty;
	c->srv->dirty = c;
}

static bool
oom(struct ws_conn *c, size_t need)
{
	ws_log(WS_LOG_ERROR, "oom id=%llu need=%zu", (unsigned long long)c->id, need);
	kill_async(c);
	return false;
}

/* Queues one frame; the caller has checked the send queue bound (or it is control). */
static bool
queue_frame(struct ws_conn *c, enum ws_opcode op, const void *data, size_t len)
{
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return false;
	if (!ws_frame_append(&io->out, op, data, len))
		return oom(c, len);
	mark_dirty(c);
	return true;
}

/* Queues our close frame and stops treating input as messages. */
static void
close_with(struct ws_conn *c, uint16_t code, const char *reason)
{
	if (c->state != CONN_OPEN || (c->flags & CONN_DEAD))
		return;
	uint8_t payload[125];
	size_t n = 0;
	if (code != WS_CLOSE_NO_STATUS) {
		payload[0] = (uint8_t)(code >> 8);
		payload[1] = (uint8_t)code;
		size_t rl = reason ? strlen(reason) : 0;
		if (rl > sizeof(payload) - 2)
			rl = sizeof(payload) - 2;
		if (rl)
			memcpy(payload + 2, reason, rl);
		n = 2 + rl;
	}
	c->close_code = code;
	c->state = CONN_CLOSING;
	queue_frame(c, WS_OP_CLOSE, payload, n);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_TIMEOUT_S);
}

static void
flush(struct ws_conn *c)
{
	struct ws_server *srv = c->srv;
	struct ws_conn_io *io = c->io;
	if (!io)
		return;
	int fd = lws_get_socket_fd(c->wsi);
	while (io->out.len) {
		ssize_t n = send(fd, ws_buf_begin(&io->out), io->out.len, MSG_NOSIGNAL);
		if (n > 0) {
			ws_buf_consume(&io->out, (size_t)n);
			c->bytes_out += (uint64_t)n;
			srv->metrics.bytes_out += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			lws_callback_on_writable(c->wsi);
			break;
		}
		/* the peer is gone (reset, broken pipe): nothing more can leave */
		kill_async(c);
		return;
	}
	account(c);
	if (io->out.len == 0) {
		if (c->state == CONN_CLOSING && !(c->flags & CONN_SHUT_WR)) {
			/*
			 * Everything we meant to say has left: send FIN and read until
			 * the peer's, so no unread input turns our close into a reset.
			 */
			shutdown(fd, SHUT_WR);
			c->flags |= CONN_SHUT_WR;
		}
		if (c->flags & CONN_RX_PAUSED) {
			c->flags &= (uint8_t)~CONN_RX_PAUSED;
			lws_rx_flow_control(c->wsi, 1);
		}
		if (io->notify_drained && c->state == CONN_OPEN) {
			io->notify_drained = false;
			srv->app->drained(srv->app_state, c);
		}
	} else if (io->out.len >= srv->pause_bytes && c->state == CONN_OPEN &&
		   !(c->flags & CONN_RX_PAUSED)) {
		/* backpressure: a peer that does not read stops being read */
		c->flags |= CONN_RX_PAUSED;
		lws_rx_flow_control(c->wsi, 0);
	}
}

/*
 * Sends at once when nothing is queued, keeping only what the socket did not
 * take: an idle connection that never had a buffer (the 101 goes this way)
 * costs no heap. False when the connection is being torn down.
 */
static bool
send_now(struct ws_conn *c, const void *data, size_t len)
{
	size_t sent = 0;
	if (out_len(c) == 0) {
		ssize_t n = send(lws_get_socket_fd(c->wsi), data, len, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			kill_async(c);
			return false;
		}
		sent = n > 0 ? (size_t)n : 0;
		c->bytes_out += sent;
		c->srv->metrics.bytes_out += sent;
	}
	if (sent == len)
		return true;
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return false;
	if (!ws_buf_append(&io->out, (const uint8_t *)data + sent, len - sent)) {
		kill_async(c);
		return false;
	}
	mark_dirty(c);
	return true;
}

void
ws_conn_flush_all(struct ws_server *srv)
{
	while (srv->dirty) {
		struct ws_conn *c = srv->dirty;
		srv->dirty = c->io->dirty_next;
		c->io->dirty_next = NULL;
		c->flags &= (uint8_t)~CONN_DIRTY;
		if (!(c->flags & CONN_DEAD))
			flush(c);
	}
}

/* ---- per-address counts ---- */

static struct ip_slot **
ip_find(struct ws_server *srv, const struct in6_addr *a)
{
	/* seeded per process, so no one can pick addresses that share a chain */
	uint32_t h = 2166136261u ^ srv->ip_seed;
	for (int i = 0; i < 16; i++)
		h = (h ^ a->s6_addr[i]) * 16777619u;
	struct ip_slot **s = &srv->ip_table[h % IP_BUCKETS];
	while (*s && memcmp(&(*s)->addr, a, sizeof(*a)) != 0)
		s = &(*s)->next;
	return s;
}

/*
 * The address a client is counted under: an IPv4 address as it is, an IPv6
 * one by its /64 (one host, or one site, usually holds a whole /64).
 */
static struct in6_addr
ip_key(const struct in6_addr *a)
{
	struct in6_addr k = *a;
	if (!IN6_IS_ADDR_V4MAPPED(a))
		memset(&k.s6_addr[8], 0, 8);
	return k;
}

static bool
ip_acquire(struct ws_server *srv, struct ws_conn *c)
{
	if (!srv->ip_table) {
		srv->ip_table = calloc(IP_BUCKETS, sizeof(*srv->ip_table));
		if (!srv->ip_table)
			return false;
		if (getrandom(&srv->ip_seed, sizeof(srv->ip_seed), GRND_NONBLOCK) < 0)
			srv->ip_seed = (uint32_t)ws_clock_mono_ms();
	}
	struct in6_addr key = ip_key(&c->addr);
	struct ip_slot **s = ip_find(srv, &key);
	if (!*s) {
		*s = calloc(1, sizeof(**s));
		if (!*s)
			return false;
		(*s)->addr = key;
	}
	if ((*s)->count >= srv->cfg->max_connections_per_ip)
		return false;
	(*s)->count++;
	c->flags |= CONN_PER_IP;
	return true;
}

static void
ip_release(struct ws_server *srv, struct ws_conn *c)
{
	struct in6_addr key = ip_key(&c->addr);
	struct ip_slot **s = ip_find(srv, &key);
	if (*s && --(*s)->count == 0) {
		struct ip_slot *dead = *s;
		*s = dead->next;
		free(dead);
	}
}

void
ws_conn_ip_table_free(struct ws_server *srv)
{
	if (!srv->ip_table)
		return;
	for (int i = 0; i < IP_BUCKETS; i++) {
		while (srv->ip_table[i]) {
			struct ip_slot *s = srv->ip_table[i];
			srv->ip_table[i] = s->next;
			free(s);
		}
	}
	free(srv->ip_table);
	srv->ip_table = NULL;
}

/* ---- the codec's events ---- */

static int
on_message(void *ctx, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct ws_conn *c = ctx;
	struct ws_server *srv = c->srv;
	c->last_msg = srv->now;
	srv->metrics.messages_in++;
	if (srv->rate.rate) {
		switch (ws_rate_take(&c->io->rate, &srv->rate, ws_clock_mono_ms())) {
		case WS_RATE_OK:
			break;
		case WS_RATE_DROP:
			srv->metrics.rate_limited++;
			if (srv->app->rate_limited)
				srv->app->rate_limited(srv->app_state, c, op, data, len);
			return c->state == CONN_OPEN ? 0 : -1;
		case WS_RATE_FLOOD:
			srv->metrics.rate_limited++;
			if (srv->app->rate_limited) {
				/* servers that answer the limit keep the connection */
				srv->app->rate_limited(srv->app_state, c, op, data, len);
				return c->state == CONN_OPEN ? 0 : -1;
			}
			close_with(c, WS_CLOSE_POLICY, "rate limit exceeded");
			return -1;
		}
	}
	srv->app->message(srv->app_state, c, op, data, len);
	return c->state == CONN_OPEN ? 0 : -1;
}

static int
on_ping(void *ctx, uint8_t *data, size_t len)
{
	struct ws_conn *c = ctx;
	queue_frame(c, WS_OP_PONG, data, len);
	return 0;
}

static int
on_pong(void *ctx, uint8_t *data, size_t len)
{
	return 0; /* liveness was noted when the bytes arrived */
}

static int
on_close(void *ctx, uint16_t code, const uint8_t *reason, size_t len)
{
	struct ws_conn *c = ctx;
	c->flags |= CONN_CLOSE_RECEIVED;
	/* answer with the peer's own code, as RFC 6455 5.5.1 suggests */
	close_with(c, code, NULL);
	return -1;
}

static const struct ws_rx_handler rx_handler = {
	.message = on_message,
	.ping = on_ping,
	.pong = on_pong,
	.close = on_close,
};

static void
feed(struct ws_conn *c, uint8_t *p, size_t n)
{
	struct ws_rx_error err;
	c->last_rx = c->srv->now;
	c->flags &= (uint8_t)~CONN_PING_OUT;
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return;
	int r = ws_rx_feed(&io->rx, c->srv->cfg->max_message, p, n, &rx_handler, c, &err);
	if (r > 0) {
		ws_log(WS_LOG_DEBUG, "protocol-error id=%llu code=%d reason=\"%s\"",
		       (unsigned long long)c->id, r, err.reason);
		close_with(c, (uint16_t)r, err.reason);
	}
}

/* ---- HTTP ---- */

void
ws_conn_respond(struct ws_conn *c, int status, const char *content_type, const char *extra_headers,
		const void *body, size_t len)
{
	if (c->state != CONN_HTTP)
		return;
	if (c->srv->queued + len > c->srv->cfg->max_queued) {
		/* answers held for peers that do not read count against the total too */
		ws_metrics_reject(&c->srv->metrics, WS_REJECT_CAPACITY);
		kill_async(c);
		return;
	}
	ws_log(status >= 400 ? WS_LOG_INFO : WS_LOG_DEBUG, "http id=%llu addr=%s status=%d",
	       (unsigned long long)c->id, ws_conn_addr(c), status);
	c->srv->metrics.http_requests++;
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return;
	if (!ws_http_respond(&io->out, status, content_type, extra_headers, body, len)) {
		kill_async(c);
		return;
	}
	c->state = CONN_CLOSING;
	mark_dirty(c);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CLOSE_TIMEOUT_S);
}

static void
refuse(struct ws_conn *c, enum ws_reject why, int status, const char *reason, const char *extra)
{
	ws_metrics_reject(&c->srv->metrics, why);
	char body[256];
	int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, ws_http_status_text(status),
			 reason);
	ws_conn_respond(c, status, "text/plain; charset=utf-8", extra, body,
			n > 0 && (size_t)n < sizeof(body) ? (size_t)n : 0);
}

/* The subprotocol to answer with, or NULL. */
static bool
pick_subprotocol(const struct ws_app *app, struct ws_slice offered, char *out, size_t cap)
{
	size_t i = 0;
	while (i < offered.n) {
		while (i < offered.n && (offered.p[i] == ' ' || offered.p[i] == ','))
			i++;
		size_t s = i;
		while (i < offered.n && offered.p[i] != ',' && offered.p[i] != ' ')
			i++;
		size_t len = i - s;
		if (!len || len >= cap)
			continue;
		bool ok = app->accept_any_subprotocol;
		for (const char *const *p = app->subprotocols; !ok && p && *p; p++)
			ok = strlen(*p) == len && memcmp(*p, offered.p + s, len) == 0;
		if (ok) {
			memcpy(out, offered.p + s, len);
			out[len] = '\0';
			return true;
		}
	}
	return false;
}

/* The query for the log, with the token's value (a secret) replaced by "***". */
static void
redact_query(struct ws_slice q, char *out, size_t cap)
{
	/* room kept for "***", "..." and the NUL */
	size_t o = 0, limit = cap - 8;
	bool cut = false;
	for (size_t i = 0; i < q.n && !cut;) {
		size_t end = i, eq = q.n;
		while (end < q.n && q.p[end] != '&') {
			if (q.p[end] == '=' && eq == q.n)
				eq = end;
			end++;
		}
		/* the name as the server reads it: decoded (`tok%65n` is `token`) */
		bool token = eq < end && ws_http_query_name_is(q.p + i, eq - i, "token");
		size_t keep = token ? eq + 1 - i : end - i;
		if (keep > limit - o) {
			keep = limit - o;
			cut = true;
		}
		memcpy(out + o, q.p + i, keep);
		o += keep;
		if (token) {
			memcpy(out + o, "***", 3);
			o += 3;
		}
		if (!cut && end < q.n) {
			if (o + 1 > limit)
				cut = true;
			else
				out[o++] = '&';
		}
		i = end + 1;
	}
	if (cut) {
		/* a cut query says so, and never ends in a half pair that looks whole */
		if (o && out[o - 1] == '&')
			o--;
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

static void
upgrade(struct ws_conn *c, const struct ws_http_request *req, uint8_t *rest, size_t rest_n)
{
	struct ws_server *srv = c->srv;
	const struct ws_config *cfg = srv->cfg;
	const char *why, *extra;
	int status = ws_http_check_upgrade(req, &why, &extra);
	if (status) {
		refuse(c, WS_REJECT_HANDSHAKE, status, why, extra);
		return;
	}
	if (!ws_auth_origin_ok(&cfg->allowed_origins, req)) {
		refuse(c, WS_REJECT_ORIGIN, 403, "origin not allowed", NULL);
		return;
	}
	if (!ws_auth_token_ok(cfg->token, req)) {
		refuse(c, WS_REJECT_TOKEN, 401, "missing or wrong token",
		       "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (srv->draining || srv->metrics.connections_open >= cfg->max_connections) {
		refuse(c, WS_REJECT_CAPACITY, 503, "too many connections", "Retry-After: 1\r\n");
		return;
	}
	if (srv->app->admit && (status = srv->app->admit(srv->app_state, c, req, &why))) {
		refuse(c, WS_REJECT_APP, status, why, NULL);
		return;
	}

	char accept[29], proto[128], head[320];
	ws_http_accept_key(req->key, accept);
	bool has_proto = pick_subprotocol(srv->app, req->protocol, proto, sizeof(proto));
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "%s%s%s"
			 "\r\n",
			 accept, has_proto ? "Sec-WebSocket-Protocol: " : "",
			 has_proto ? proto : "", has_proto ? "\r\n" : "");
	if (!send_now(c, head, (size_t)n))
		return;
	lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);

	c->state = CONN_OPEN;
	c->flags |= CONN_WS;
	c->last_rx = c->last_msg = srv->now;
	srv->metrics.connections_open++;
	srv->metrics.connections_total++;
	/* the rate bucket starts full when c->io is made (io_get) */
	char query[512];
	redact_query(req->query, query, sizeof(query));
	ws_log(WS_LOG_INFO, "open id=%llu addr=%s path=\"%.*s%s%s\"", (unsigned long long)c->id,
	       ws_conn_addr(c), (int)req->path.n, req->path.p, *query ? "?" : "", query);
	if (srv->app->open)
		srv->app->open(srv->app_state, c, req);
	/* frames the client sent right behind its request */
	if (rest_n && c->state == CONN_OPEN)
		feed(c, rest, rest_n);
}

/* Handles a request head in p; false when it is not complete yet. */
static bool
http_request(struct ws_conn *c, uint8_t *p, size_t n)
{
	struct ws_server *srv = c->srv;
	size_t head_len = 0;
	switch (ws_http_head_end((const char *)p, n, &head_len)) {
	case WS_HTTP_HEAD_MORE:
		return false;
	case WS_HTTP_HEAD_GARBAGE:
		ws_metrics_reject(&srv->metrics, WS_REJECT_GARBAGE);
		ws_log(WS_LOG_DEBUG, "garbage id=%llu addr=%s", (unsigned long long)c->id,
		       ws_conn_addr(c));
		kill_async(c);
		return true;
	case WS_HTTP_HEAD_TOO_BIG:
		refuse(c, WS_REJECT_HANDSHAKE, 431, "request head too large", NULL);
		return true;
	case WS_HTTP_HEAD_DONE:
		break;
	}
	struct ws_http_request req;
	if (!ws_http_parse((const char *)p, head_len, &req)) {
		refuse(c, WS_REJECT_HANDSHAKE, 400, "malformed request", NULL);
		return true;
	}
	if (!req.host.p && (req.http_major > 1 || (req.http_major == 1 && req.http_minor >= 1))) {
		/* RFC 7230 5.4: an HTTP/1.1 request without Host is a bad request (1.0 had none) */
		refuse(c, WS_REJECT_HANDSHAKE, 400, "missing Host", NULL);
		return true;
	}
	if (ws_http_wants_upgrade(&req)) {
		upgrade(c, &req, p + head_len, n - head_len);
		return true;
	}
	if (!req.is_get) {
		refuse(c, WS_REJECT_HANDSHAKE, 405, "only GET is served", "Allow: GET\r\n");
		return true;
	}
	if (ws_server_builtin_http(srv, c, &req))
		return true;
	if (srv->app->http && srv->app->http(srv->app_state, c, &req))
		return true;
	static const char nf[] = "404 Not Found\n";
	ws_conn_respond(c, 404, "text/plain; charset=utf-8", NULL, nf, sizeof(nf) - 1);
	return true;
}

static void
receive(struct ws_conn *c, uint8_t *p, size_t n)
{
	c->bytes_in += n;
	c->srv->metrics.bytes_in += n;
	switch (c->state) {
	case CONN_OPEN:
		feed(c, p, n);
		return;
	case CONN_HTTP:
		/* the whole request usually comes in one read: parse it in place */
		if ((!c->io || c->io->in.len == 0) && http_request(c, p, n))
			return;
		/*
		 * Keep the whole read: frames may follow the head's end in it. The
		 * buffer stays bounded: a head without an end within
		 * WS_HTTP_HEAD_MAX bytes is refused 431 below, and one read is at
		 * most the loop's read size.
		 */
		struct ws_conn_io *io = io_get(c);
		if (!io)
			return;
		if (!ws_buf_append(&io->in, p, n)) {
			kill_async(c);
			return;
		}
		if (http_request(c, ws_buf_begin(&io->in), io->in.len))
			ws_buf_finish(&io->in);
		return;
	case CONN_CLOSING:
		/* input after our close frame is read only to reach the peer's FIN */
		return;
	}
}

/* ---- lws ---- */

static void
adopt(struct ws_server *srv, struct ws_conn *c, struct lws *wsi)
{
	*c = (struct ws_conn){ .wsi = wsi, .srv = srv, .id = ++srv->next_id };
	ws_server_clock(srv);
	c->opened = srv->now;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getpeername(lws_get_socket_fd(wsi), (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			c->addr = ((struct sockaddr_in6 *)&ss)->sin6_addr;
		} else if (ss.ss_family == AF_INET) {
			c->addr.s6_addr[10] = c->addr.s6_addr[11] = 0xff;
			memcpy(&c->addr.s6_addr[12], &((struct sockaddr_in *)&ss)->sin_addr, 4);
		}
	}
	ws_list_insert(&srv->conns, &c->link);
	srv->sockets++;
	uint32_t hs = (srv->cfg->handshake_timeout_ms + 999) / 1000;
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (int)hs);
	/*
	 * Counted from accept, not from the upgrade: sockets that never send a
	 * request (half-open, slowloris) hold their address's slots too.
	 */
	if (srv->cfg->max_connections_per_ip && !ip_acquire(srv, c)) {
		refuse(c, WS_REJECT_PER_IP, 503, "too many connections from this address",
		       "Retry-After: 1\r\n");
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, 1);
		ws_conn_flush_all(srv);
	}
}

/*
 * The server hears of the close once: at the socket's end, or at shutdown.
 * Its caller has read the clock (srv->now): once per event, not per close.
 */
static void
app_close(struct ws_server *srv, struct ws_conn *c)
{
	uint16_t code = c->close_code ? c->close_code : WS_CLOSE_ABNORMAL;
	c->flags &= (uint8_t)~CONN_WS;
	srv->metrics.connections_open--;
	ws_metrics_close(&srv->metrics, code);
	if (srv->app->close)
		srv->app->close(srv->app_state, c, code);
	ws_log(WS_LOG_INFO,
	       "close id=%llu addr=%s code=%u duration_ms=%llu bytes_in=%llu bytes_out=%llu",
	       (unsigned long long)c->id, ws_conn_addr(c), code,
	       (unsigned long long)(uint32_t)(srv->now - c->opened),
	       (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out);
}

void
ws_conn_close_all_apps(struct ws_server *srv)
{
	ws_server_clock(srv);
	ws_list_for_each (l, &srv->conns) {
		struct ws_conn *c = ws_list_entry(l, struct ws_conn, link);
		if (c->flags & CONN_WS)
			app_close(srv, c);
	}
}

static void
gone(struct ws_server *srv, struct ws_conn *c)
{
	if (c->flags & CONN_WS) {
		app_close(srv, c);
	} else if (c->state == CONN_HTTP && !(c->flags & CONN_DEAD) && c->bytes_in == 0) {
		/* accepted, then nothing: most often a port probe */
	} else if (c->state == CONN_HTTP && !(c->flags & CONN_DEAD)) {
		ws_metrics_reject(&srv->metrics, WS_REJECT_TIMEOUT);
	}
	if (c->flags & CONN_PER_IP)
		ip_release(srv, c);
	if (c->flags & CONN_DIRTY) {
		struct ws_conn **p = &srv->dirty;
		while (*p && *p != c)
			p = &(*p)->io->dirty_next;
		if (*p)
			*p = c->io->dirty_next;
	}
	ws_list_remove(&c->link);
	io_free(c);
	srv->sockets--;
	c->wsi = NULL;
	ws_server_conn_gone(srv);
}

int
ws_conn_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		 size_t len)
{
	struct ws_conn *c = user;
	struct ws_server *srv;

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		srv = lws_context_user(lws_get_context(wsi));
		if (!c || srv->draining ||
		    srv->sockets >= srv->cfg->max_connections + WS_SOCKET_SLACK) {
			/* over every limit: not even an HTTP answer */
			ws_metrics_reject(&srv->metrics, WS_REJECT_CAPACITY);
			return -1;
		}
		adopt(srv, c, wsi);
		return 0;
	case LWS_CALLBACK_RAW_RX:
		if (!c || !c->srv || (c->flags & CONN_DEAD))
			return 0;
		ws_server_clock(c->srv);
		if (in && len)
			receive(c, in, len);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (!c || !c->srv || (c->flags & CONN_DEAD))
			return 0;
		flush(c);
		break;
	case LWS_CALLBACK_RAW_CLOSE:
		if (c && c->srv && c->wsi) {
			ws_server_clock(c->srv);
			gone(c->srv, c);
		}
		return 0;
	default:
		return 0;
	}
	ws_conn_flush_all(c->srv);
	return 0;
}

/* ---- timers and drain ---- */

void
ws_conn_sweep(struct ws_server *srv)
{
	uint32_t t = srv->now;
	uint64_t now_ms = ws_clock_mono_ms(); /* the rate buckets' clock (io_idle) */
	uint32_t ping = srv->cfg->ping_interval_ms, idle = srv->cfg->idle_timeout_ms;
	ws_list_for_each (l, &srv->conns) {
		struct ws_conn *c = ws_list_entry(l, struct ws_conn, link);
		if (c->state == CONN_OPEN && !(c->flags & CONN_DEAD)) {
			if (ping) {
				/* c->io stays while a ping is out (io_idle) */
				if (c->flags & CONN_PING_OUT) {
					if (t - c->io->ping_sent >= ping)
						close_with(c, WS_CLOSE_GOING_AWAY, "ping timeout");
				} else if (t - c->last_rx >= ping && io_get(c)) {
					c->flags |= CONN_PING_OUT;
					c->io->ping_sent = t;
					queue_frame(c, WS_OP_PING, NULL, 0);
				}
			}
			if (idle && c->state == CONN_OPEN && t - c->last_msg >= idle)
				close_with(c, WS_CLOSE_GOING_AWAY, "idle timeout");
		}
		/*
		 * An idle connection keeps no buffers and no io at all; a busy one
		 * keeps them (no churn).
		 */
		struct ws_conn_io *io = c->io;
		if (io && t - c->last_rx >= TRIM_AFTER_MS) {
			if (io_idle(c, now_ms)) {
				io_free(c);
			} else {
				if (io->out.len == 0 && io->out.data)
					ws_buf_finish(&io->out);
				if (!ws_rx_busy(&io->rx))
					ws_rx_trim(&io->rx);
			}
		}
	}
	ws_conn_flush_all(srv);
}

void
ws_conn_drain_all(struct ws_server *srv)
{
	ws_list_for_each (l, &srv->conns) {
		struct ws_conn *c = ws_list_entry(l, struct ws_conn, link);
		if (c->state == CONN_OPEN)
			close_with(c, WS_CLOSE_GOING_AWAY, "going away");
		else if (!(c->flags & CONN_WS))
			kill_async(c); /* a request half read, or an answer the client holds open */
	}
	ws_conn_flush_all(srv);
}

/* ---- the servers' API ---- */

/* Whether n more bytes fit the send queue; if not, the connection is closed 1008. */
static bool
room_for(struct ws_conn *c, size_t n)
{
	if (c->state != CONN_OPEN || (c->flags & CONN_DEAD))
		return false;
	/*
	 * A message alone is bounded by its maker (a welcome, a command's
	 * result); the queue bounds what piles up behind it.
	 */
	uint64_t total = c->srv->queued + n;
	uint32_t queued = out_len(c);
	if (queued <= LONE_SLACK ||
	    ((uint64_t)queued + n <= c->srv->cfg->send_queue && total <= c->srv->cfg->max_queued))
		return true;
	/*
	 * Over its own queue, or over the server's total with a backlog of its
	 * own: many slow readers together cannot hold more than --max-queued.
	 */
	c->srv->metrics.slow_consumers++;
	ws_log(WS_LOG_INFO, "slow-consumer id=%llu addr=%s queued=%u", (unsigned long long)c->id,
	       ws_conn_addr(c), queued);
	close_with(c, WS_CLOSE_POLICY, "slow consumer");
	return false;
}

bool
ws_conn_send(struct ws_conn *c, enum ws_opcode op, const void *data, size_t len)
{
	if (!room_for(c, len + WS_FRAME_HEADER_MAX))
		return false;
	c->srv->metrics.messages_out++;
	return queue_frame(c, op, data, len);
}

bool
ws_conn_send_frame(struct ws_conn *c, const void *frame, size_t len)
{
	if (!room_for(c, len))
		return false;
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return false;
	if (!ws_buf_append(&io->out, frame, len))
		return oom(c, len);
	c->srv->metrics.messages_out++;
	mark_dirty(c);
	return true;
}

void
ws_conn_notify_drained(struct ws_conn *c)
{
	if (!c->srv->app->drained)
		return;
	struct ws_conn_io *io = io_get(c);
	if (!io)
		return;
	io->notify_drained = true;
	if (io->out.len == 0)
		mark_dirty(c);
}

void
ws_conn_close(struct ws_conn *c, uint16_t code, const char *reason)
{
	close_with(c, code, reason);
}

void
ws_conn_set_user(struct ws_conn *c, void *user)
{
	c->user = user;
}

void *
ws_conn_user(const struct ws_conn *c)
{
	return c->user;
}

uint64_t
ws_conn_id(const struct ws_conn *c)
{
	return c->id;
}

size_t
ws_conn_queued(const struct ws_conn *c)
{
	return out_len(c);
}

const char *
ws_conn_addr(const struct ws_conn *c)
{
	static char text[INET6_ADDRSTRLEN];
	if (IN6_IS_ADDR_V4MAPPED(&c->addr))
		inet_ntop(AF_INET, &c->addr.s6_addr[12], text, sizeof(text));
	else
		inet_ntop(AF_INET6, &c->addr, text, sizeof(text));
	return text;
}
