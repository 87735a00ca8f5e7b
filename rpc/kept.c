#include "kept.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "list.h"
#include "log.h"
#include "proto.h"
#include "ring.h"
#include "timer.h"

/* The most bytes one output callback carries (a replay is cut into these). */
#define CHUNK_MAX (64u * 1024u)

struct rpc_kept_table {
	struct ws_server *srv;
	struct rpc_engine *engine;
	struct rpc_kept_limits limits;
	struct ws_list procs; /* rpc_kept.link, oldest first */
	unsigned count, running;
	uint64_t bytes; /* ring storage of every process */
	uint64_t next_id;
};

struct rpc_kept {
	struct rpc_kept_table *t;
	struct ws_list link;
	struct ws_list watchers; /* rpc_kept_watcher.link */
	unsigned nwatchers;
	struct rpc_exec *x; /* NULL once exited */
	struct ws_timer *linger;
	struct rpc_ring ring[3];
	char id[24];
	char name[RPC_KEPT_NAME_MAX + 1]; /* "" when unnamed */
	char *label;
	pid_t pid;
	bool pty;
	uint64_t started_wall_ms, exited_mono_ms;
	struct rpc_kept_status status;
};

struct rpc_kept_watcher {
	struct rpc_kept *k;
	struct ws_list link;
	const struct rpc_kept_watch_ops *ops;
	void *arg;
	uint64_t next[3]; /* the next offset to deliver, per stream */
	bool behind;      /* the client's queue is full: waiting for rpc_kept_pump */
	bool exit_sent;
};

static void drop(struct rpc_kept *k);

/* ---- delivery ---- */

/* Delivers what w has not had yet; false when its client is full. */
static bool
flush(struct rpc_kept_watcher *w)
{
	struct rpc_kept *k = w->k;
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++) {
		struct rpc_ring *r = &k->ring[s];
		while (w->next[s] < r->end) {
			uint64_t start = rpc_ring_start(r);
			if (w->next[s] < start) {
				uint64_t from = w->next[s];
				w->next[s] = start;
				w->ops->lost(w->arg, (enum rpc_stream)s, from, start);
				continue;
			}
			const uint8_t *p;
			size_t n = rpc_ring_peek(r, w->next[s], &p);
			if (n > CHUNK_MAX)
				n = CHUNK_MAX;
			uint64_t at = w->next[s];
			w->next[s] += n;
			if (!w->ops->output(w->arg, (enum rpc_stream)s, at, p, n)) {
				w->behind = true;
				return false;
			}
		}
	}
	w->behind = false;
	if (!k->x && !w->exit_sent) {
		w->exit_sent = true;
		w->ops->exit(w->arg, &k->status);
	}
	return true;
}

/* Output is read while anyone keeps up, or nobody watches (the ring takes it). */
static void
update_pause(struct rpc_kept *k)
{
	if (!k->x)
		return;
	bool all_behind = k->nwatchers > 0;
	ws_list_for_each (l, &k->watchers) {
		if (!ws_list_entry(l, struct rpc_kept_watcher, link)->behind) {
			all_behind = false;
			break;
		}
	}
	rpc_exec_pause(k->x, all_behind);
}

static void
deliver_all(struct rpc_kept *k)
{
	struct ws_list *l = k->watchers.next;
	while (l != &k->watchers) {
		struct rpc_kept_watcher *w = ws_list_entry(l, struct rpc_kept_watcher, link);
		l = l->next;
		if (!w->behind)
			flush(w);
	}
	update_pause(k);
}

/* The oldest exited process other than `keep`, or NULL. */
static struct rpc_kept *
oldest_exited(struct rpc_kept_table *t, const struct rpc_kept *keep)
{
	struct rpc_kept *best = NULL;
	ws_list_for_each (l, &t->procs) {
		struct rpc_kept *k = ws_list_entry(l, struct rpc_kept, link);
		if (k != keep && !k->x && (!best || k->exited_mono_ms < best->exited_mono_ms))
			best = k;
	}
	return best;
}

static void
on_output(void *arg, enum rpc_stream s, const uint8_t *p, size_t n)
{
	struct rpc_kept *k = arg;
	struct rpc_kept_table *t = k->t;
	struct rpc_ring *r = &k->ring[s];
	size_t want = rpc_ring_wants(r, n);
	/* room from the server-wide total, made by dropping exited processes if need be */
	while (want && t->bytes + want > t->limits.total) {
		struct rpc_kept *old = oldest_exited(t, k);
		if (!old)
			break;
		drop(old);
	}
	if (want) {
		uint64_t room = t->bytes < t->limits.total ? t->limits.total - t->bytes : 0;
		t->bytes += rpc_ring_grow(r, want < room ? want : (size_t)room);
	}
	rpc_ring_write(r, p, n);
	deliver_all(k);
}

