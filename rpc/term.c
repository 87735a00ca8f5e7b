#include "term.h"

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "kept.h"
#include "log.h"
#include "proto.h"

/* The largest control message read (a resize is ~40 bytes). */
#define CONTROL_MAX 4096

struct rpc_term {
	struct rpc_hub *hub;
	struct ws_conn *c;
	struct rpc_kept_watcher *w;
	char id[24];
};

bool
rpc_term_path(struct ws_slice path)
{
	static const char seg[] = "/terminal";
	size_t n = sizeof(seg) - 1;
	return path.n >= n && memcmp(path.p + path.n - n, seg, n) == 0;
}

static void
send_control(struct rpc_term *t, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text)
		ws_conn_send(t->c, WS_OP_TEXT, text, strlen(text));
	free(text);
}

static void
send_error(struct rpc_term *t, const char *message)
{
	send_control(t, json_pack("{s:s, s:s}", "type", "error", "message", message));
}

/* Cursors are byte offsets, sent as decimal strings (the 0.13 addon keeps them as strings). */
static json_t *
cursor(uint64_t off)
{
	return json_sprintf("%" PRIu64, off);
}

static bool
term_output(void *arg, enum rpc_stream s, uint64_t offset, const uint8_t *p, size_t n)
{
	struct rpc_term *t = arg;
	/* the 0.13 addon wants each frame announced; 0.12's ignores the announcement */
	send_control(t, json_pack("{s:s, s:o, s:I}", "type", "chunk", "cursor", cursor(offset + n),
				  "byteLength", (json_int_t)n));
	ws_conn_send(t->c, WS_OP_BINARY, p, n);
	if (ws_conn_queued(t->c) <= RPC_KEPT_WATCH_QUEUED)
		return true;
	ws_conn_notify_drained(t->c);
	return false;
}

static void
term_lost(void *arg, enum rpc_stream s, uint64_t from, uint64_t to)
{
	struct rpc_term *t = arg;
	send_control(t, json_pack("{s:s, s:o, s:I, s:I}", "type", "truncated", "cursor", cursor(to),
				  "from", (json_int_t)from, "to", (json_int_t)to));
}

static void
term_exit(void *arg, const struct rpc_kept_status *st)
{
	struct rpc_term *t = arg;
	json_t *sig = rpc_proto_signal(st->signal);
	/* both generations: 0.12 reads code/signal, 0.13 exit.{code,signal} */
	send_control(t, json_pack("{s:s, s:i, s:O, s:o, s:{s:i, s:O}, s:b}", "type", "exit", "code",
				  st->exit_code, "signal", sig, "cursor",
				  cursor(st->end[RPC_STDOUT]), "exit", "code", st->exit_code,
				  "signal", sig, "timedOut", st->timed_out));
	json_decref(sig);
	ws_conn_close(t->c, WS_CLOSE_NORMAL, "exited");
}

static void
term_gone(void *arg)
{
	struct rpc_term *t = arg;
	t->w = NULL;
	ws_conn_close(t->c, WS_CLOSE_GOING_AWAY, "process dropped");
}

static const struct rpc_kept_watch_ops term_ops = {
	.output = term_output,
	.lost = term_lost,
	.exit = term_exit,
	.gone = term_gone,
};

static bool
matches(const regex_t *re, const char *s)
{
	return re && regexec(re, s, 0, NULL, 0) == 0;
}

/* Starts the shell on a pty; NULL with a reason. */
static struct rpc_kept *
start_shell(struct rpc_term *t, const char *shell, uint16_t cols, uint16_t rows, char *err,
	    size_t errlen)
{
	const struct rpc_limits *l = t->hub->limits;
	/* a shell runs anything: only a policy that allows shells and matches it lets one start */
	if ((l->allow && (!l->allow_shell || !matches(l->allow, shell))) ||
	    matches(l->deny, shell)) {
		snprintf(err, errlen, "terminals are refused by the command policy");
		return NULL;
	}
	/* login style: argv[0] is the shell's name after a '-' */
	const char *base = strrchr(shell, '/');
	char login[64];
	snprintf(login, sizeof(login), "-%s", base ? base + 1 : shell);
	char *argv[] = { login, NULL };
	char *envp[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		(char *)(l->home_env ? l->home_env : "HOME=/tmp"),
		"LANG=C.UTF-8",
		"TERM=xterm-256color",
		NULL,
	};
	struct rpc_exec_spec spec = {
		.argv = argv,
		.path = shell,
		.envp = envp,
		.cwd = "/tmp",
		.stdin_open = true,
		/* a person's session: the longest a command may ask for */
		.timeout_ms = l->exec_timeout_max_ms,
		.pty = true,
		.cols = cols,
		.rows = rows,
	};
	return rpc_kept_start(t->hub->kept, &spec, shell, err, errlen);
}

