#include "watch.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "server_private.h"

struct ws_watch {
	struct lws *wsi;
	struct ws_server *srv;
	ws_watch_fn fn;
	void *arg;
	lws_sorted_usec_list_t rearm;
	int fd;
	bool closing;
	bool in_writable; /* inside a WRITABLE callback */
};

/*
 * Descriptors are adopted on a vhost of their own: the listening ones apply
 * their raw-socket accept role to everything adopted on them.
 */
static struct lws_vhost *
watch_vhost(struct ws_server *srv)
{
	if (srv->watch_vhost)
		return srv->watch_vhost;
	struct lws_context_creation_info vi;
	memset(&vi, 0, sizeof(vi));
	vi.vhost_name = "ws-watch";
	vi.port = CONTEXT_PORT_NO_LISTEN;
	vi.protocols = srv->protocols;
	srv->watch_vhost = lws_create_vhost(srv->ctx, &vi);
	return srv->watch_vhost;
}

struct ws_watch *
ws_watch_create(struct ws_server *srv, int fd, ws_watch_fn fn, void *arg)
{
	struct ws_watch *w = calloc(1, sizeof(*w));
	if (!w) {
		close(fd);
		return NULL;
	}
	*w = (struct ws_watch){ .srv = srv, .fn = fn, .arg = arg, .fd = fd };
	lws_sock_file_fd_type d = { .filefd = fd };
	struct lws_vhost *vh = watch_vhost(srv);
	w->wsi = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, d, "ws-watch", NULL)
		    : NULL;
	if (!w->wsi) {
		ws_log(WS_LOG_ERROR, "watch fd=%d failed=adopt", fd);
		close(fd);
		free(w);
		return NULL;
	}
	lws_set_opaque_user_data(w->wsi, w);
	return w;
}

void
ws_watch_read(struct ws_watch *w, bool on)
{
	if (!w->closing)
		lws_rx_flow_control(w->wsi, on);
}

static void
rearm_cb(lws_sorted_usec_list_t *sul)
{
	struct ws_watch *w = lws_container_of(sul, struct ws_watch, rearm);
	if (!w->closing)
		lws_callback_on_writable(w->wsi);
}

void
ws_watch_want_write(struct ws_watch *w)
{
	if (w->closing)
		return;
	/*
	 * lws clears POLLOUT after a raw file's writable callback returns, so a
	 * request made inside one must wait for the next turn.
	 */
	if (w->in_writable)
		lws_sul_schedule(w->srv->ctx, 0, &w->rearm, rearm_cb, 1);
	else
		lws_callback_on_writable(w->wsi);
}

void
ws_watch_close(struct ws_watch *w)
{
	if (!w || w->closing)
		return;
	w->closing = true;
	w->fn = NULL;
	lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

int
ws_watch_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		  size_t len)
{
	struct ws_watch *w = lws_get_opaque_user_data(wsi);
	struct ws_server *srv;
	bool keep = true;

	switch (reason) {
	case LWS_CALLBACK_RAW_RX_FILE:
		if (w && w->fn)
			keep = w->fn(w->arg, w, w->fd, WS_WATCH_READABLE);
		break;
	case LWS_CALLBACK_RAW_WRITEABLE_FILE:
		if (w && w->fn) {
			w->in_writable = true;
			keep = w->fn(w->arg, w, w->fd, WS_WATCH_WRITABLE);
			w->in_writable = false;
		}
		break;
	case LWS_CALLBACK_RAW_CLOSE_FILE:
		if (w) {
			if (w->fn && !w->closing)
				w->fn(w->arg, w, w->fd, WS_WATCH_CLOSED);
			lws_sul_cancel(&w->rearm);
			lws_set_opaque_user_data(wsi, NULL);
			free(w);
		}
		return 0;
	default:
		return 0;
	}
	srv = lws_context_user(lws_get_context(wsi));
	ws_conn_flush_all(srv);
	if (!keep && w) {
		w->closing = true;
		w->fn = NULL;
		return -1;
	}
	return 0;
}
