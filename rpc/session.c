#define _GNU_SOURCE /* sigabbrev_np */
#include "session.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "buf.h"
#include "clock.h"
#include "encode.h"
#include "info.h"
#include "list.h"
#include "log.h"
#include "proto.h"
#include "server.h"

/* Output waiting for a slow client past which commands stop being read. */
#define PAUSE_QUEUED (1u << 20)
/*
 * A message the rate limit dropped is parsed for its id only up to this
 * size: parsing costs the loop ~0.1 s per MiB, and the limit is there to
 * bound that work. A larger one is answered without its id.
 */
#define RATE_LIMITED_PARSE_MAX 4096
#define BATCH_TOO_LARGE "batch larger than the server's --max-batch"
#define ENV_MAX RPC_ARGV_MAX

struct reply_text {
	char *text; /* NULL: an exec's place, filled when it is done */
	size_t len;
};

/* A JSON-RPC batch: its replies are kept as text, so their size is known. */
struct batch {
	struct reply_text *items;
	size_t n;         /* replies so far (items has room for the batch's size) */
	size_t bytes;     /* their length */
	uint64_t held;    /* output its execs hold (one --max-reply between them) */
	unsigned pending; /* replies still to come (running execs) */
};

struct cmd {
	struct rpc_session *s;
	struct ws_list link; /* in s->cmds */
	struct rpc_exec *x;
	json_t *id;  /* owned; NULL when the request had none */
	char *label; /* the command, for list */
	struct batch *batch;
	size_t slot; /* its place in batch->items */
	/*
	 * Output a result will carry (not streamed), already encoded as the
	 * inside of a JSON string: its size is the reply's, and counts against
	 * the budgets (held) as it arrives.
	 */
	struct ws_buf enc[3];
	uint64_t held;
	uint8_t carry[3][4]; /* a UTF-8 sequence (or base64 group) cut between chunks */
	uint8_t carry_len[3];
	enum rpc_dialect dialect;
	bool stream, base64, reply;
	bool cut; /* a budget ran out: the rest of the output is dropped */
};

/* This connection watching a kept process (attach, or exec with keep). */
struct watch {
	struct rpc_session *s;
	struct ws_list link; /* in s->watches */
	struct rpc_kept_watcher *w;
	char id[24];
	enum rpc_dialect dialect;
	bool base64;
	uint8_t carry[3][4]; /* a UTF-8 sequence cut between chunks, and where it began */
	uint8_t carry_len[3];
	uint64_t carry_at[3];
};

struct rpc_session {
	struct rpc_hub *hub;
	struct ws_conn *c;
	struct ws_list cmds;    /* running commands (cmd.link) */
	struct ws_list watches; /* kept processes watched (watch.link) */
	unsigned ncmds;
	struct ws_rate rate;
	uint64_t held;   /* output held for this connection's results */
	uint64_t unsent; /* the part of it already queued to the client */
	bool paused;
};

static void
send_text(struct rpc_session *s, const char *text, size_t len)
{
	ws_conn_send(s->c, WS_OP_TEXT, text, len);
}

static void
send_json(struct rpc_session *s, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text)
		send_text(s, text, strlen(text));
	free(text);
}

/* Output held by results that are now queued: it stops counting once the client read it. */
static void
release_when_read(struct rpc_session *s, uint64_t held)
{
	if (!held)
		return;
	s->unsent += held;
	ws_conn_notify_drained(s->c);
}

static void
release(struct rpc_session *s, uint64_t held)
{
	s->held -= held;
	s->hub->held -= held;
}

static void
batch_put(struct batch *b, size_t slot, char *text, size_t len)
{
	b->items[slot] = (struct reply_text){ text, len };
	b->bytes += len;
}

/* A reply to a request: straight out, or into its batch. NULL replies are skipped. */
static void
answer(struct rpc_session *s, struct batch *b, json_t *o)
{
	if (!o)
		return;
	if (!b) {
		send_json(s, o);
		return;
	}
	char *text = json_dumps(o, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	/* a batch's replies stay within --max-reply (its execs' output has its own share) */
	/* with the array's brackets and commas: the batch as it is sent */
	if (text && b->bytes + len + b->n + 2 > s->hub->limits->max_reply) {
		free(text);
		json_t *e = rpc_proto_error(RPC_JSONRPC, json_object_get(o, "id"), RPC_E_INTERNAL,
					    "reply larger than the server's --max-reply");
		text = json_dumps(e, JSON_COMPACT);
		json_decref(e);
		len = text ? strlen(text) : 0;
	}
	json_decref(o);
	if (text)
		batch_put(b, b->n++, text, len);
}

static void
batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].text);
	free(b->items);
	free(b);
}

static void
batch_done(struct rpc_session *s, struct batch *b)
{
	if (b->pending)
		return;
	size_t total = 2 + b->bytes + b->n;
	char *text = b->n ? malloc(total) : NULL;
	if (text) {
		size_t w = 0;
		text[w++] = '[';
		for (size_t i = 0; i < b->n; i++) {
			if (!b->items[i].text)
				continue;
			if (w > 1)
				text[w++] = ',';
			memcpy(text + w, b->items[i].text, b->items[i].len);
			w += b->items[i].len;
		}
		text[w++] = ']';
		send_text(s, text, w);
		free(text);
	}
	release_when_read(s, b->held);
	batch_free(b);
}

static json_t *
error_for(const struct rpc_request *r, enum rpc_error e, const char *detail)
{
	if (r->notification)
		return NULL;
	return rpc_proto_error(r->dialect, r->id, e, detail);
}

static struct cmd *
find_cmd(struct rpc_session *s, json_t *id)
{
	if (!id)
		return NULL;
	ws_list_for_each (l, &s->cmds) {
		struct cmd *c = ws_list_entry(l, struct cmd, link);
		if (c->id && json_equal(c->id, id))
			return c;
	}
	return NULL;
}

/* ---- output ---- */

