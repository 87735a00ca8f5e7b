/*
 * watch: non-socket descriptors (pipes, signalfd, pidfd) served by the
 * server's loop, so a server can run children without threads or blocking
 * reads. Readiness is level-triggered: read until EAGAIN or stop watching.
 */
#ifndef WS_WATCH_H
#define WS_WATCH_H

#include <stdbool.h>

struct ws_server;
struct ws_watch;

enum ws_watch_event {
	WS_WATCH_READABLE, /* read it (EOF and hang-up included) */
	WS_WATCH_WRITABLE, /* after ws_watch_want_write(): it can take bytes */
	WS_WATCH_CLOSED,   /* hung up or errored: the watch is gone after this call */
};

/*
 * Called on the loop. Return false to close the watch (same as
 * ws_watch_close(); the watch must not be used afterwards).
 */
typedef bool (*ws_watch_fn)(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev);

/*
 * Starts watching fd for reading. Takes ownership of fd: it is closed when
 * the watch closes. Returns NULL on failure (fd is then closed too).
 */
struct ws_watch *ws_watch_create(struct ws_server *srv, int fd, ws_watch_fn fn, void *arg);

/* Pauses (false) or resumes (true) readable events. */
void ws_watch_read(struct ws_watch *w, bool on);
/* Asks for one WS_WATCH_WRITABLE event. */
void ws_watch_want_write(struct ws_watch *w);
/* Stops watching and closes the descriptor (soon, on the loop). NULL is a no-op. */
void ws_watch_close(struct ws_watch *w);

#endif
