/*
 * timer: one-shot timers on the server's loop (command timeouts, grace
 * periods). Millisecond resolution; callbacks run on the loop thread.
 */
#ifndef WS_TIMER_H
#define WS_TIMER_H

#include <stdint.h>

struct ws_server;
struct ws_timer;

typedef void (*ws_timer_fn)(void *arg);

/* A disarmed timer; NULL on OOM. Its callback may destroy it. */
struct ws_timer *ws_timer_create(struct ws_server *srv, ws_timer_fn fn, void *arg);
/* (Re)arms it to fire once, ms from now. */
void ws_timer_arm(struct ws_timer *t, uint64_t ms);
/* Disarms and frees. NULL is a no-op. */
void ws_timer_destroy(struct ws_timer *t);

#endif