static json_t *
encode(const struct cmd *c, const uint8_t *p, size_t n)
{
	char *out = malloc(c->base64 ? 4 * ((n + 2) / 3) + 1 : 3 * n + 1);
	if (!out)
		return json_string("");
	size_t len, used;
	if (c->base64)
		len = ws_base64_encode(p, n, out);
	else
		len = rpc_encode_utf8(p, n, true, out, &used);
	json_t *j = json_stringn(out, len);
	free(out);
	return j;
}

static uint64_t
left(uint64_t limit, uint64_t used)
{
	return used < limit ? limit - used : 0;
}

/* Encoded bytes this command's result may still take: the least of its budgets. */
static uint64_t
room_left(const struct cmd *c)
{
	const struct rpc_limits *l = c->s->hub->limits;
	uint64_t room = left(l->max_reply, c->batch ? c->batch->held : c->held);
	uint64_t conn = left(l->max_buffered_per_conn, c->s->held);
	uint64_t all = left(l->max_buffered, c->s->hub->held);
	if (conn < room)
		room = conn;
	return all < room ? all : room;
}

/*
 * Output of a command whose result will carry it: encoded now, as far as
 * the budgets allow. When one runs out the result is cut (truncated) and
 * the rest of the output is dropped.
 */
static void
collect(struct cmd *c, enum rpc_stream st, const uint8_t *p, size_t n, bool final)
{
	if (c->cut || (!n && !c->carry_len[st]))
		return;
	const uint8_t *src = p;
	size_t total = n;
	uint8_t *joined = NULL;
	if (c->carry_len[st]) {
		total += c->carry_len[st];
		if (!(joined = malloc(total))) {
			c->cut = true;
			return;
		}
		memcpy(joined, c->carry[st], c->carry_len[st]);
		if (n)
			memcpy(joined + c->carry_len[st], p, n);
		src = joined;
	}
	c->carry_len[st] = 0;
	uint64_t room = room_left(c);
	size_t want = c->base64 ? 4 * ((total + 2) / 3) : 6 * total;
	size_t cap = room < want ? (size_t)room : want;
	struct ws_buf *b = &c->enc[st];
	size_t used = 0, len = 0;
	bool full = true;
	if (cap && ws_buf_reserve(b, cap)) {
		char *out = (char *)ws_buf_end(b);
		if (c->base64) {
			/* whole groups of three, and a partial one only at the end */
			size_t groups = (final ? total + 2 : total) / 3, fit = cap / 4;
			full = fit < groups;
			used = (full ? fit : groups) * 3;
			if (used > total)
				used = total;
			len = ws_base64_encode(src, used, out);
		} else {
			len = rpc_encode_json(src, total, final, out, cap, &used, &full);
		}
	}
	b->len += (uint32_t)len;
	c->held += len;
	if (c->batch)
		c->batch->held += len;
	c->s->held += len;
	c->s->hub->held += len;
	if (full) {
		c->cut = true;
	} else if (used < total) {
		c->carry_len[st] = (uint8_t)(total - used);
		memcpy(c->carry[st], src + used, total - used);
	}
	free(joined);
}

/*
 * Valid UTF-8 for carry + p[0..n), in a new buffer of *len bytes (NULL on
 * OOM). Unless final, a sequence cut at the end goes back into carry for
 * the next chunk. The streamed outputs of exec and of attach share it.
 */
static char *
utf8_carried(uint8_t carry[4], uint8_t *carry_len, const uint8_t *p, size_t n, bool final,
	     size_t *len)
{
	size_t total = *carry_len + n;
	const uint8_t *src = p;
	uint8_t *joined = NULL;
	if (*carry_len) {
		if (!(joined = malloc(total)))
			return NULL;
		memcpy(joined, carry, *carry_len);
		if (n)
			memcpy(joined + *carry_len, p, n);
		src = joined;
	}
	char *out = malloc(3 * total + 1);
	if (out) {
		size_t used;
		*len = rpc_encode_utf8(src, total, final, out, &used);
		*carry_len = (uint8_t)(total - used);
		if (*carry_len)
			memcpy(carry, src + used, *carry_len);
	}
	free(joined);
	return out;
}

static void
stream_chunk(struct cmd *c, enum rpc_stream st, const uint8_t *p, size_t n, bool final)
{
	struct rpc_session *s = c->s;
	const char *name = st == RPC_STDOUT ? "stdout" : "stderr";
	json_t *data;
	if (c->base64) {
		data = encode(c, p, n);
	} else {
		size_t len;
		char *out = utf8_carried(c->carry[st], &c->carry_len[st], p, n, final, &len);
		if (!out)
			return;
		data = json_stringn(out, len);
		free(out);
		if (len == 0) {
			json_decref(data);
			return;
		}
	}
	json_t *f = json_pack("{s:o}", "data", data);
	if (c->dialect == RPC_JSONRPC)
		json_object_set_new(f, "stream", json_string(name));
	send_json(s, rpc_proto_event(c->dialect, name, "exec.output", c->id, f));
	if (!s->paused && ws_conn_queued(s->c) > PAUSE_QUEUED) {
		/* a slow client: stop reading its commands until it catches up */
		s->paused = true;
		ws_list_for_each (l, &s->cmds)
			rpc_exec_pause(ws_list_entry(l, struct cmd, link)->x, true);
		ws_conn_notify_drained(s->c);
	}
}

static void
on_output(void *arg, enum rpc_stream st, const uint8_t *p, size_t n)
{
	struct cmd *c = arg;
	if (c->stream)
		stream_chunk(c, st, p, n, false);
	else if (c->reply)
		collect(c, st, p, n, false);
	/* a notification's output goes nowhere: it is not kept */
}

static void
free_cmd(struct cmd *c)
{
	struct rpc_session *s = c->s;
	ws_list_remove(&c->link);
	s->ncmds--;
	json_decref(c->id);
	free(c->label);
	ws_buf_finish(&c->enc[RPC_STDOUT]);
	ws_buf_finish(&c->enc[RPC_STDERR]);
	free(c);
}