static void
on_done(void *arg, const struct rpc_exec_result *res)
{
	struct rpc_kept *k = arg;
	k->x = NULL;
	k->t->running--;
	k->exited_mono_ms = ws_clock_mono_ms();
	k->status = (struct rpc_kept_status){
		.exit_code = res->signal ? 128 + res->signal : res->exit_code,
		.signal = res->signal,
		.timed_out = res->timed_out,
		.duration_ms = res->duration_ms,
	};
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++)
		k->status.end[s] = k->ring[s].end;
	ws_log(WS_LOG_INFO, "kept-exit id=%s pid=%d code=%d watchers=%u", k->id, (int)k->pid,
	       k->status.exit_code, k->nwatchers);
	ws_timer_arm(k->linger, k->t->limits.linger_ms);
	deliver_all(k);
}

static const struct rpc_exec_ops exec_ops = {
	.output = on_output,
	.done = on_done,
};

/* ---- the table ---- */

static void
drop(struct rpc_kept *k)
{
	struct rpc_kept_table *t = k->t;
	while (!ws_list_empty(&k->watchers)) {
		struct rpc_kept_watcher *w = ws_list_entry(k->watchers.next,
							   struct rpc_kept_watcher, link);
		ws_list_remove(&w->link);
		k->nwatchers--;
		w->ops->gone(w->arg);
		free(w);
	}
	if (k->x) {
		/* a terminal's programs expect a hang-up; the engine kills the rest */
		rpc_exec_kill(k->x, SIGHUP);
		rpc_exec_abandon(k->x, true);
		t->running--;
	}
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++) {
		t->bytes -= k->ring[s].size;
		rpc_ring_finish(&k->ring[s]);
	}
	ws_timer_destroy(k->linger);
	ws_list_remove(&k->link);
	t->count--;
	free(k->label);
	free(k);
}

bool
rpc_kept_forget(struct rpc_kept *k)
{
	if (k->x)
		return false;
	ws_log(WS_LOG_INFO, "kept-drop id=%s reason=replaced", k->id);
	drop(k);
	return true;
}

static void
on_linger(void *arg)
{
	struct rpc_kept *k = arg;
	ws_log(WS_LOG_INFO, "kept-drop id=%s reason=linger", k->id);
	drop(k);
}

struct rpc_kept_table *
rpc_kept_table_create(struct ws_server *srv, struct rpc_engine *e, const struct rpc_kept_limits *l)
{
	struct rpc_kept_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct rpc_kept_table){ .srv = srv, .engine = e, .limits = *l };
	ws_list_init(&t->procs);
	return t;
}

void
rpc_kept_table_destroy(struct rpc_kept_table *t)
{
	if (!t)
		return;
	while (!ws_list_empty(&t->procs))
		drop(ws_list_entry(t->procs.next, struct rpc_kept, link));
	free(t);
}

struct rpc_kept *
rpc_kept_start(struct rpc_kept_table *t, const struct rpc_exec_spec *spec, const char *label,
	       char *err, size_t errlen)
{
	if (rpc_engine_running(t->engine) >= t->limits.running) {
		snprintf(err, errlen, "too many running commands");
		return NULL;
	}
	if (t->count >= t->limits.max) {
		struct rpc_kept *old = oldest_exited(t, NULL);
		if (!old) {
			snprintf(err, errlen, "too many kept processes (--max-kept %u)",
				 t->limits.max);
			return NULL;
		}
		ws_log(WS_LOG_INFO, "kept-drop id=%s reason=max-kept", old->id);
		drop(old);
	}
	struct rpc_kept *k = calloc(1, sizeof(*k));
	if (!k || !(k->label = strdup(label ? label : "")) ||
	    !(k->linger = ws_timer_create(t->srv, on_linger, k))) {
		if (k)
			free(k->label);
		free(k);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	k->t = t;
	ws_list_init(&k->watchers);
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++)
		rpc_ring_init(&k->ring[s], t->limits.buffer);
	struct rpc_exec_spec sp = *spec;
	sp.max_output = UINT64_MAX;
	k->x = rpc_exec_start(t->engine, &sp, &exec_ops, k, err, errlen);
	if (!k->x) {
		ws_timer_destroy(k->linger);
		free(k->label);
		free(k);
		return NULL;
	}
	snprintf(k->id, sizeof(k->id), "p%llu", (unsigned long long)++t->next_id);
	k->pid = rpc_exec_pid(k->x);
	k->pty = spec->pty;
	k->started_wall_ms = ws_clock_wall_ms();
	ws_list_insert(t->procs.prev, &k->link);
	t->count++;
	t->running++;
	ws_log(WS_LOG_INFO, "kept-start id=%s pid=%d pty=%s", k->id, (int)k->pid,
	       k->pty ? "yes" : "no");
	return k;
}

