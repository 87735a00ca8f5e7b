/*
 * The server's life: one lws context on libuv, one raw-socket vhost per
 * listening address, readiness once bound, a one-second sweep for
 * keepalive and idle limits, and one shutdown path (stop accepting, close
 * every client 1001, wait up to --drain-timeout, destroy the context).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "clock.h"
#include "listen.h"
#include "log.h"
#include "notify.h"
#include "page.h"
#include "server_private.h"
#include "watch.h"

/* Keepalive and idle limits are checked this often, or more often for short ones. */
#define SWEEP_MAX_MS 1000u
#define SWEEP_MIN_MS 50u

/* Output past which a peer that does not read is no longer read either. */
#define RX_PAUSE_MAX (256u * 1024u)

/* The kernel caps it at net.core.somaxconn. */
#define LISTEN_BACKLOG 4096

/* Only for the poll() fallback, where lws cannot hand signals to the loop. */
static volatile sig_atomic_t fallback_signal;

static void stop_cb(lws_sorted_usec_list_t *sul);
static void stop_listening(struct ws_server *srv);

static void
schedule_stop(struct ws_server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	lws_sul_schedule(srv->ctx, 0, &srv->stop_sul, stop_cb, 1);
	/* from a signal watcher lws would not re-arm its timer until the next I/O */
	lws_cancel_service(srv->ctx);
}

static void
log_flush_cb(lws_sorted_usec_list_t *sul)
{
	ws_log_flush();
}

static void
request_log_flush(void *arg)
{
	struct ws_server *srv = arg;
	lws_sul_schedule(srv->ctx, 0, &srv->log_sul, log_flush_cb, 1);
}

static void
defer_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_server *srv = lws_container_of(sul, struct ws_server, defer_sul);
	srv->deferred = false;
	if (srv->app->deferred)
		srv->app->deferred(srv->app_state);
	ws_conn_flush_all(srv);
}

void
ws_server_defer(struct ws_server *srv)
{
	if (srv->deferred)
		return;
	srv->deferred = true;
	/* lws arms its timer when the current event's handling ends: next turn */
	lws_sul_schedule(srv->ctx, 0, &srv->defer_sul, defer_cb, 1);
}

static void
stop_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_server *srv = lws_container_of(sul, struct ws_server, stop_sul);
	ws_log(WS_LOG_INFO, "stop open=%llu", (unsigned long long)srv->metrics.connections_open);
	ws_conn_close_all_apps(srv);
	if (srv->app->stop && !srv->app_stopped) {
		srv->app_stopped = true;
		srv->app->stop(srv->app_state);
	}
	/* under libuv this is what ends the loop; the caller destroys again after */
	if (srv->uv)
		lws_context_destroy(srv->ctx);
	else
		lws_cancel_service(srv->ctx);
}

void
ws_server_conn_gone(struct ws_server *srv)
{
	if (srv->draining && srv->sockets == 0)
		schedule_stop(srv);
}

static void
drain_timeout_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_server *srv = lws_container_of(sul, struct ws_server, drain_sul);
	ws_log(WS_LOG_WARN, "drain-timeout remaining=%u", srv->sockets);
	schedule_stop(srv);
}

static void
begin_drain(struct ws_server *srv, int signum)
{
	if (srv->draining) {
		ws_log(WS_LOG_WARN, "signal signal=%d second=yes exiting=now", signum);
		_exit(1);
	}
	srv->draining = true;
	ws_log(WS_LOG_INFO, "drain signal=%d open=%llu timeout_ms=%u", signum,
	       (unsigned long long)srv->metrics.connections_open, srv->cfg->drain_timeout_ms);
	stop_listening(srv);
	if (srv->app->drain)
		srv->app->drain(srv->app_state);
	ws_conn_drain_all(srv);
	lws_sul_schedule(srv->ctx, 0, &srv->drain_sul, drain_timeout_cb,
			 (lws_usec_t)srv->cfg->drain_timeout_ms * 1000);
	ws_server_conn_gone(srv);
}