static void
on_done(void *arg, const struct rpc_exec_result *r)
{
	struct cmd *c = arg;
	struct rpc_session *s = c->s;
	if (c->stream) {
		if (c->carry_len[RPC_STDOUT])
			stream_chunk(c, RPC_STDOUT, NULL, 0, true);
		if (c->carry_len[RPC_STDERR])
			stream_chunk(c, RPC_STDERR, NULL, 0, true);
	} else if (c->reply) {
		collect(c, RPC_STDOUT, NULL, 0, true);
		collect(c, RPC_STDERR, NULL, 0, true);
	}
	json_t *sig = rpc_proto_signal(r->signal);
	/* a signal death reads as 128 + N, as a shell reports it */
	int code = r->signal ? 128 + r->signal : r->exit_code;
	struct batch *b = c->batch;
	if (c->reply) {
		json_t *rest = json_pack("{s:i, s:o, s:b, s:b, s:I}", "exitCode", code, "signal",
					 sig, "timedOut", r->timed_out, "truncated",
					 r->truncated || c->cut, "durationMs",
					 (json_int_t)r->duration_ms);
		const struct ws_buf *o = &c->enc[RPC_STDOUT], *e = &c->enc[RPC_STDERR];
		size_t len;
		char *text = rpc_proto_result(c->dialect, c->id, (const char *)ws_buf_begin(o),
					      o->len, (const char *)ws_buf_begin(e), e->len, rest,
					      &len);
		if (!text) {
			json_t *err = rpc_proto_error(c->dialect, c->id, RPC_E_INTERNAL,
						      "out of memory");
			text = json_dumps(err, JSON_COMPACT);
			json_decref(err);
			len = text ? strlen(text) : 0;
		}
		if (b) {
			if (text)
				batch_put(b, c->slot, text, len);
		} else {
			if (text)
				send_text(s, text, len);
			free(text);
			release_when_read(s, c->held);
		}
	} else {
		json_decref(sig);
		release(s, c->held);
	}
	free_cmd(c);
	if (b) {
		b->pending--;
		batch_done(s, b);
	}
}

static const struct rpc_exec_ops exec_ops = {
	.output = on_output,
	.done = on_done,
};

/* ---- watching kept processes ---- */

static const char *
stream_name(enum rpc_stream st)
{
	return st == RPC_STDOUT ? "stdout" : "stderr";
}

static void
watch_event(struct watch *w, const char *type, const char *method, json_t *fields)
{
	json_t *id = json_string(w->id);
	send_json(w->s, rpc_proto_event(w->dialect, type, method, id, fields));
	json_decref(id);
}

/* Sends bytes of stream st that begin at offset at (a cut UTF-8 sequence waits for the rest). */
static void
watch_data(struct watch *w, enum rpc_stream st, uint64_t at, const uint8_t *p, size_t n, bool final)
{
	size_t total = w->carry_len[st] + n, len = 0;
	if (!total)
		return;
	uint64_t first = w->carry_len[st] ? w->carry_at[st] : at;
	char *out;
	if (w->base64) {
		/* base64 carries nothing: every chunk is encoded whole */
		if ((out = malloc(4 * ((n + 2) / 3) + 1)))
			len = ws_base64_encode(p, n, out);
	} else {
		out = utf8_carried(w->carry[st], &w->carry_len[st], p, n, final, &len);
		if (out)
			w->carry_at[st] = first + total - w->carry_len[st];
	}
	if (!out)
		return;
	if (len)
		watch_event(w, "output", "process.output",
			    json_pack("{s:s, s:I, s:s%}", "stream", stream_name(st), "offset",
				      (json_int_t)first, "data", out, len));
	free(out);
}

static bool
watch_output(void *arg, enum rpc_stream st, uint64_t offset, const uint8_t *p, size_t n)
{
	struct watch *w = arg;
	watch_data(w, st, offset, p, n, false);
	if (ws_conn_queued(w->s->c) <= RPC_KEPT_WATCH_QUEUED)
		return true;
	/* a slow client: the rest waits in the ring until it has read this */
	ws_conn_notify_drained(w->s->c);
	return false;
}

static void
watch_lost(void *arg, enum rpc_stream st, uint64_t from, uint64_t to)
{
	struct watch *w = arg;
	watch_data(w, st, 0, NULL, 0, true);
	w->carry_len[st] = 0;
	watch_event(w, "lost", "process.lost",
		    json_pack("{s:s, s:I, s:I}", "stream", stream_name(st), "from",
			      (json_int_t)from, "to", (json_int_t)to));
}

/* The fields every exit report carries (exec results use the same names). */
static json_t *
exit_fields(const struct rpc_kept_status *st)
{
	return json_pack("{s:i, s:o, s:b, s:I, s:I, s:I}", "exitCode", st->exit_code, "signal",
			 rpc_proto_signal(st->signal), "timedOut", st->timed_out, "durationMs",
			 (json_int_t)st->duration_ms, "stdoutEnd", (json_int_t)st->end[RPC_STDOUT],
			 "stderrEnd", (json_int_t)st->end[RPC_STDERR]);
}

static void
watch_exit(void *arg, const struct rpc_kept_status *st)
{
	struct watch *w = arg;
	watch_data(w, RPC_STDOUT, 0, NULL, 0, true);
	watch_data(w, RPC_STDERR, 0, NULL, 0, true);
	watch_event(w, "exit", "process.exit", exit_fields(st));
}

static void
watch_free(struct watch *w)
{
	ws_list_remove(&w->link);
	free(w);
}

static void
watch_gone(void *arg)
{
	watch_free(arg);
}

static const struct rpc_kept_watch_ops watch_ops = {
	.output = watch_output,
	.lost = watch_lost,
	.exit = watch_exit,
	.gone = watch_gone,
};

