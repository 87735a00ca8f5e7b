/*
 * kept: processes that outlive the connection that started them (exec with
 * "keep", and every terminal). Each has a server-wide id ("p1", "p2", ...),
 * its recent output in a bounded ring per stream addressed by byte offsets,
 * and any number of watchers: connections that attached to it, from any
 * offset still held, and then follow it live. Bounds: --max-kept processes
 * (running or exited), --keep-buffer bytes per stream, --kept-total bytes of
 * all rings; exited processes go first (oldest exit first), and stay
 * listable --kept-linger after their exit. Destroying the table ends them.
 */
#ifndef RPC_KEPT_H
#define RPC_KEPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec.h"

struct ws_server;
struct rpc_kept_table;
struct rpc_kept;
struct rpc_kept_watcher;

struct rpc_kept_limits {
	uint32_t max;       /* processes, running or exited */
	uint32_t running;   /* commands of any kind running at once (--max-exec) */
	size_t buffer;      /* ring bytes per stream */
	uint64_t total;     /* ring bytes of every process together */
	uint64_t linger_ms; /* an exited process stays this long */
};

/* Bytes a watcher's connection may have queued before it is left behind (and caught up later). */
#define RPC_KEPT_WATCH_QUEUED (256u * 1024u)

struct rpc_kept_table *rpc_kept_table_create(struct ws_server *srv, struct rpc_engine *e,
					     const struct rpc_kept_limits *l);
/*
 * Ends every kept process (SIGHUP, then the engine's SIGKILL and reaping when
 * it is destroyed after this), tells every watcher (gone), frees all. NULL:
 * no-op.
 */
void rpc_kept_table_destroy(struct rpc_kept_table *t);

/*
 * Starts a kept command (spec->max_output is ignored: the ring bounds it).
 * With limits.running commands running (the engine's count, every kind),
 * NULL with "too many running commands" in err. When --max-kept are held,
 * the oldest exited one is dropped; when all are running, NULL with "too
 * many kept processes" in err. Else NULL with the engine's reason.
 */
struct rpc_kept *rpc_kept_start(struct rpc_kept_table *t, const struct rpc_exec_spec *spec,
				const char *label, char *err, size_t errlen);

/* The process with this id (or name), or NULL. */
struct rpc_kept *rpc_kept_find(struct rpc_kept_table *t, const char *id);
/*
 * Names a process (a terminal's session name, chosen by its client): 1 to
 * RPC_KEPT_NAME_MAX bytes of [A-Za-z0-9._-], not shaped like an id ("p7").
 * False when invalid or already taken.
 */
#define RPC_KEPT_NAME_MAX 23
bool rpc_kept_name_valid(const char *name);
bool rpc_kept_set_name(struct rpc_kept *k, const char *name);
const char *rpc_kept_id(const struct rpc_kept *k);
pid_t rpc_kept_pid(const struct rpc_kept *k);
bool rpc_kept_running(const struct rpc_kept *k);
/* Whether it runs on a pty (a terminal, or exec with pty). */
bool rpc_kept_pty(const struct rpc_kept *k);
/*
 * Drops an exited process's record now, not at --kept-linger (its
 * watchers are told it is gone). False, and nothing done, while it runs.
 */
bool rpc_kept_forget(struct rpc_kept *k);
/* Oldest held offset and end of a stream's output. */
void rpc_kept_range(const struct rpc_kept *k, enum rpc_stream s, uint64_t *start, uint64_t *end);

/* As rpc_exec_stdin / _resize / _kill; -ESRCH once it exited. */
int rpc_kept_stdin(struct rpc_kept *k, const uint8_t *data, size_t len, bool eof);
int rpc_kept_resize(struct rpc_kept *k, uint16_t cols, uint16_t rows);
int rpc_kept_kill(struct rpc_kept *k, int sig);

/* One process as list reports it (a new object). */
json_t *rpc_kept_describe(const struct rpc_kept *k);
/* Every process, oldest first (a new array). */
json_t *rpc_kept_list(const struct rpc_kept_table *t);
/* {"running", "held", "bytes"}, for /metrics and info. */
void rpc_kept_counts(const struct rpc_kept_table *t, unsigned *running, unsigned *held,
		     uint64_t *bytes);

struct rpc_kept_status {
	int exit_code; /* 128 + N for a signal, as a shell reports it */
	int signal;    /* 0 when it exited */
	bool timed_out;
	uint64_t duration_ms;
	uint64_t end[3]; /* each stream's final offset */
};

struct rpc_kept_watch_ops {
	/*
	 * Bytes [offset, offset + n) of stream s. Return false when the
	 * client's queue is full: nothing more comes until rpc_kept_pump().
	 */
	bool (*output)(void *arg, enum rpc_stream s, uint64_t offset, const uint8_t *p, size_t n);
	/* Bytes [from, to) of stream s are gone from the ring: never delivered. */
	void (*lost)(void *arg, enum rpc_stream s, uint64_t from, uint64_t to);
	/* The process ended, and everything it wrote was delivered (or reported lost). */
	void (*exit)(void *arg, const struct rpc_kept_status *st);
	/* The process is being dropped: the watcher is freed right after this call. */
	void (*gone)(void *arg);
};

/*
 * Watches k from since[RPC_STDOUT] / since[RPC_STDERR] (an offset before
 * the ring's start is reported lost, one past the end is taken as the end).
 * Replay starts at once, within the call. NULL on OOM.
 */
struct rpc_kept_watcher *rpc_kept_attach(struct rpc_kept *k, const struct rpc_kept_watch_ops *ops,
					 void *arg, const uint64_t since[3]);
/* Stops watching. NULL is a no-op. */
void rpc_kept_detach(struct rpc_kept_watcher *w);
/* The watcher's client drained its queue: delivery goes on. */
void rpc_kept_pump(struct rpc_kept_watcher *w);
struct rpc_kept *rpc_kept_watched(const struct rpc_kept_watcher *w);

#endif
