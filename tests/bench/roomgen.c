/*
 * ws-roomgen: loopback-only load generator for the rooms (fan-out) and RPC
 * benchmarks (tests/bench/run-rooms). One thread, one epoll set, its own
 * RFC 6455 client framing (wsclient.c), latencies in a fixed histogram
 * (hist.c). Nothing is allocated per message: every connection gets one
 * input and one output buffer when it opens.
 *
 *   fanout  one sender and N receivers in one room (ws-broadcast protocol:
 *           a text message goes to every member as {"type":"message",...,
 *           "text":"t=<ns>;i=<n>",...}). The sender keeps at most --window
 *           messages not yet delivered to every member, optionally paced at
 *           --rate messages/s. Receivers take now - t on CLOCK_MONOTONIC
 *           (same machine) as the delivery latency.
 *   rpc     one connection, --inflight requests outstanding: --kind ping
 *           ({"type":"ping","id":N} -> "pong") or exec
 *           ({"type":"exec","id":N,"command":"true"} -> "result").
 *           --reply echo: a ping's reply is the request echoed back unchanged
 *           ("type":"ping", same id), for an echo server (the ping floor).
 *
 * --ports P1,P2,... spreads the receivers over several servers (round robin;
 * the sender on the first): a room that spans nodes (ws-broadcast on Redis).
 * --proto socketio speaks Socket.IO v4 over a plain WebSocket (engine.io
 * "40" connect, events as 42["message",TEXT]) for the Socket.IO peer.
 *
 * Output: one JSON line on stdout, a human line on stderr. Exit 0 clean,
 * 1 errors seen, 100 usage, 111 system failure. Bounded: open timeout,
 * warm-up, duration, 2 s drain.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "wsclient.h"

#define NS_PER_S 1000000000ull
#define IN_BUF (64u * 1024u)
#define OUT_BUF (64u * 1024u)
#define MAX_RECEIVERS 20000u
#define RING 65536u /* window / in-flight ceiling (a power of two) */
#define OPEN_BATCH 32u
#define OPEN_TIMEOUT_NS (20 * NS_PER_S)
#define SETTLE_QUIET_NS (300000000ull)
#define SETTLE_MAX_NS (5 * NS_PER_S)
#define DRAIN_NS (2 * NS_PER_S)
#define MAX_PORTS 8

enum mode { MODE_FANOUT, MODE_RPC };
enum kind { KIND_PING, KIND_EXEC };
enum reply { REPLY_PONG, REPLY_ECHO };

struct conn {
	int fd;
	bool open;     /* 101 seen */
	bool welcomed; /* first frame (the welcome) skipped: fan-out only */
	uint8_t mask[4];
	uint32_t in_len, out_len;
	uint8_t *in, *out;
};

static struct {
	enum mode mode;
	enum kind kind;
	enum reply reply; /* rpc ping: what a reply looks like (--reply) */
	unsigned port, receivers, window, inflight;
	bool sender_window; /* window on the sender's own copies, not on delivery to every member */
	double rate, warmup, duration;
	const char *room, *label, *host;
	int server_pid;
	unsigned ports[MAX_PORTS], nports; /* --ports: receivers round robin; 0: --port */
	bool socketio;                     /* --proto socketio */
} opt = { .receivers = 100,
	  .window = 64,
	  .inflight = 16,
	  .warmup = 1,
	  .duration = 3,
	  .room = "bench",
	  .label = "",
	  .host = "127.0.0.1" };

static struct conn *conns;
static unsigned nconns;
static int ep = -1;
static volatile sig_atomic_t stop;

/* run state */
static uint64_t t_measure, t_end; /* measuring window [t_measure, t_end) */
static uint64_t sent, done;       /* fan-out: messages sent, fully delivered (in order) */
static uint64_t sender_got;       /* fan-out: the sender's own copies received */
static uint32_t ring_count[RING]; /* fan-out: deliveries per message; rpc: unused */
static uint64_t ring_sent[RING];  /* rpc: send time per id */
static uint64_t deliveries, measured_msgs, errors, replies;
static char first_error[160];
static struct hist lat;

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void
error_once(const char *what)
{
	errors++;
	if (!first_error[0])
		snprintf(first_error, sizeof first_error, "%s", what);
}

