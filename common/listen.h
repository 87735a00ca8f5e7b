/*
 * listen: the server's listening sockets, bound by us rather than by
 * libwebsockets (whose 4.1 turns an IPv4 literal into an IPv6 wildcard).
 *
 * Each address of a comma-separated --host list gets exactly one socket:
 *   - an IPv4 literal: that IPv4 address only ("0.0.0.0": every IPv4 one);
 *   - an IPv6 literal: that IPv6 address only (IPV6_V6ONLY), except "::",
 *     which means every address of both families;
 *   - a name: each address it resolves to, once each, on its own socket.
 * With port 0 the first socket picks a free port and the others take it.
 */
#ifndef WS_LISTEN_H
#define WS_LISTEN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define WS_LISTEN_MAX 16

struct ws_listen_set {
	int fds[WS_LISTEN_MAX];
	char addrs[WS_LISTEN_MAX][INET6_ADDRSTRLEN]; /* as bound, from getsockname */
	uint16_t port;                               /* as bound (port 0 resolved) */
	unsigned n;
};

/*
 * Binds and listens on every address of hosts (non-blocking, close-on-exec
 * sockets). On failure logs why, closes what it opened and returns false.
 */
bool ws_listen_open(struct ws_listen_set *set, const char *hosts, uint16_t port, int backlog);

/* Closes every socket still open in set (fds set to -1 are skipped). */
void ws_listen_close(struct ws_listen_set *set);

#endif
