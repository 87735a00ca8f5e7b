#include "timer.h"

#include <stdlib.h>

#include "server_private.h"

struct ws_timer {
	lws_sorted_usec_list_t sul;
	struct ws_server *srv;
	ws_timer_fn fn;
	void *arg;
};

static void
fire(lws_sorted_usec_list_t *sul)
{
	struct ws_timer *t = lws_container_of(sul, struct ws_timer, sul);
	struct ws_server *srv = t->srv;
	/* the callback may destroy its timer (a command's end, a kept process dropped) */
	t->fn(t->arg);
	ws_conn_flush_all(srv);
}

struct ws_timer *
ws_timer_create(struct ws_server *srv, ws_timer_fn fn, void *arg)
{
	struct ws_timer *t = calloc(1, sizeof(*t));
	if (t)
		*t = (struct ws_timer){ .srv = srv, .fn = fn, .arg = arg };
	return t;
}

void
ws_timer_arm(struct ws_timer *t, uint64_t ms)
{
	lws_sul_schedule(t->srv->ctx, 0, &t->sul, fire, (lws_usec_t)(ms ? ms : 1) * 1000);
}

void
ws_timer_destroy(struct ws_timer *t)
{
	if (!t)
		return;
	lws_sul_cancel(&t->sul);
	free(t);
}