static uint64_t
	children_ns; /* the last proc_cpu_ns(pid > 0) call's reaped children (cutime + cstime) */

static uint64_t
proc_cpu_ns(int pid)
{
	if (pid <= 0) {
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_S +
		       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
	}
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	unsigned long ut = 0, st = 0;
	long cut = 0, cst = 0;
	/* after ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ut, &st,
		   &cut, &cst) != 4)
		return 0;
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t tick = NS_PER_S / (uint64_t)(hz > 0 ? hz : 100);
	children_ns = (uint64_t)(cut + cst) * tick;
	return (uint64_t)(ut + st) * tick;
}

/* ------------------------------------------------------------------ output */

static bool
flush_out(struct conn *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return true;
			error_once("send failed");
			return false;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (uint32_t)n;
	}
	return true;
}

/* Queues one masked frame; false when the output buffer is full (the caller waits). */
static bool
queue_frame(struct conn *c, enum wsclient_opcode op, const void *p, size_t n)
{
	if (c->out_len + 14 + n > OUT_BUF)
		return false;
	uint8_t *w = c->out + c->out_len;
	size_t h = wsclient_header(w, op, n, c->mask);
	memcpy(w + h, p, n);
	wsclient_mask(w + h, n, c->mask);
	c->out_len += (uint32_t)(h + n);
	return true;
}

/* ------------------------------------------------------------------ input */

static uint64_t
parse_u64_after(const uint8_t *p, size_t n, const char *key, bool *ok)
{
	const uint8_t *k = memmem(p, n, key, strlen(key));
	*ok = false;
	if (!k)
		return 0;
	const uint8_t *q = k + strlen(key), *e = p + n;
	uint64_t v = 0;
	while (q < e && *q >= '0' && *q <= '9') {
		v = v * 10 + (uint64_t)(*q - '0');
		q++;
		*ok = true;
	}
	return v;
}

static void
on_fanout_text(struct conn *c, const uint8_t *p, size_t n, uint64_t now)
{
	if (!c->welcomed) {
		c->welcomed = true;
		return;
	}
	/* the text is "t=<ns>;i=<n>": find '"t=' with memchr ('=' is rare in the JSON), then parse both */
	const uint8_t *e = p + n, *q = p;
	for (;;) {
		q = memchr(q, '=', (size_t)(e - q));
		if (!q)
			return; /* join / leave / other */
		if (q - p >= 2 && q[-1] == 't' && q[-2] == '"')
			break;
		q++;
	}
	uint64_t t = 0, i = 0;
	for (q++; q < e && *q >= '0' && *q <= '9'; q++)
		t = t * 10 + (uint64_t)(*q - '0');
	bool ok_i = e - q > 3 && q[0] == ';' && q[1] == 'i' && q[2] == '=' && q[3] >= '0' &&
		    q[3] <= '9';
	if (ok_i)
		for (q += 3; q < e && *q >= '0' && *q <= '9'; q++)
			i = i * 10 + (uint64_t)(*q - '0');
	if (!ok_i || i >= sent || i < done) {
		error_once("unexpected message index");
		return;
	}
	if (++ring_count[i & (RING - 1)] == nconns) {
		while (done < sent && ring_count[done & (RING - 1)] == nconns)
			ring_count[done++ & (RING - 1)] = 0;
	}
	if (c == &conns[0]) {
		sender_got++;
		return; /* the sender's own copy: counts for the window, not as a delivery */
	}
	if (now >= t_measure && now < t_end) {
		deliveries++;
		hist_add(&lat, now - t);
	}
}