/* A query argument that must be an integer in [lo, hi]; absent leaves *out. False when invalid. */
static bool
query_uint(const struct ws_http_request *req, const char *name, uint64_t lo, uint64_t hi,
	   uint64_t *out)
{
	char buf[24];
	enum ws_http_arg a = ws_http_query_arg(req, name, buf, sizeof(buf));
	if (a == WS_HTTP_ARG_ABSENT)
		return true;
	if (a != WS_HTTP_ARG_FOUND || !buf[0] || buf[0] == '-' || buf[0] == '+')
		return false;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static struct rpc_term *
refuse(struct rpc_term *t, const char *why)
{
	ws_log(WS_LOG_INFO, "terminal-refused id=%llu reason=\"%s\"",
	       (unsigned long long)ws_conn_id(t->c), why);
	send_error(t, why);
	ws_conn_close(t->c, WS_CLOSE_POLICY, "terminal refused");
	free(t);
	return NULL;
}

struct rpc_term *
rpc_term_create(struct rpc_hub *hub, struct ws_conn *c, const struct ws_http_request *req,
		const char *shell)
{
	struct rpc_term *t = calloc(1, sizeof(*t));
	if (!t) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		return NULL;
	}
	*t = (struct rpc_term){ .hub = hub, .c = c };
	char id[24], session[RPC_KEPT_NAME_MAX + 2];
	uint64_t since = UINT64_MAX, cols = 80, rows = 24;
	enum ws_http_arg has_id = ws_http_query_arg(req, "id", id, sizeof(id));
	enum ws_http_arg has_session = ws_http_query_arg(req, "session", session, sizeof(session));
	if (has_id == WS_HTTP_ARG_INVALID)
		return refuse(t, "id: not a process id");
	if (has_session == WS_HTTP_ARG_INVALID ||
	    (has_session == WS_HTTP_ARG_FOUND && !rpc_kept_name_valid(session)))
		return refuse(t, "session: 1 to 23 of A-Z a-z 0-9 . _ -, not p and digits");
	if (has_id == WS_HTTP_ARG_FOUND && has_session == WS_HTTP_ARG_FOUND)
		return refuse(t, "id and session: one or the other");
	if (!query_uint(req, "cursor", 0, INT64_MAX, &since))
		return refuse(t, "cursor: not a byte offset");
	/* a named session is attached when it exists, else started under that name */
	struct rpc_kept *named = has_session == WS_HTTP_ARG_FOUND
					 ? rpc_kept_find(hub->kept, session)
					 : NULL;
	/*
	 * Its shell exited: a reconnect (with a cursor) still gets the rest
	 * and the exit; a fresh open (none) gets a new shell under the name
	 * instead of the old one's lingering record, which is dropped.
	 */
	if (named && !rpc_kept_running(named) && since == UINT64_MAX) {
		rpc_kept_forget(named);
		named = NULL;
	}
	if (named) {
		snprintf(id, sizeof(id), "%s", rpc_kept_id(named));
		has_id = WS_HTTP_ARG_FOUND;
	}
	if (!query_uint(req, "cols", 1, RPC_PTY_MAX, &cols) ||
	    !query_uint(req, "rows", 1, RPC_PTY_MAX, &rows))
		return refuse(t, RPC_PTY_BAD);
	struct rpc_kept *k;
	char err[256];
	if (has_id == WS_HTTP_ARG_FOUND) {
		if (!(k = rpc_kept_find(hub->kept, id)))
			return refuse(t, "no such terminal");
		/*
		 * Only a pty's output is one stream of terminal bytes; a pipe
		 * process's stderr has offsets of its own (attach it with ws-rpc).
		 */
		if (!rpc_kept_pty(k))
			return refuse(t,
				      "not a terminal: the process is not on a pty (attach to it "
				      "with ws-rpc's attach)");
	} else if (!(k = start_shell(t, shell, (uint16_t)cols, (uint16_t)rows, err, sizeof(err)))) {
		return refuse(t, err);
	} else if (has_session == WS_HTTP_ARG_FOUND) {
		rpc_kept_set_name(k, session);
	}
	snprintf(t->id, sizeof(t->id), "%s", rpc_kept_id(k));
	uint64_t start, end;
	rpc_kept_range(k, RPC_STDOUT, &start, &end);
	/* no cursor: all that is held; one past the end: from the end */
	if (since == UINT64_MAX)
		since = start;
	if (since > end)
		since = end;
	json_t *ready = json_pack("{s:s, s:o, s:s, s:i, s:b}", "type", "ready", "cursor",
				  cursor(since), "id", t->id, "pid", (int)rpc_kept_pid(k),
				  "running", rpc_kept_running(k));
	if (has_session == WS_HTTP_ARG_FOUND)
		json_object_set_new(ready, "session", json_string(session));
	send_control(t, ready);
	/* a reattached size wins over the program's last one: the screen is redrawn for it */
	if (has_id == WS_HTTP_ARG_FOUND &&
	    (ws_http_query_arg(req, "cols", err, 8) || ws_http_query_arg(req, "rows", err, 8)))
		rpc_kept_resize(k, (uint16_t)cols, (uint16_t)rows);
	uint64_t from[3] = { 0 };
	from[RPC_STDOUT] = since;
	ws_log(WS_LOG_INFO, "terminal-open id=%llu process=%s since=%llu",
	       (unsigned long long)ws_conn_id(c), t->id, (unsigned long long)since);
	if (!(t->w = rpc_kept_attach(k, &term_ops, t, from))) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		free(t);
		return NULL;
	}
	return t;
}