static void
on_uv_signal(void *handle, int signum)
{
	/* lws points each of its signal watchers at the context */
	struct lws_context *ctx = ((uv_signal_t *)handle)->data;
	begin_drain(lws_context_user(ctx), signum);
}

static void
fallback_handler(int signum)
{
	if (fallback_signal)
		_exit(1);
	fallback_signal = signum;
	lws_cancel_service(NULL);
}

static void
sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_server *srv = lws_container_of(sul, struct ws_server, sweep_sul);
	ws_server_clock(srv);
	ws_conn_sweep(srv);
	lws_sul_schedule(srv->ctx, 0, &srv->sweep_sul, sweep_cb, (lws_usec_t)srv->sweep_ms * 1000);
}

void
ws_server_clock(struct ws_server *srv)
{
	srv->now = (uint32_t)(ws_clock_mono_ms() - srv->started_ms);
}

bool
ws_server_builtin_http(struct ws_server *srv, struct ws_conn *c, const struct ws_http_request *req)
{
	struct ws_slice p = req->path;
	if (p.n == 1 && p.p[0] == '/') {
		ws_conn_respond(c, 200, "text/html; charset=utf-8", NULL, ws_page_html,
				ws_page_html_len);
		return true;
	}
	if (p.n == 8 && memcmp(p.p, "/healthz", 8) == 0) {
		const char *why = srv->app->health ? srv->app->health(srv->app_state) : NULL;
		const char *status = srv->draining ? "draining" : why ? "degraded" : "ok";
		char body[384];
		int n = snprintf(body, sizeof(body),
				 "{\"status\":\"%s\",\"server\":\"%s\",\"version\":\"%s\","
				 "\"connections\":%llu,\"uptime_s\":%llu%s%.96s%s}\n",
				 status, srv->app->name, WS_VERSION,
				 (unsigned long long)srv->metrics.connections_open,
				 (unsigned long long)ws_server_uptime_s(srv),
				 why ? ",\"reason\":\"" : "", why ? why : "", why ? "\"" : "");
		ws_conn_respond(c, srv->draining || why ? 503 : 200, "application/json", NULL, body,
				(size_t)n);
		return true;
	}
	if (p.n == 8 && memcmp(p.p, "/metrics", 8) == 0) {
		srv->scratch.len = 0;
		srv->scratch.head = 0;
		bool ok = ws_metrics_render(&srv->metrics, srv->app->name, &srv->scratch);
		if (ok && srv->app->metrics)
			srv->app->metrics(srv->app_state, &srv->scratch);
		if (!ok)
			return false;
		ws_conn_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
				ws_buf_begin(&srv->scratch), srv->scratch.len);
		return true;
	}
	return false;
}