static void
on_rpc_text(const uint8_t *p, size_t n, uint64_t now)
{
	static const char *const want[] = { "\"type\":\"pong\"", "\"type\":\"result\"" };
	const char *w = opt.reply == REPLY_ECHO ? "\"type\":\"ping\"" : want[opt.kind];
	bool ok;
	uint64_t id = parse_u64_after(p, n, "\"id\":", &ok);
	if (!memmem(p, n, w, strlen(w)) || !ok) {
		if (memmem(p, n, "error", 5))
			error_once("error reply");
		return; /* e.g. a hello */
	}
	if (opt.kind == KIND_EXEC && !memmem(p, n, "\"exitCode\":0", 12))
		error_once("exec exitCode not 0");
	if (id >= sent || !ring_sent[id & (RING - 1)]) {
		error_once("reply to an unknown id");
		return;
	}
	uint64_t t = ring_sent[id & (RING - 1)];
	ring_sent[id & (RING - 1)] = 0;
	replies++;
	if (now >= t_measure && now < t_end) {
		measured_msgs++;
		hist_add(&lat, now - t);
	}
}

/* Parses whole frames from c->in; returns false when the connection failed. */
static bool
parse_frames(struct conn *c, uint64_t now)
{
	uint32_t off = 0;
	for (;;) {
		uint32_t avail = c->in_len - off;
		if (avail < 2)
			break;
		uint8_t *f = c->in + off;
		unsigned hl = wsclient_server_header_len(f[1]);
		if (f[1] & 0x80) {
			error_once("masked server frame");
			return false;
		}
		if (avail < hl)
			break;
		uint64_t len = f[1] & 0x7f;
		if (len == 126)
			len = ((uint64_t)f[2] << 8) | f[3];
		else if (len == 127) {
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | f[2 + i];
		}
		if (len + hl > IN_BUF) {
			error_once("frame larger than the input buffer");
			return false;
		}
		if (avail < hl + len)
			break;
		uint8_t op = f[0] & 0x0f;
		uint8_t *pl = f + hl;
		if (!(f[0] & 0x80) && op != WSC_OP_CONT) {
			error_once("fragmented frame (unsupported)");
			return false;
		}
		if (op == WSC_OP_TEXT) {
			if (opt.mode == MODE_FANOUT)
				on_fanout_text(c, pl, (size_t)len, now);
			else
				on_rpc_text(pl, (size_t)len, now);
		} else if (op == WSC_OP_PING) {
			if (!queue_frame(c, WSC_OP_PONG, pl, (size_t)len))
				error_once("no room for a pong");
		} else if (op == WSC_OP_CLOSE) {
			error_once("server closed the connection");
			return false;
		}
		off += hl + (uint32_t)len;
	}
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return true;
}

static bool
handshake_in(struct conn *c)
{
	c->in[c->in_len < IN_BUF ? c->in_len : IN_BUF - 1] = 0;
	char *end = strstr((char *)c->in, "\r\n\r\n");
	if (!end)
		return true; /* wait for more */
	/* the accept value was checked against what we sent when the request was built */
	if (strncmp((char *)c->in, "HTTP/1.1 101", 12) != 0) {
		char msg[96];
		snprintf(msg, sizeof msg, "upgrade refused: %.60s", (char *)c->in);
		for (char *q = msg; *q; q++)
			if (*q == '\r' || *q == '\n')
				*q = ' ';
		error_once(msg);
		return false;
	}
	uint32_t hdr = (uint32_t)(end + 4 - (char *)c->in);
	memmove(c->in, c->in + hdr, c->in_len - hdr);
	c->in_len -= hdr;
	c->open = true;
	/* Socket.IO: join the default namespace (the server puts the socket in the room) */
	if (opt.socketio && !queue_frame(c, WSC_OP_TEXT, "40", 2))
		return false;
	return true;
}

static void
conn_fail(struct conn *c)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	stop = 1;
}