static struct watch *
find_watch(struct rpc_session *s, const char *id)
{
	ws_list_for_each (l, &s->watches) {
		struct watch *w = ws_list_entry(l, struct watch, link);
		if (strcmp(w->id, id) == 0)
			return w;
	}
	return NULL;
}

/* This connection watches k from since (a second attach replaces the first). NULL on OOM. */
static struct watch *
watch_start(struct rpc_session *s, struct rpc_kept *k, enum rpc_dialect d, bool base64,
	    const uint64_t since[3])
{
	struct watch *old = find_watch(s, rpc_kept_id(k));
	if (old) {
		rpc_kept_detach(old->w);
		watch_free(old);
	}
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	*w = (struct watch){ .s = s, .dialect = d, .base64 = base64 };
	snprintf(w->id, sizeof(w->id), "%s", rpc_kept_id(k));
	ws_list_insert(&s->watches, &w->link);
	if (!(w->w = rpc_kept_attach(k, &watch_ops, w, since))) {
		watch_free(w);
		return NULL;
	}
	return w;
}

/* ---- exec ---- */

struct exec_args {
	char *argv_store[ENV_MAX + 4];
	char *env_store[ENV_MAX + 8];
	char *label;
	char *path; /* under a policy: the file that runs */
	struct rpc_exec_spec spec;
	bool stream, base64, keep;
};

static void
free_args(struct exec_args *a)
{
	for (char **p = a->env_store; *p; p++)
		free(*p);
	free(a->label);
	free(a->path);
}

/* ---- the command policy ---- */

static bool
matches(const regex_t *re, const char *s)
{
	return re && regexec(re, s, 0, NULL, 0) == 0;
}

/*
 * The file argv[0] names, looked up in the server's command path (never the
 * client's PATH), with every symlink resolved: what the policy judges and
 * the engine runs. NULL when there is none (or the name is relative).
 */
static char *
resolve(const char *name, const char *path)
{
	if (strchr(name, '/'))
		return name[0] == '/' ? realpath(name, NULL) : NULL;
	for (const char *p = path; *p;) {
		size_t dl = strcspn(p, ":");
		char full[PATH_MAX];
		struct stat st;
		/* only absolute entries: "" or "." would mean the working directory */
		if (dl && *p == '/' && dl + 1 + strlen(name) < sizeof(full)) {
			snprintf(full, sizeof(full), "%.*s/%s", (int)dl, p, name);
			if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111))
				return realpath(full, NULL);
		}
		p += dl;
		if (*p == ':')
			p++;
	}
	return NULL;
}

/* NULL when the policy lets the command run; else why not (JSON-RPC's error data). */
static const char *
policy_refusal(const struct rpc_limits *l, struct exec_args *a, bool shell, json_t *env)
{
	if (!l->allow && !l->deny)
		return NULL;
	if (l->allow) {
		/* the dynamic loader would run code the allowlist never saw */
		const char *k;
		json_t *v;
		json_object_foreach (env, k, v) {
			if (strncmp(k, "LD_", 3) == 0)
				return "LD_* variables are refused under --allow-command";
		}
	}
	if (shell) {
		const char *line = a->argv_store[2];
		if (l->allow && !l->allow_shell)
			return "shell commands are refused under --allow-command: send argv";
		if ((l->allow && !matches(l->allow, line)) || matches(l->deny, line))
			return "refused by the command policy";
		return NULL;
	}
	const char *name = a->argv_store[0];
	if (!(a->path = resolve(name, l->command_path)))
		return "not an executable file in the server's command path";
	if ((l->allow && !matches(l->allow, a->path)) || matches(l->deny, a->path) ||
	    matches(l->deny, name))
		return "refused by the command policy";
	a->spec.path = a->path;
	return NULL;
}