/* Enough descriptors for --max-connections, and lws sizes its table from this. */
static void
raise_nofile(uint32_t max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)max_connections + WS_SOCKET_SLACK + WS_FD_RESERVE;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		ws_log(WS_LOG_WARN, "nofile limit=%llu wanted=%llu",
		       (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

static struct lws_context *
create_context(struct ws_server *srv, const struct lws_protocols *protocols)
{
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_LIBUV |
		       LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
	info.protocols = protocols;
	info.user = srv;
	info.count_threads = 1;
	/* one read takes up to this much; the buffer is per thread, not per connection */
	info.pt_serv_buf_size = 256 * 1024;
	info.signal_cb = on_uv_signal;
	srv->uv = true;
	struct lws_context *ctx = lws_create_context(&info);
	if (ctx)
		return ctx;

	ws_log(WS_LOG_WARN, "libuv unavailable=yes fallback=poll "
			    "hint=\"install libwebsockets-evlib-uv\"");
	info.options &= ~(uint64_t)(LWS_SERVER_OPTION_LIBUV |
				    LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN);
	info.signal_cb = NULL;
	srv->uv = false;
	return lws_create_context(&info);
}

/* Accepted per readable event at most, so one listener cannot hog a loop turn. */
#define ACCEPT_BATCH 64
/* After EMFILE/ENFILE, accepting pauses this long (level-triggered: no spin). */
#define ACCEPT_PAUSE_MS 100

static void
accept_resume_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_server *srv = lws_container_of(sul, struct ws_server, accept_sul);
	for (unsigned i = 0; i < srv->nlisten; i++)
		if (srv->listen[i])
			ws_watch_read(srv->listen[i], true);
}

static bool
on_listen_readable(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev)
{
	struct ws_server *srv = arg;
	if (ev != WS_WATCH_READABLE)
		return true;
	for (int i = 0; i < ACCEPT_BATCH && !srv->draining; i++) {
		int s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				ws_log(WS_LOG_WARN, "accept failed=yes error=\"%s\" pause_ms=%d",
				       strerror(errno), ACCEPT_PAUSE_MS);
				for (unsigned j = 0; j < srv->nlisten; j++)
					if (srv->listen[j])
						ws_watch_read(srv->listen[j], false);
				lws_sul_schedule(srv->ctx, 0, &srv->accept_sul, accept_resume_cb,
						 (lws_usec_t)ACCEPT_PAUSE_MS * 1000);
			}
			break; /* EAGAIN, or a connection that died in the queue */
		}
		int one = 1;
		setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		lws_sock_file_fd_type d = { .sockfd = s };
		/* lws closes the socket itself when it cannot adopt it */
		lws_adopt_descriptor_vhost(srv->conn_vhost, LWS_ADOPT_SOCKET, d,
					   srv->protocols[0].name, NULL);
	}
	return true;
}

static void
stop_listening(struct ws_server *srv)
{
	for (unsigned i = 0; i < srv->nlisten; i++) {
		ws_watch_close(srv->listen[i]);
		srv->listen[i] = NULL;
	}
	srv->nlisten = 0;
}

static bool
listen_all(struct ws_server *srv, const struct lws_protocols *protocols)
{
	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof(vi));
	vi.vhost_name = "ws-conn";
	vi.port = CONTEXT_PORT_NO_LISTEN;
	vi.protocols = protocols;
	srv->conn_vhost = lws_create_vhost(srv->ctx, &vi);
	if (!srv->conn_vhost)
		return false;

	struct ws_listen_set set;
	if (!ws_listen_open(&set, srv->cfg->host, (uint16_t)srv->cfg->port, LISTEN_BACKLOG))
		return false;
	bool ok = true;
	for (unsigned i = 0; i < set.n; i++) {
		int fd = set.fds[i];
		set.fds[i] = -1; /* the watch owns it now, even when it fails */
		srv->listen[i] = ok ? ws_watch_create(srv, fd, on_listen_readable, srv) : NULL;
		if (!ok)
			close(fd);
		else if (!srv->listen[i])
			ok = false;
		else
			srv->nlisten = i + 1;
		if (ok)
			ws_log(WS_LOG_INFO, "listen server=%s host=%s port=%u loop=%s",
			       srv->app->name, set.addrs[i], set.port, srv->uv ? "libuv" : "poll");
	}
	return ok;
}