static void
on_readable(struct conn *c, uint64_t now)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		if (c->in_len >= IN_BUF) {
			error_once("input buffer full");
			conn_fail(c);
			return;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, IN_BUF - 1 - c->in_len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				error_once("recv failed"), conn_fail(c);
			return;
		}
		if (n == 0) {
			error_once("server closed the TCP connection");
			conn_fail(c);
			return;
		}
		bool drained =
			(size_t)n <
			IN_BUF - 1 -
				c->in_len; /* a short read emptied the socket (edge-triggered: new data brings a new event) */
		c->in_len += (uint32_t)n;
		if (!c->open && (!handshake_in(c) || !c->open)) {
			if (!c->open && first_error[0])
				conn_fail(c);
			continue;
		}
		if (!parse_frames(c, now)) {
			conn_fail(c);
			return;
		}
		if (drained)
			return;
	}
}

/* ------------------------------------------------------------------ setup */

static int
open_conn(struct conn *c, const char *path, unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1 ||
	    (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
		fprintf(stderr, "ws-roomgen: --host must be a 127.0.0.0/8 literal\n");
		return -100;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -111;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -111;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uint8_t nonce[16];
	if (getrandom(nonce, sizeof nonce, 0) != sizeof nonce || getrandom(c->mask, 4, 0) != 4) {
		close(fd);
		return -111;
	}
	char key[WSC_KEY_LEN], accept[WSC_ACCEPT_LEN];
	wsclient_key(nonce, key, accept);
	int n = snprintf(
		(char *)c->out, OUT_BUF,
		"GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
		path, opt.host, port, key);
	c->out_len = (uint32_t)n;
	c->fd = fd;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -111;
	flush_out(c);
	return 0;
}

/* One epoll pass (at most timeout_ms); returns false when a connection failed. */
static bool
poll_once(int timeout_ms)
{
	struct epoll_event evs[256];
	int n = epoll_wait(ep, evs, 256, timeout_ms);
	uint64_t now = now_ns();
	for (int i = 0; i < n; i++) {
		struct conn *c = evs[i].data.ptr;
		if (c->fd < 0)
			continue;
		if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			on_readable(c, now);
		if (c->fd >= 0 && c->out_len && !flush_out(c))
			conn_fail(c);
	}
	return !stop;
}

static unsigned
count_open(void)
{
	unsigned k = 0;
	for (unsigned i = 0; i < nconns; i++)
		k += conns[i].open && (opt.mode != MODE_FANOUT || conns[i].welcomed);
	return k;
}

/* ------------------------------------------------------------------ load */

static bool
send_one(uint64_t now)
{
	struct conn *c = &conns[0];
	char msg[160];
	int n;
	if (opt.mode == MODE_FANOUT && opt.socketio)
		n = snprintf(msg, sizeof msg, "42[\"message\",\"t=%" PRIu64 ";i=%" PRIu64 "\"]",
			     now, sent);
	else if (opt.mode == MODE_FANOUT)
		n = snprintf(msg, sizeof msg, "t=%" PRIu64 ";i=%" PRIu64, now, sent);
	else if (opt.kind == KIND_PING)
		n = snprintf(msg, sizeof msg, "{\"type\":\"ping\",\"id\":%" PRIu64 "}", sent);
	else
		n = snprintf(msg, sizeof msg,
			     "{\"type\":\"exec\",\"id\":%" PRIu64 ",\"command\":\"true\"}", sent);
	if (!queue_frame(c, WSC_OP_TEXT, msg, (size_t)n))
		return false;
	if (opt.mode == MODE_RPC)
		ring_sent[sent & (RING - 1)] = now;
	sent++;
	if (opt.mode == MODE_FANOUT && now >= t_measure && now < t_end)
		measured_msgs++;
	return true;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: ws-roomgen fanout|rpc --port N [options]\n"
		"  --host ADDR        127.0.0.0/8 literal (127.0.0.1)\n"
		"  --room NAME        fanout: the room (?id=NAME; default bench)\n"
		"  --receivers N      fanout: receivers besides the sender (100)\n"
		"  --window K         fanout: messages not yet delivered to all (64)\n"
		"  --sender-window 1  fanout: count the window on the sender's own copies (receivers may lag)\n"
		"  --rate R           fanout: messages/s from the sender, 0 = as fast as the window allows (0)\n"
		"  --kind ping|exec   rpc: request type (ping)\n"
		"  --reply pong|echo  rpc ping: a reply is a pong, or the request echoed back\n"
		"                     unchanged by an echo server (pong)\n"
		"  --inflight P       rpc: requests outstanding (16)\n"
		"  --warmup S --duration S   (1, 3)\n"
		"  --server-pid PID   report that process's CPU while measuring\n"
		"  --label NAME\n"
		"  --ports P1,P2,...  fanout: receivers round robin over these ports, the sender on P1\n"
		"  --proto socketio   fanout: Socket.IO v4 over WebSocket (room from ?room=)\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 100;
	}
	if (!strcmp(argv[1], "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "fanout"))
		opt.mode = MODE_FANOUT;
	else if (!strcmp(argv[1], "rpc"))
		opt.mode = MODE_RPC;
	else {
		usage(stderr);
		return 100;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage(stderr);
			return 100;
		}
		i++;
		if (!strcmp(a, "--port"))
			opt.port = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--host"))
			opt.host = v;
		else if (!strcmp(a, "--room"))
			opt.room = v;
		else if (!strcmp(a, "--receivers"))
			opt.receivers = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--window"))
			opt.window = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			opt.rate = strtod(v, NULL);
		else if (!strcmp(a, "--sender-window"))
			opt.sender_window = !strcmp(v, "1") || !strcmp(v, "yes");
		else if (!strcmp(a, "--kind"))
			opt.kind = !strcmp(v, "exec") ? KIND_EXEC : KIND_PING;
		else if (!strcmp(a, "--reply")) {
			if (!strcmp(v, "pong"))
				opt.reply = REPLY_PONG;
			else if (!strcmp(v, "echo"))
				opt.reply = REPLY_ECHO;
			else {
				usage(stderr);
				return 100;
			}
		} else if (!strcmp(a, "--inflight"))
			opt.inflight = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--warmup"))
			opt.warmup = strtod(v, NULL);
		else if (!strcmp(a, "--duration"))
			opt.duration = strtod(v, NULL);
		else if (!strcmp(a, "--server-pid"))
			opt.server_pid = atoi(v);
		else if (!strcmp(a, "--label"))
			opt.label = v;
		else if (!strcmp(a, "--ports")) {
			for (char *q = (char *)v; *q && opt.nports < MAX_PORTS;) {
				opt.ports[opt.nports++] = (unsigned)strtoul(q, &q, 10);
				if (*q == ',')
					q++;
				else if (*q)
					break;
			}
			opt.port = opt.nports ? opt.ports[0] : 0;
		} else if (!strcmp(a, "--proto"))
			opt.socketio = !strcmp(v, "socketio");
		else {
			usage(stderr);
			return 100;
		}
	}
	if (!opt.port || opt.port > 65535 || opt.receivers > MAX_RECEIVERS || !opt.window ||
	    opt.window > RING / 2 || !opt.inflight || opt.inflight > RING / 2 ||
	    opt.duration <= 0 || opt.duration > 60 || opt.warmup < 0 || opt.warmup > 30 ||
	    opt.rate < 0 ||
	    (opt.reply == REPLY_ECHO && (opt.mode != MODE_RPC || opt.kind != KIND_PING))) {
		usage(stderr);
		return 100;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	nconns = opt.mode == MODE_FANOUT ? opt.receivers + 1 : 1;
	conns = calloc(nconns, sizeof *conns);
	uint8_t *mem = malloc((size_t)nconns * (IN_BUF + OUT_BUF));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !mem || ep < 0)
		return 111;
	uint64_t t0 = now_ns();
	for (unsigned i = 0; i < nconns; i++) {
		conns[i].fd = -1;
		conns[i].in = mem + (size_t)i * (IN_BUF + OUT_BUF);
		conns[i].out = conns[i].in + IN_BUF;
		conns[i].welcomed = opt.mode != MODE_FANOUT;
		char path[256];
		if (opt.mode == MODE_FANOUT && opt.socketio)
			snprintf(path, sizeof path, "/socket.io/?EIO=4&transport=websocket&room=%s",
				 opt.room);
		else if (opt.mode == MODE_FANOUT)
			snprintf(path, sizeof path, "/?id=%s&user=%s%u", opt.room, i ? "r" : "s",
				 i);
		else
			snprintf(path, sizeof path, "/");
		unsigned port = opt.nports ? opt.ports[i % opt.nports] : opt.port;
		int r = open_conn(&conns[i], path, port);
		if (r < 0) {
			fprintf(stderr, "ws-roomgen: connection %u: %s\n", i, strerror(errno));
			return -r;
		}
		if ((i + 1) % OPEN_BATCH == 0 || i + 1 == nconns) {
			while (count_open() < i + 1) {
				if (!poll_once(100) || now_ns() - t0 > OPEN_TIMEOUT_NS) {
					fprintf(stderr, "ws-roomgen: open failed: %s\n",
						first_error[0] ? first_error : "timeout");
					return 1;
				}
			}
		}
	}
	double open_s = (double)(now_ns() - t0) / 1e9;
	/* let the join events settle: until quiet for 300 ms (at most 5 s) */
	uint64_t ts = now_ns(), last = ts;
	while (!stop && now_ns() - last < SETTLE_QUIET_NS && now_ns() - ts < SETTLE_MAX_NS) {
		struct epoll_event evs[256];
		int n = epoll_wait(ep, evs, 256, 50);
		uint64_t now = now_ns();
		if (n > 0)
			last = now;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c->fd >= 0)
				on_readable(c, now);
		}
	}

	uint64_t start = now_ns();
	t_measure = start + (uint64_t)(opt.warmup * 1e9);
	t_end = t_measure + (uint64_t)(opt.duration * 1e9);
	uint64_t cpu_srv0 = 0, cpu_gen0 = 0, cpu_srv1 = 0, cpu_gen1 = 0, kids0 = 0, kids1 = 0;
	bool measuring = false;
	unsigned limit = opt.mode == MODE_FANOUT ? opt.window : opt.inflight;
	uint64_t hard_end = t_end + DRAIN_NS;
	for (;;) {
		uint64_t now = now_ns();
		if (!measuring && now >= t_measure) {
			measuring = true;
			cpu_srv0 = proc_cpu_ns(opt.server_pid);
			kids0 = children_ns;
			cpu_gen0 = proc_cpu_ns(0);
		}
		if (measuring && now >= t_end && !cpu_gen1) {
			cpu_srv1 = proc_cpu_ns(opt.server_pid);
			kids1 = children_ns;
			cpu_gen1 = proc_cpu_ns(0) + 1;
		}
		if (stop || now >= hard_end)
			break;
		uint64_t outstanding = opt.mode == MODE_FANOUT ? sent - done : sent - replies;
		if (now >= t_end && outstanding == 0)
			break;
		int timeout = 1;
		if (now < t_end) {
			/* top up the window (paced: only what is due) */
			while (sent - (opt.mode != MODE_FANOUT ? replies
				       : opt.sender_window     ? sender_got
							       : done) <
				       limit &&
			       (opt.mode != MODE_FANOUT || sent - done < RING / 2)) {
				if (opt.rate > 0) {
					uint64_t due = start +
						       (uint64_t)((double)sent * 1e9 / opt.rate);
					if (due > now)
						break;
				}
				if (!send_one(now))
					break;
			}
			if (conns[0].out_len && !flush_out(&conns[0]))
				conn_fail(&conns[0]);
			timeout = opt.rate > 0 ? 1 : 10;
		}
		if (!poll_once(timeout))
			break;
	}
	if (!cpu_gen1) {
		cpu_srv1 = proc_cpu_ns(opt.server_pid);
		kids1 = children_ns;
		cpu_gen1 = proc_cpu_ns(0) + 1;
	}
	uint64_t outstanding = opt.mode == MODE_FANOUT ? sent - done : sent - replies;
	if (outstanding && !stop)
		error_once("messages still undelivered after the drain");
	for (unsigned i = 0; i < nconns; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);

	double secs = opt.duration;
	double srv_pct = opt.server_pid > 0 ? (double)(cpu_srv1 - cpu_srv0) / 1e9 / secs * 100 : -1;
	double kids_pct = opt.server_pid > 0 ? (double)(kids1 - kids0) / 1e9 / secs * 100 : -1;
	double gen_pct = (double)(cpu_gen1 - 1 - cpu_gen0) / 1e9 / secs * 100;
	double msgs_s = (double)measured_msgs / secs;
	double deliv_s = (double)deliveries / secs;
	double p50 = hist_quantile(&lat, 0.5) / 1e3, p99 = hist_quantile(&lat, 0.99) / 1e3,
	       p999 = hist_quantile(&lat, 0.999) / 1e3;
	if (opt.mode == MODE_FANOUT) {
		printf("{\"mode\":\"fanout\",\"label\":\"%s\",\"receivers\":%u,\"window\":%u,\"sender_window\":%s,\"rate\":%.0f,"
		       "\"msgs_per_s\":%.1f,\"deliveries_per_s\":%.1f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
		       "\"p999_us\":%.1f,\"max_us\":%.1f,\"server_cpu_pct\":%.1f,\"loadgen_cpu_pct\":%.1f,"
		       "\"open_s\":%.2f,\"errors\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
		       opt.label, opt.receivers, opt.window, opt.sender_window ? "true" : "false",
		       opt.rate, msgs_s, deliv_s, p50, p99, p999, (double)lat.max / 1e3, srv_pct,
		       gen_pct, open_s, errors, first_error);
		fprintf(stderr,
			"%s fanout N=%u K=%u rate=%.0f: %.0f msgs/s, %.0f deliveries/s, p50 %.0f us, p99 %.0f us, cpu server %.0f%% gen %.0f%%%s%s\n",
			opt.label, opt.receivers, opt.window, opt.rate, msgs_s, deliv_s, p50, p99,
			srv_pct, gen_pct, errors ? ", error: " : "", first_error);
	} else {
		printf("{\"mode\":\"rpc\",\"label\":\"%s\",\"kind\":\"%s\",\"reply\":\"%s\",\"inflight\":%u,\"rtt_per_s\":%.1f,"
		       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"server_cpu_pct\":%.1f,"
		       "\"children_cpu_pct\":%.1f,\"loadgen_cpu_pct\":%.1f,\"errors\":%" PRIu64
		       ",\"first_error\":\"%s\"}\n",
		       opt.label, opt.kind == KIND_EXEC ? "exec" : "ping",
		       opt.reply == REPLY_ECHO ? "echo" : "pong", opt.inflight, msgs_s, p50, p99,
		       p999, (double)lat.max / 1e3, srv_pct, kids_pct, gen_pct, errors,
		       first_error);
		fprintf(stderr,
			"%s rpc %s x%u: %.0f/s, p50 %.0f us, p99 %.0f us, cpu server %.0f%% gen %.0f%%%s%s\n",
			opt.label, opt.kind == KIND_EXEC ? "exec" : "ping", opt.inflight, msgs_s,
			p50, p99, srv_pct, gen_pct, errors ? ", error: " : "", first_error);
	}
	free(mem);
	free(conns);
	return errors ? 1 : 0;
}