void
rpc_term_destroy(struct rpc_term *t)
{
	if (!t)
		return;
	rpc_kept_detach(t->w);
	free(t);
}

enum rpc_term_control
rpc_term_parse_control(const uint8_t *data, size_t len, uint16_t *cols, uint16_t *rows,
		       const char **why)
{
	if (len > CONTROL_MAX) {
		*why = "control message larger than 4096 bytes";
		return RPC_TERM_BAD;
	}
	json_t *msg = json_loadb((const char *)data, len, 0, NULL);
	const char *type = json_string_value(json_object_get(msg, "type"));
	enum rpc_term_control kind = RPC_TERM_BAD;
	if (!type) {
		*why = "control messages are JSON objects with a \"type\"";
	} else if (strcmp(type, "resize") == 0) {
		if (rpc_session_size_valid(json_object_get(msg, "cols"),
					   json_object_get(msg, "rows"), cols, rows))
			kind = RPC_TERM_RESIZE;
		else
			*why = "resize: " RPC_PTY_BAD;
	} else if (strcmp(type, "ping") == 0) {
		kind = RPC_TERM_PING;
	} else {
		*why = "unknown control message type (the client sends resize)";
	}
	json_decref(msg);
	return kind;
}

static void
control(struct rpc_term *t, const uint8_t *data, size_t len)
{
	uint16_t cols, rows;
	const char *why = NULL;
	struct rpc_kept *k = t->w ? rpc_kept_watched(t->w) : NULL;
	switch (rpc_term_parse_control(data, len, &cols, &rows, &why)) {
	case RPC_TERM_RESIZE:
		if (!k || rpc_kept_resize(k, cols, rows) != 0)
			send_error(t, "resize: the terminal has exited");
		return;
	case RPC_TERM_PING:
		send_control(t, json_pack("{s:s}", "type", "pong"));
		return;
	case RPC_TERM_BAD:
		send_error(t, why);
		return;
	}
}

void
rpc_term_message(struct rpc_term *t, bool text, const uint8_t *data, size_t len)
{
	if (text) {
		control(t, data, len);
		return;
	}
	if (!t->w || !len)
		return;
	int rc = rpc_kept_stdin(rpc_kept_watched(t->w), data, len, false);
	if (rc == -ENOSPC)
		send_error(t, "input dropped: the terminal has 1 MiB of input not yet read");
	else if (rc < 0)
		send_error(t, "input dropped: the terminal has exited");
}

void
rpc_term_drained(struct rpc_term *t)
{
	if (t->w)
		rpc_kept_pump(t->w);
}