static bool
uint_param(json_t *p, const char *key, uint64_t *out, bool *present)
{
	json_t *v = json_object_get(p, key);
	*present = v != NULL;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

bool
rpc_session_size_valid(json_t *cols, json_t *rows, uint16_t *c, uint16_t *r)
{
	if (!json_is_integer(cols) || !json_is_integer(rows))
		return false;
	json_int_t cv = json_integer_value(cols), rv = json_integer_value(rows);
	if (cv < 1 || cv > RPC_PTY_MAX || rv < 1 || rv > RPC_PTY_MAX)
		return false;
	*c = (uint16_t)cv;
	*r = (uint16_t)rv;
	return true;
}

/* "pty": true, or {"cols": C, "rows": R}. */
static const char *
pty_params(json_t *p, struct exec_args *a)
{
	json_t *pty = json_object_get(p, "pty");
	if (!pty || json_is_false(pty))
		return NULL;
	a->spec.pty = true;
	a->spec.cols = 80;
	a->spec.rows = 24;
	if (json_is_true(pty))
		return NULL;
	if (!json_is_object(pty) ||
	    (json_object_size(pty) &&
	     !rpc_session_size_valid(json_object_get(pty, "cols"), json_object_get(pty, "rows"),
				     &a->spec.cols, &a->spec.rows)))
		return RPC_PTY_BAD;
	return NULL;
}

/*
 * Reads exec's params; returns NULL, or the "Invalid params: ..." detail
 * (*policy false) or the command policy's reason (*policy true).
 */
static const char *
exec_params(const struct rpc_limits *l, json_t *p, struct exec_args *a, bool *policy)
{
	*policy = false;
	json_t *command = json_object_get(p, "command");
	json_t *argv = json_object_get(p, "argv");
	if (!command == !argv)
		return "one of command or argv is required";
	const char *subject;
	if (command) {
		if (!json_is_string(command) || !json_string_length(command) ||
		    strlen(json_string_value(command)) != json_string_length(command))
			return "command must be a non-empty string";
		a->argv_store[0] = "/bin/sh";
		a->argv_store[1] = "-c";
		a->argv_store[2] = (char *)json_string_value(command);
		subject = a->argv_store[2];
	} else {
		size_t n = json_array_size(argv);
		if (!json_is_array(argv) || n == 0 || n > ENV_MAX)
			return "argv must be a non-empty array of strings";
		for (size_t i = 0; i < n; i++) {
			json_t *s = json_array_get(argv, i);
			if (!json_is_string(s) ||
			    strlen(json_string_value(s)) != json_string_length(s))
				return "argv must be a non-empty array of strings";
			a->argv_store[i] = (char *)json_string_value(s);
		}
		subject = a->argv_store[0];
		if (!*subject)
			return "argv must be a non-empty array of strings";
	}
	a->label = strdup(subject);

	json_t *cwd = json_object_get(p, "cwd");
	if (cwd) {
		struct stat st;
		if (!json_is_string(cwd) || stat(json_string_value(cwd), &st) != 0 ||
		    !S_ISDIR(st.st_mode))
			return "cwd must be an existing directory";
		a->spec.cwd = json_string_value(cwd);
	}

	size_t ne = 0;
	const char *pty_bad = pty_params(p, a);
	if (pty_bad)
		return pty_bad;
	json_t *keep = json_object_get(p, "keep");
	if (keep && !json_is_boolean(keep))
		return "keep must be a boolean";
	/* a terminal is kept: it is what a person comes back to */
	a->keep = json_is_true(keep) || a->spec.pty;
	const char *const base[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		l->home_env ? l->home_env : "HOME=/tmp",
		"LANG=C.UTF-8",
		a->spec.pty ? "TERM=xterm-256color" : "TERM=dumb",
	};
	json_t *env = json_object_get(p, "env");
	if (env && (!json_is_object(env) || json_object_size(env) > ENV_MAX))
		return "env must be an object of strings";
	const char *refused = policy_refusal(l, a, command != NULL, env);
	if (refused) {
		*policy = true;
		return refused;
	}
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		size_t kl = strcspn(base[i], "=");
		char key[16];
		memcpy(key, base[i], kl);
		key[kl] = '\0';
		if (!json_object_get(env, key))
			a->env_store[ne++] = strdup(base[i]);
	}
	const char *k;
	json_t *v;
	json_object_foreach (env, k, v) {
		if (!json_is_string(v) || !*k || strchr(k, '=') ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return "env must be an object of strings";
		char *kv = malloc(strlen(k) + json_string_length(v) + 2);
		if (!kv)
			return "env too large";
		sprintf(kv, "%s=%s", k, json_string_value(v));
		a->env_store[ne++] = kv;
	}

	json_t *in = json_object_get(p, "stdin");
	if (in && !json_is_string(in))
		return "stdin must be a string";
	if (in) {
		a->spec.stdin_data = (const uint8_t *)json_string_value(in);
		a->spec.stdin_len = json_string_length(in);
	}
	json_t *open = json_object_get(p, "stdinOpen");
	if (open && !json_is_boolean(open))
		return "stdinOpen must be a boolean";
	a->spec.stdin_open = json_is_true(open);

	bool present;
	a->spec.timeout_ms = l->exec_timeout_ms;
	if (!uint_param(p, "timeout_ms", &a->spec.timeout_ms, &present))
		return "timeout_ms must be a positive integer";
	if (a->spec.timeout_ms > l->exec_timeout_max_ms)
		a->spec.timeout_ms = l->exec_timeout_max_ms;
	a->spec.max_output = l->max_output;
	if (!uint_param(p, "max_output", &a->spec.max_output, &present))
		return "max_output must be a positive integer";
	if (a->spec.max_output > l->max_output)
		a->spec.max_output = l->max_output;

	json_t *stream = json_object_get(p, "stream");
	if (stream && !json_is_boolean(stream))
		return "stream must be a boolean";
	a->stream = json_is_true(stream);
	json_t *enc = json_object_get(p, "encoding");
	if (enc && (!json_is_string(enc) || (strcmp(json_string_value(enc), "utf8") != 0 &&
					     strcmp(json_string_value(enc), "base64") != 0)))
		return "encoding must be \"utf8\" or \"base64\"";
	a->base64 = enc && strcmp(json_string_value(enc), "base64") == 0;
	a->spec.argv = a->argv_store;
	a->spec.envp = a->env_store;
	return NULL;
}

/*
 * A kept command: it belongs to the server, not this connection, which
 * only watches it (from offset 0, so it misses nothing). Frees *a.
 */
static json_t *
exec_kept(struct rpc_session *s, const struct rpc_request *r, struct batch *b, struct exec_args *a)
{
	char err[256];
	struct rpc_kept *k = rpc_kept_start(s->hub->kept, &a->spec, a->label, err, sizeof(err));
	free_args(a);
	if (!k)
		return error_for(r,
				 strncmp(err, "too many", 8) == 0 ? RPC_E_TOO_MANY : RPC_E_INTERNAL,
				 err);
	/* the reply first, then whatever the process writes */
	if (!r->notification)
		answer(s, b,
		       rpc_proto_reply(r->dialect, "start", r->id,
				       json_pack("{s:i, s:s, s:b}", "pid", (int)rpc_kept_pid(k),
						 "process", rpc_kept_id(k), "pty", a->spec.pty)));
	static const uint64_t zero[3];
	if (!watch_start(s, k, r->dialect, a->base64, zero))
		ws_log(WS_LOG_WARN, "watch failed=yes error=\"out of memory\" process=%s",
		       rpc_kept_id(k));
	return NULL;
}

static json_t *
do_exec(struct rpc_session *s, const struct rpc_request *r, struct batch *b)
{
	const struct rpc_limits *l = s->hub->limits;
	json_t *p = r->params;
	/* JSON-RPC names the command by its request id; the type dialect by "id" */
	if (find_cmd(s, r->id))
		return error_for(r, RPC_E_DUPLICATE, NULL);

	struct exec_args a;
	memset(&a, 0, sizeof(a));
	bool policy;
	const char *bad = exec_params(l, p, &a, &policy);
	if (bad) {
		free_args(&a);
		return error_for(r, policy ? RPC_E_POLICY : RPC_E_PARAMS, bad);
	}
	if (a.keep)
		return exec_kept(s, r, b, &a);
	if (s->ncmds >= l->max_exec_per_conn || rpc_engine_running(s->hub->engine) >= l->max_exec) {
		free_args(&a);
		return error_for(r, RPC_E_TOO_MANY, NULL);
	}
	struct cmd *c = calloc(1, sizeof(*c));
	if (!c) {
		free_args(&a);
		return error_for(r, RPC_E_INTERNAL, "out of memory");
	}
	*c = (struct cmd){ .s = s,
			   .id = json_incref(r->id),
			   .label = a.label,
			   .dialect = r->dialect,
			   .stream = a.stream,
			   .base64 = a.base64,
			   .reply = !r->notification };
	a.label = NULL;
	char err[256];
	c->x = rpc_exec_start(s->hub->engine, &a.spec, &exec_ops, c, err, sizeof(err));
	free_args(&a);
	if (!c->x) {
		json_decref(c->id);
		free(c->label);
		free(c);
		return error_for(r, RPC_E_INTERNAL, err);
	}
	ws_list_insert(&s->cmds, &c->link);
	s->ncmds++;
	if (s->paused)
		rpc_exec_pause(c->x, true);
	if (c->stream)
		send_json(s, rpc_proto_event(c->dialect, "start", "exec.start", c->id,
					     json_pack("{s:i}", "pid", (int)rpc_exec_pid(c->x))));
	if (b && c->reply) {
		c->batch = b;
		c->slot = b->n++; /* its place, filled when done */
		b->pending++;
	}
	return NULL;
}

/* ---- the other methods ---- */

static json_t *
no_such(const struct rpc_request *r, json_t *target)
{
	char *t = json_dumps(target, JSON_ENCODE_ANY);
	json_t *e = error_for(r, RPC_E_NO_SUCH, t);
	free(t);
	return e;
}

/* The kept process a string id names, or NULL. */
static struct rpc_kept *
find_kept(struct rpc_session *s, json_t *id)
{
	return json_is_string(id) && s->hub->kept
		       ? rpc_kept_find(s->hub->kept, json_string_value(id))
		       : NULL;
}

static bool
offset_param(json_t *p, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(p, key);
	*out = 0;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static json_t *
do_attach(struct rpc_session *s, const struct rpc_request *r, struct batch *b)
{
	json_t *target = json_object_get(r->params, "id");
	json_t *enc = json_object_get(r->params, "encoding");
	uint64_t since[3] = { 0 };
	if (!json_is_string(target) || !offset_param(r->params, "since", &since[RPC_STDOUT]) ||
	    !offset_param(r->params, "sinceStderr", &since[RPC_STDERR]) ||
	    (enc && (!json_is_string(enc) || (strcmp(json_string_value(enc), "utf8") != 0 &&
					      strcmp(json_string_value(enc), "base64") != 0))))
		return error_for(r, RPC_E_PARAMS,
				 "attach takes id (a process id), since and sinceStderr (byte "
				 "offsets) and encoding (\"utf8\" or \"base64\")");
	struct rpc_kept *k = find_kept(s, target);
	if (!k)
		return no_such(r, target);
	if (!r->notification) {
		json_t *o = rpc_kept_describe(k);
		json_object_set_new(o, "process", json_string(rpc_kept_id(k)));
		json_object_del(o, "id");
		answer(s, b, rpc_proto_reply(r->dialect, "attached", r->id, o));
	}
	if (!watch_start(s, k, r->dialect, enc && strcmp(json_string_value(enc), "base64") == 0,
			 since))
		return error_for(r, RPC_E_INTERNAL, "out of memory");
	return NULL;
}

static json_t *
do_detach(struct rpc_session *s, const struct rpc_request *r)
{
	json_t *target = json_object_get(r->params, "id");
	/* by id or by name, as attach took it; a record already dropped by the id alone */
	struct rpc_kept *k = find_kept(s, target);
	const char *id = k ? rpc_kept_id(k) : json_string_value(target);
	struct watch *w = id ? find_watch(s, id) : NULL;
	if (!w)
		return no_such(r, target ? target : json_null());
	rpc_kept_detach(w->w);
	watch_free(w);
	if (r->notification)
		return NULL;
	return rpc_proto_reply(r->dialect, "detached", r->id, json_pack("{s:b}", "ok", 1));
}

static json_t *
do_resize(struct rpc_session *s, const struct rpc_request *r)
{
	json_t *target = json_object_get(r->params, "id");
	uint16_t cols, rows;
	if (!json_is_string(target) ||
	    !rpc_session_size_valid(json_object_get(r->params, "cols"),
				    json_object_get(r->params, "rows"), &cols, &rows))
		return error_for(r, RPC_E_PARAMS, "resize takes id, and " RPC_PTY_BAD);
	struct rpc_kept *k = find_kept(s, target);
	int rc = k ? rpc_kept_resize(k, cols, rows) : -ESRCH;
	if (rc == -ENOTTY)
		return error_for(r, RPC_E_PARAMS, "not a terminal (started without pty)");
	if (rc == -ESRCH)
		return no_such(r, target);
	if (rc != 0)
		return error_for(r, RPC_E_INTERNAL, strerror(-rc));
	if (r->notification)
		return NULL;
	return rpc_proto_reply(r->dialect, "resize", r->id,
			       json_pack("{s:b, s:i, s:i}", "ok", 1, "cols", cols, "rows", rows));
}

static json_t *
do_stdin(struct rpc_session *s, const struct rpc_request *r)
{
	json_t *target = json_object_get(r->params, "id");
	json_t *data = json_object_get(r->params, "data");
	json_t *eof = json_object_get(r->params, "eof");
	if (!rpc_proto_id_valid(target, s->hub->limits->max_id) ||
	    (data && !json_is_string(data)) || (eof && !json_is_boolean(eof)))
		return error_for(r, RPC_E_PARAMS,
				 "stdin takes id, data (string) and eof (boolean)");
	struct cmd *c = find_cmd(s, target);
	struct rpc_kept *k = c ? NULL : find_kept(s, target);
	if (!c && !k)
		return no_such(r, target);
	const uint8_t *bytes = (const uint8_t *)(data ? json_string_value(data) : "");
	size_t n = data ? json_string_length(data) : 0;
	int rc = c ? rpc_exec_stdin(c->x, bytes, n, json_is_true(eof))
		   : rpc_kept_stdin(k, bytes, n, json_is_true(eof));
	if (rc == -ENOSPC)
		return error_for(r, RPC_E_PARAMS, "stdin buffer full");
	if (rc < 0)
		return error_for(r, RPC_E_PARAMS, "stdin is closed");
	if (r->notification)
		return NULL;
	return rpc_proto_reply(r->dialect, "stdin", r->id, json_pack("{s:b}", "ok", 1));
}

static int
parse_signal(json_t *v)
{
	if (!v)
		return SIGTERM;
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);
		return n > 0 && n < NSIG ? (int)n : -1;
	}
	if (!json_is_string(v))
		return -1;
	const char *name = json_string_value(v);
	if (strncmp(name, "SIG", 3) == 0)
		name += 3;
	for (int i = 1; i < NSIG; i++) {
		const char *a = sigabbrev_np(i);
		if (a && strcmp(a, name) == 0)
			return i;
	}
	return -1;
}