struct rpc_kept *
rpc_kept_find(struct rpc_kept_table *t, const char *id)
{
	ws_list_for_each (l, &t->procs) {
		struct rpc_kept *k = ws_list_entry(l, struct rpc_kept, link);
		if (strcmp(k->id, id) == 0 || (k->name[0] && strcmp(k->name, id) == 0))
			return k;
	}
	return NULL;
}

bool
rpc_kept_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > RPC_KEPT_NAME_MAX)
		return false;
	if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return false;
	/* "p" and digits is an id's shape: a name never shadows one */
	return !(name[0] == 'p' && n > 1 && strspn(name + 1, "0123456789") == n - 1);
}

bool
rpc_kept_set_name(struct rpc_kept *k, const char *name)
{
	if (!rpc_kept_name_valid(name) || rpc_kept_find(k->t, name))
		return false;
	snprintf(k->name, sizeof(k->name), "%s", name);
	return true;
}

const char *
rpc_kept_id(const struct rpc_kept *k)
{
	return k->id;
}

pid_t
rpc_kept_pid(const struct rpc_kept *k)
{
	return k->pid;
}

bool
rpc_kept_running(const struct rpc_kept *k)
{
	return k->x != NULL;
}

bool
rpc_kept_pty(const struct rpc_kept *k)
{
	return k->pty;
}

void
rpc_kept_range(const struct rpc_kept *k, enum rpc_stream s, uint64_t *start, uint64_t *end)
{
	*start = rpc_ring_start(&k->ring[s]);
	*end = k->ring[s].end;
}

int
rpc_kept_stdin(struct rpc_kept *k, const uint8_t *data, size_t len, bool eof)
{
	return k->x ? rpc_exec_stdin(k->x, data, len, eof) : -ESRCH;
}

int
rpc_kept_resize(struct rpc_kept *k, uint16_t cols, uint16_t rows)
{
	return k->x ? rpc_exec_resize(k->x, cols, rows) : -ESRCH;
}

int
rpc_kept_kill(struct rpc_kept *k, int sig)
{
	return k->x ? rpc_exec_kill(k->x, sig) : -ESRCH;
}

static json_t *
range(const struct rpc_ring *r)
{
	return json_pack("{s:I, s:I}", "start", (json_int_t)rpc_ring_start(r), "end",
			 (json_int_t)r->end);
}

json_t *
rpc_kept_describe(const struct rpc_kept *k)
{
	json_t *o = json_pack("{s:s, s:s, s:i, s:I, s:b, s:b, s:i, s:o, s:o}", "id", k->id,
			      "command", k->label, "pid", (int)k->pid, "started",
			      (json_int_t)k->started_wall_ms, "running", k->x != NULL, "pty",
			      k->pty, "attached", (int)k->nwatchers, "stdout",
			      range(&k->ring[RPC_STDOUT]), "stderr", range(&k->ring[RPC_STDERR]));
	if (k->name[0])
		json_object_set_new(o, "name", json_string(k->name));
	if (!k->x) {
		json_object_set_new(o, "exitCode", json_integer(k->status.exit_code));
		json_object_set_new(o, "signal", rpc_proto_signal(k->status.signal));
		json_object_set_new(o, "timedOut", json_boolean(k->status.timed_out));
		json_object_set_new(o, "durationMs",
				    json_integer((json_int_t)k->status.duration_ms));
	}
	return o;
}

json_t *
rpc_kept_list(const struct rpc_kept_table *t)
{
	json_t *a = json_array();
	ws_list_for_each (l, &t->procs)
		json_array_append_new(a,
				      rpc_kept_describe(ws_list_entry(l, struct rpc_kept, link)));
	return a;
}

void
rpc_kept_counts(const struct rpc_kept_table *t, unsigned *running, unsigned *held, uint64_t *bytes)
{
	*running = t->running;
	*held = t->count;
	*bytes = t->bytes;
}

/* ---- watchers ---- */

struct rpc_kept_watcher *
rpc_kept_attach(struct rpc_kept *k, const struct rpc_kept_watch_ops *ops, void *arg,
		const uint64_t since[3])
{
	struct rpc_kept_watcher *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	*w = (struct rpc_kept_watcher){ .k = k, .ops = ops, .arg = arg };
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++)
		w->next[s] = since[s] < k->ring[s].end ? since[s] : k->ring[s].end;
	ws_list_insert(k->watchers.prev, &w->link);
	k->nwatchers++;
	flush(w);
	update_pause(k);
	return w;
}

void
rpc_kept_detach(struct rpc_kept_watcher *w)
{
	if (!w)
		return;
	struct rpc_kept *k = w->k;
	ws_list_remove(&w->link);
	k->nwatchers--;
	free(w);
	update_pause(k);
}

void
rpc_kept_pump(struct rpc_kept_watcher *w)
{
	if (!w->behind && w->exit_sent)
		return;
	flush(w);
	update_pause(w->k);
}

struct rpc_kept *
rpc_kept_watched(const struct rpc_kept_watcher *w)
{
	return w->k;
}
