#define _GNU_SOURCE /* SOCK_NONBLOCK, SOCK_CLOEXEC */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

static bool
same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
	       x->sin6_scope_id == y->sin6_scope_id;
}

/* Binds one socket to sa (whose port is set by the caller). */
static bool
bind_one(struct ws_listen_set *set, struct sockaddr *sa, socklen_t len, int backlog,
	 const char *host)
{
	if (set->n == WS_LISTEN_MAX) {
		ws_log(WS_LOG_ERROR, "listen host=%s failed=yes error=\"more than %d addresses\"",
		       host, WS_LISTEN_MAX);
		return false;
	}
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6) {
		/* "::" alone means both families; any other IPv6 address only itself */
		struct in6_addr any = IN6ADDR_ANY_INIT;
		int v6only = memcmp(&((struct sockaddr_in6 *)sa)->sin6_addr, &any, sizeof(any)) !=
			     0;
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0)
			goto fail_fd;
	}
	if (bind(fd, sa, len) != 0 || listen(fd, backlog) != 0)
		goto fail_fd;

	struct sockaddr_storage got;
	socklen_t gl = sizeof(got);
	if (getsockname(fd, (struct sockaddr *)&got, &gl) != 0)
		goto fail_fd;
	const void *ip;
	if (got.ss_family == AF_INET) {
		ip = &((struct sockaddr_in *)&got)->sin_addr;
		set->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
	} else {
		ip = &((struct sockaddr_in6 *)&got)->sin6_addr;
		set->port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
	}
	inet_ntop(got.ss_family, ip, set->addrs[set->n], sizeof(set->addrs[0]));
	set->fds[set->n++] = fd;
	return true;

fail_fd:;
	int saved = errno;
	close(fd);
	errno = saved;
fail:
	ws_log(WS_LOG_ERROR, "listen host=%s port=%u failed=yes error=\"%s\"", host, set->port,
	       strerror(errno));
	return false;
}

static bool
open_host(struct ws_listen_set *set, const char *host, int backlog)
{
	struct addrinfo hints = {
		.ai_flags = AI_PASSIVE,
		.ai_socktype = SOCK_STREAM,
		.ai_protocol = IPPROTO_TCP,
	};
	struct addrinfo *res;
	int err = getaddrinfo(host, NULL, &hints, &res);
	if (err != 0) {
		ws_log(WS_LOG_ERROR, "listen host=%s failed=yes error=\"%s\"", host,
		       gai_strerror(err));
		return false;
	}
	bool ok = true;
	unsigned first = set->n;
	for (struct addrinfo *ai = res; ai && ok; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		bool dup = false;
		for (struct addrinfo *b = res; b != ai && !dup; b = b->ai_next)
			dup = same_addr(ai->ai_addr, b->ai_addr);
		if (dup)
			continue;
		/* the port: the one asked for, or the one the first socket got */
		if (ai->ai_family == AF_INET)
			((struct sockaddr_in *)ai->ai_addr)->sin_port = htons(set->port);
		else
			((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons(set->port);
		ok = bind_one(set, ai->ai_addr, ai->ai_addrlen, backlog, host);
	}
	freeaddrinfo(res);
	if (ok && set->n == first) {
		ws_log(WS_LOG_ERROR, "listen host=%s failed=yes error=\"no IPv4 or IPv6 address\"",
		       host);
		ok = false;
	}
	return ok;
}

bool
ws_listen_open(struct ws_listen_set *set, const char *hosts, uint16_t port, int backlog)
{
	*set = (struct ws_listen_set){ .port = port };
	char *list = strdup(hosts);
	if (!list)
		return false;
	bool ok = true;
	char *save = NULL;
	for (char *h = strtok_r(list, ",", &save); ok && h; h = strtok_r(NULL, ",", &save)) {
		while (*h == ' ')
			h++;
		ok = *h && open_host(set, h, backlog);
		if (!*h)
			ws_log(WS_LOG_ERROR, "listen failed=yes error=\"empty address in --host\"");
	}
	free(list);
	if (ok && set->n == 0) {
		ws_log(WS_LOG_ERROR, "listen failed=yes error=\"no address in --host\"");
		ok = false;
	}
	if (!ok)
		ws_listen_close(set);
	return ok;
}

void
ws_listen_close(struct ws_listen_set *set)
{
	for (unsigned i = 0; i < set->n; i++) {
		if (set->fds[i] >= 0)
			close(set->fds[i]);
		set->fds[i] = -1;
	}
	set->n = 0;
}