static json_t *
do_kill(struct rpc_session *s, const struct rpc_request *r)
{
	json_t *target = json_object_get(r->params, "id");
	int sig = parse_signal(json_object_get(r->params, "signal"));
	if (!rpc_proto_id_valid(target, s->hub->limits->max_id) || sig < 0)
		return error_for(r, RPC_E_PARAMS, "kill takes id and a signal name such as TERM");
	struct cmd *c = find_cmd(s, target);
	struct rpc_kept *k = c ? NULL : find_kept(s, target);
	if (c ? rpc_exec_kill(c->x, sig) != 0 : !k || rpc_kept_kill(k, sig) != 0)
		return no_such(r, target);
	if (r->notification)
		return NULL;
	return rpc_proto_reply(r->dialect, "kill", r->id,
			       json_pack("{s:b, s:o}", "ok", 1, "signal",
					 json_sprintf("SIG%s", sigabbrev_np(sig) ? sigabbrev_np(sig)
										 : "?")));
}

static json_t *
do_list(struct rpc_session *s, const struct rpc_request *r)
{
	if (r->notification)
		return NULL;
	json_t *list = json_array();
	ws_list_for_each (l, &s->cmds) {
		struct cmd *c = ws_list_entry(l, struct cmd, link);
		json_t *e = json_pack("{s:i, s:s, s:I, s:b}", "pid", (int)rpc_exec_pid(c->x),
				      "command", c->label ? c->label : "", "durationMs",
				      (json_int_t)rpc_exec_elapsed_ms(c->x), "stream", c->stream);
		json_object_set_new(e, "id", c->id ? json_incref(c->id) : json_null());
		json_array_append_new(list, e);
	}
	return rpc_proto_reply(r->dialect, "list", r->id,
			       json_pack("{s:o, s:o}", "commands", list, "processes",
					 s->hub->kept ? rpc_kept_list(s->hub->kept)
						      : json_array()));
}