int
ws_server_run(const struct ws_app *app, void *app_state, const struct ws_config *cfg)
{
	static const struct lws_protocols protocols[] = {
		{ "ws-raw", ws_conn_callback, sizeof(struct ws_conn), 0, 0, NULL, 0 },
		{ "ws-watch", ws_watch_callback, 0, 0, 0, NULL, 0 },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	struct ws_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return WS_EXIT_SYSTEM;
	*srv = (struct ws_server){
		.app = app,
		.app_state = app_state,
		.cfg = cfg,
		.started_ms = ws_clock_mono_ms(),
		.rate = { cfg->rate_limit, cfg->rate_burst },
		.sweep_ms = SWEEP_MAX_MS,
		/* stop reading a peer at half its queue, so echoing never overflows it */
		.pause_bytes = cfg->send_queue / 2 < RX_PAUSE_MAX ? (uint32_t)(cfg->send_queue / 2)
								  : RX_PAUSE_MAX,
	};

	ws_list_init(&srv->conns);
	signal(SIGPIPE, SIG_IGN);
	if (app->start)
		app->start(app_state, srv);
	raise_nofile(cfg->max_connections);

	int status = WS_EXIT_SYSTEM;
	srv->protocols = protocols;
	srv->ctx = create_context(srv, protocols);
	if (!srv->ctx) {
		ws_log(WS_LOG_ERROR, "start failed=lws_create_context");
		goto out;
	}
	if (!srv->uv) {
		struct sigaction sa = { .sa_handler = fallback_handler };
		sigemptyset(&sa.sa_mask);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	bool started = listen_all(srv, protocols);
	if (started && app->confine && app->confine(app_state, cfg) != 0) {
		ws_log(WS_LOG_ERROR, "confine failed=yes hint=\"--no-self-sandbox turns it off\"");
		started = false;
	}
	if (!started) {
		/* the one way out of a context under libuv is through its loop */
		schedule_stop(srv);
		goto loop;
	}
	/* what start-up logged (the port among it) is out before anyone is told */
	ws_log_flush();
	ws_log_set_flush_hook(request_log_flush, srv);
	int err = ws_notify_ready(cfg->notify_fd);
	if (err)
		ws_log(WS_LOG_WARN, "notify failed=yes error=\"%s\"", strerror(-err));
	/* a quarter of the shortest limit keeps its error under a quarter */
	uint32_t shortest = SWEEP_MAX_MS * 4;
	if (cfg->ping_interval_ms && cfg->ping_interval_ms < shortest)
		shortest = cfg->ping_interval_ms;
	if (cfg->idle_timeout_ms && cfg->idle_timeout_ms < shortest)
		shortest = cfg->idle_timeout_ms;
	srv->sweep_ms = shortest / 4 < SWEEP_MIN_MS ? SWEEP_MIN_MS : shortest / 4;
	lws_sul_schedule(srv->ctx, 0, &srv->sweep_sul, sweep_cb, (lws_usec_t)srv->sweep_ms * 1000);
#ifndef NDEBUG
	if (cfg->debug_exec_after_start) {
		/* proves the self-sandbox: under it this call kills the process */
		char *const argv[] = { "/bin/true", NULL };
		execve(argv[0], argv, environ);
		ws_log(WS_LOG_ERROR, "debug-exec failed=yes error=\"%s\"", strerror(errno));
	}
#endif

loop:
	for (;;) {
		if (lws_service(srv->ctx, 0) < 0)
			break;
		if (!srv->uv && fallback_signal && !srv->draining)
			begin_drain(srv, fallback_signal);
		if (srv->stopping)
			break;
	}
	status = started ? WS_EXIT_OK : WS_EXIT_SYSTEM;
out:
	if (srv->ctx)
		ws_conn_close_all_apps(srv);
	if (srv->ctx && app->stop && !srv->app_stopped) {
		srv->app_stopped = true;
		app->stop(app_state);
	}
	if (srv->ctx)
		lws_context_destroy(srv->ctx);
	ws_buf_finish(&srv->scratch);
	ws_conn_ip_table_free(srv);
	ws_log_set_flush_hook(NULL, NULL);
	ws_log(WS_LOG_INFO, "exit status=%d", status);
	free(srv);
	return status;
}

struct ws_metrics *
ws_server_metrics(struct ws_server *srv)
{
	return &srv->metrics;
}

uint64_t
ws_server_uptime_s(const struct ws_server *srv)
{
	return (ws_clock_mono_ms() - srv->started_ms) / 1000;
}