static json_t *
do_info(struct rpc_session *s, const struct rpc_request *r)
{
	if (r->notification)
		return NULL;
	struct ws_server *srv = s->hub->srv;
	json_t *o = rpc_info_system();
	json_object_set_new(o, "server",
			    json_pack("{s:s, s:s, s:i, s:I, s:I, s:i, s:O}", "name",
				      s->hub->server_name, "version", WS_VERSION, "pid",
				      (int)getpid(), "uptime_s",
				      (json_int_t)ws_server_uptime_s(srv), "connections",
				      (json_int_t)ws_server_metrics(srv)->connections_open,
				      "running", (int)rpc_engine_running(s->hub->engine), "limits",
				      s->hub->limits->described));
	return rpc_proto_reply(r->dialect, "info", r->id, o);
}

static json_t *
dispatch(struct rpc_session *s, const struct rpc_request *r, struct batch *b)
{
	switch (r->method) {
	case RPC_PING:
		if (r->notification)
			return NULL;
		/* the most frequent request, answered without building a reply object */
		if (!b) {
			char text[512];
			size_t n = rpc_proto_pong(r->dialect, r->id, ws_clock_wall_ms(), text,
						  sizeof(text));
			if (n) {
				send_text(s, text, n);
				return NULL;
			}
		}
		return rpc_proto_reply(r->dialect, "pong", r->id,
				       json_pack("{s:I}", "timestamp",
						 (json_int_t)ws_clock_wall_ms()));
	case RPC_INFO:
		return do_info(s, r);
	case RPC_EXEC:
		return do_exec(s, r, b);
	case RPC_STDIN:
		return do_stdin(s, r);
	case RPC_KILL:
		return do_kill(s, r);
	case RPC_LIST:
		return do_list(s, r);
	case RPC_ATTACH:
		return do_attach(s, r, b);
	case RPC_DETACH:
		return do_detach(s, r);
	case RPC_RESIZE:
		return do_resize(s, r);
	case RPC_METHOD_UNKNOWN:
		break;
	}
	return error_for(r, RPC_E_METHOD, r->name);
}

/* Every request takes a token, a batch's elements one each. */
static bool
over_rate(struct rpc_session *s)
{
	const struct ws_rate_config *rc = &s->hub->limits->rate;
	return rc->rate && ws_rate_take(&s->rate, rc, ws_clock_mono_ms()) != WS_RATE_OK;
}

static json_t *
handle(struct rpc_session *s, json_t *msg, enum rpc_dialect d, struct batch *b)
{
	struct rpc_request r;
	enum rpc_error e;
	const char *detail;
	bool valid = rpc_proto_request(msg, d, s->hub->limits->max_id, &r, &e, &detail);
	if (over_rate(s))
		return r.notification ? NULL : rpc_proto_error(d, r.id, RPC_E_RATE, NULL);
	if (!valid) {
		/* an invalid JSON-RPC request is answered even without id (with null) */
		if (r.notification && e != RPC_E_INVALID)
			return NULL;
		return rpc_proto_error(d, r.id, e, detail);
	}
	return dispatch(s, &r, b);
}

static void
run_batch(struct rpc_session *s, json_t *msg)
{
	size_t n = json_array_size(msg);
	if (n == 0 || n > s->hub->limits->max_batch) {
		send_json(s, rpc_proto_error(RPC_JSONRPC, NULL, RPC_E_INVALID,
					     n ? BATCH_TOO_LARGE : NULL));
		return;
	}
	struct batch *b = calloc(1, sizeof(*b));
	if (!b || !(b->items = calloc(n, sizeof(*b->items)))) {
		free(b);
		send_json(s, rpc_proto_error(RPC_JSONRPC, NULL, RPC_E_INTERNAL, "out of memory"));
		return;
	}
	size_t i;
	json_t *el;
	json_array_foreach (msg, i, el)
		answer(s, b, handle(s, el, RPC_JSONRPC, b));
	batch_done(s, b);
}

/*
 * A ping read without a JSON parse (rpc_proto_fast_ping): the parse and
 * its allocations were most of what a ping cost. Answered as handle()
 * and dispatch() would, rate limit included. False: not such a ping.
 */
static bool
fast_ping(struct rpc_session *s, const uint8_t *data, size_t len)
{
	struct rpc_fast_ping p;
	if (!rpc_proto_fast_ping((const char *)data, len, &p))
		return false;
	if (over_rate(s)) {
		json_t *id = p.has_id ? json_integer((json_int_t)p.id) : NULL;
		send_json(s, rpc_proto_error(p.dialect, id, RPC_E_RATE, NULL));
		json_decref(id);
		return true;
	}
	char text[128];
	size_t n = rpc_proto_fast_pong(&p, ws_clock_wall_ms(), text, sizeof(text));
	if (!n)
		return false;
	send_text(s, text, n);
	return true;
}

void
rpc_session_message(struct rpc_session *s, bool text, const uint8_t *data, size_t len)
{
	if (!text) {
		send_json(s, rpc_proto_error(RPC_TYPE, NULL, RPC_E_INVALID, NULL));
		return;
	}
	if (fast_ping(s, data, len))
		return;
	/* a batch too large is refused before it costs a parse */
	size_t max_batch = s->hub->limits->max_batch;
	if (rpc_proto_batch_size((const char *)data, len, max_batch) > max_batch) {
		send_json(s, rpc_proto_error(RPC_JSONRPC, NULL, RPC_E_INVALID, BATCH_TOO_LARGE));
		return;
	}
	json_t *msg = json_loadb((const char *)data, len, JSON_DECODE_ANY, NULL);
	if (!msg) {
		send_json(s, rpc_proto_error(rpc_proto_guess((const char *)data, len), NULL,
					     RPC_E_PARSE, NULL));
		return;
	}
	if (json_is_array(msg)) {
		run_batch(s, msg);
	} else {
		enum rpc_dialect d = json_is_object(msg) && json_object_get(msg, "jsonrpc")
					     ? RPC_JSONRPC
					     : RPC_TYPE;
		answer(s, NULL, handle(s, msg, d, NULL));
	}
	json_decref(msg);
}

void
rpc_session_rate_limited(struct rpc_session *s, const uint8_t *data, size_t len)
{
	json_t *msg = len <= RATE_LIMITED_PARSE_MAX ? json_loadb((const char *)data, len, 0, NULL)
						    : NULL;
	enum rpc_dialect d = rpc_proto_guess((const char *)data, len);
	json_t *id = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
	/* a JSON-RPC notification gets nothing, not even this */
	if (!(d == RPC_JSONRPC && json_is_object(msg) && !id))
		send_json(s, rpc_proto_error(d,
					     rpc_proto_id_valid(id, s->hub->limits->max_id) ? id
											    : NULL,
					     RPC_E_RATE, NULL));
	json_decref(msg);
}

void
rpc_session_drained(struct rpc_session *s)
{
	release(s, s->unsent);
	s->unsent = 0;
	struct ws_list *next = s->watches.next;
	while (next != &s->watches) {
		struct watch *w = ws_list_entry(next, struct watch, link);
		next = next->next;
		rpc_kept_pump(w->w);
	}
	if (!s->paused)
		return;
	s->paused = false;
	ws_list_for_each (l, &s->cmds)
		rpc_exec_pause(ws_list_entry(l, struct cmd, link)->x, false);
}

struct rpc_session *
rpc_session_create(struct rpc_hub *hub, struct ws_conn *c)
{
	struct rpc_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	*s = (struct rpc_session){ .hub = hub, .c = c };
	ws_list_init(&s->cmds);
	ws_list_init(&s->watches);
	ws_rate_init(&s->rate, &hub->limits->rate, ws_clock_mono_ms());
	return s;
}

void
rpc_session_destroy(struct rpc_session *s)
{
	if (!s)
		return;
	while (!ws_list_empty(&s->cmds)) {
		struct cmd *c = ws_list_entry(s->cmds.next, struct cmd, link);
		rpc_exec_abandon(c->x, !s->hub->limits->keep_on_disconnect);
		/* a batch waiting on it will never be answered: free it with its last member */
		if (c->batch && --c->batch->pending == 0)
			batch_free(c->batch);
		free_cmd(c);
	}
	while (!ws_list_empty(&s->watches)) {
		struct watch *w = ws_list_entry(s->watches.next, struct watch, link);
		rpc_kept_detach(w->w);
		watch_free(w);
	}
	release(s, s->held);
	free(s);
}
