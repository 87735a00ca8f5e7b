/*
 * ws-loadgen: a loopback-only WebSocket load generator for sandbox-ws's
 * benchmarks. One thread, one epoll set (edge-triggered), non-blocking
 * sockets and its own minimal RFC 6455 client framing.
 *
 * Modes (see usage()):
 *   echo      C connections x P messages in flight x S bytes, D seconds
 *             after a warm-up: messages/s and round-trip percentiles.
 *   latency   echo with 1 connection and 1 message in flight.
 *   idle      N connections that finish the handshake and stay idle until
 *             --hold expires, stdin closes or SIGINT/SIGTERM arrives.
 *             `echo --idle N` holds them while the echo load runs.
 *   connect   open, handshake, close, as many per second as K concurrent
 *             slots manage.
 *   free-port prints a port that is free on the host now (for scripts).
 *
 * Output: one JSON line on stdout per run (plus a {"event":"idle_ready"}
 * line once idle connections are all open) and a human line on stderr.
 * Exit status: 0 ok, 1 the run saw errors, 100 usage, 111 system failure.
 *
 * Efficiency matters more than generality: the echo load runs on one core
 * against servers doing millions of messages per second. Every message a
 * connection sends is the same pre-built, pre-masked frame, so the frames
 * owed to a connection are a slice of a "train" of identical frames and
 * leave in one send(); every read is parsed in place from one shared
 * buffer; send times sit in a per-connection FIFO (echoes come back in
 * order), and latencies go into a fixed log-linear histogram. Nothing is
 * allocated per message.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "wsclient.h"

enum {
	EXIT_ERRORS = 1,
	EXIT_USAGE = 100,
	EXIT_SYSTEM = 111,
};

#define NS_PER_S 1000000000ull
#define SCRATCH_SIZE (256u * 1024u) /* one recv()'s worth, shared by all */
#define HS_BUF_SIZE 1024u           /* a 101 response fits easily */
#define MAX_EVENTS 512
#define READS_PER_EVENT 64 /* then the connection waits its turn */
#define MAX_CONNS 1000000u
#define MAX_INFLIGHT 65536u
#define MAX_SIZE (16u * 1024u * 1024u)
#define MAX_TRAIN_BYTES (1ull << 30) /* all connections' trains together */
#define TICK_MS 100                  /* longest epoll_wait: timers are checked this often */
#define CYCLE_TIMEOUT_NS (5 * NS_PER_S)
#define MAX_CYCLE_ERRORS 100 /* connect mode gives up after this many failures */
#define CLOSE_WAIT_NS (2 * NS_PER_S)
#define DRAIN_WAIT_NS (2 * NS_PER_S)
#define STDIN_TAG UINT32_MAX

/* ---------------------------------------------------------------- options */

enum mode { MODE_ECHO, MODE_LATENCY, MODE_IDLE, MODE_CONNECT, MODE_FREE_PORT };

/* in the order of enum mode */
static const char *const mode_names[] = { "echo", "latency", "idle", "connect", "free-port" };

struct opts {
	enum mode mode;
	const char *host;
	unsigned port;
	const char *path;
	const char *label;
	unsigned conns; /* echo connections, or connect-mode slots */
	unsigned inflight;
	unsigned size;
	bool binary;
	bool verify;
	bool busy_poll;
	unsigned idle;
	unsigned open_concurrency;
	unsigned src_addrs; /* 0: chosen from the connection count */
	double warmup;
	double duration;
	double hold;
	double open_timeout;
	int server_pid;
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: ws-loadgen MODE [options]\n"
		   "modes: echo | latency | idle | connect | free-port\n"
		   "  --host ADDR          127.0.0.0/8 or ::1 only (default 127.0.0.1)\n"
		   "  --port N             server port (required except free-port)\n"
		   "  --path PATH          request path (default /)\n"
		   "  --conns N            echo connections (50; latency 1) or connect slots (16)\n"
		   "  --inflight N         messages in flight per connection (16; latency 1)\n"
		   "  --size BYTES         message size, k/m suffix allowed (64)\n"
		   "  --text | --binary    message type (binary)\n"
		   "  --no-verify          do not compare echoed payloads with what was sent\n"
		   "  --idle N             idle connections to hold (idle mode: to open)\n"
		   "  --warmup S           seconds before measuring (1; latency 0.5)\n"
		   "  --duration S         seconds measured (3)\n"
		   "  --hold S             idle mode: longest hold (30); ends early on stdin EOF "
		   "or a signal\n"
		   "  --open-concurrency N handshakes in progress at once while opening (256)\n"
		   "  --src-addrs N        spread connections over 127.0.0.1..N (auto)\n"
		   "  --open-timeout S     longest time to open every connection (30)\n"
		   "  --server-pid PID     also report that process's CPU use while measuring\n"
		   "  --busy-poll          never sleep in epoll_wait while the load runs\n"
		   "  --label NAME         copied into the JSON line ([A-Za-z0-9._-])\n"
		   "  --help\n");
}

static bool
parse_uint(const char *s, unsigned long max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long mult = 1;
	if (end == s || errno != 0)
		return false;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'm' || *end == 'M')
		mult = 1024 * 1024, end++;
	if (*end != '\0' || s[0] == '-' || v > max / mult)
		return false;
	*out = (unsigned)(v * mult);
	return true;
}

static bool
parse_seconds(const char *s, double max, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(v >= 0 && v <= max))
		return false;
	*out = v;
	return true;
}

static bool
label_ok(const char *s)
{
	if (strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static bool
mode_from_name(const char *name, enum mode *out)
{
	for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++) {
		if (strcmp(name, mode_names[i]) == 0) {
			*out = (enum mode)i;
			return true;
		}
	}
	return false;
}

/* Parses argv into o; on a bad flag prints one line naming it and returns false. */
static bool
parse_opts(int argc, char **argv, struct opts *o)
{
	enum {
		O_HOST = 256,
		O_PORT,
		O_PATH,
		O_CONNS,
		O_INFLIGHT,
		O_SIZE,
		O_TEXT,
		O_BINARY,
		O_NOVERIFY,
		O_IDLE,
		O_WARMUP,
		O_DURATION,
		O_HOLD,
		O_OPENC,
		O_SRC,
		O_OPENT,
		O_PID,
		O_LABEL,
		O_BUSY,
		O_HELP
	};
	static const struct option longopts[] = {
		{ "host", required_argument, NULL, O_HOST },
		{ "port", required_argument, NULL, O_PORT },
		{ "path", required_argument, NULL, O_PATH },
		{ "conns", required_argument, NULL, O_CONNS },
		{ "inflight", required_argument, NULL, O_INFLIGHT },
		{ "size", required_argument, NULL, O_SIZE },
		{ "text", no_argument, NULL, O_TEXT },
		{ "binary", no_argument, NULL, O_BINARY },
		{ "no-verify", no_argument, NULL, O_NOVERIFY },
		{ "idle", required_argument, NULL, O_IDLE },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "open-concurrency", required_argument, NULL, O_OPENC },
		{ "src-addrs", required_argument, NULL, O_SRC },
		{ "open-timeout", required_argument, NULL, O_OPENT },
		{ "server-pid", required_argument, NULL, O_PID },
		{ "label", required_argument, NULL, O_LABEL },
		{ "busy-poll", no_argument, NULL, O_BUSY },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool conns_set = false, inflight_set = false, warmup_set = false;

	if (argc < 2 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		exit(argc < 2 ? EXIT_USAGE : 0);
	}
	if (!mode_from_name(argv[1], &o->mode)) {
		fprintf(stderr, "ws-loadgen: unknown mode '%s'\n", argv[1]);
		return false;
	}
	*o = (struct opts){
		.mode = o->mode,
		.host = "127.0.0.1",
		.path = "/",
		.label = "",
		.conns = 50,
		.inflight = 16,
		.size = 64,
		.binary = true,
		.verify = true,
		.open_concurrency = 256,
		.warmup = 1,
		.duration = 3,
		.hold = 30,
		.open_timeout = 30,
	};
	optind = 2;
	for (;;) {
		int c = getopt_long(argc, argv, "", longopts, NULL);
		unsigned u;
		bool ok = true;
		if (c == -1)
			break;
		switch (c) {
		case O_HOST:
			o->host = optarg;
			break;
		case O_PORT:
			ok = parse_uint(optarg, 65535, &o->port) && o->port > 0;
			break;
		case O_PATH:
			o->path = optarg;
			ok = optarg[0] == '/' && !strpbrk(optarg, " \r\n") && strlen(optarg) < 512;
			break;
		case O_CONNS:
			ok = parse_uint(optarg, MAX_CONNS, &o->conns) && o->conns > 0;
			conns_set = true;
			break;
		case O_INFLIGHT:
			ok = parse_uint(optarg, MAX_INFLIGHT, &o->inflight) && o->inflight > 0;
			inflight_set = true;
			break;
		case O_SIZE:
			ok = parse_uint(optarg, MAX_SIZE, &o->size);
			break;
		case O_TEXT:
			o->binary = false;
			break;
		case O_BINARY:
			o->binary = true;
			break;
		case O_NOVERIFY:
			o->verify = false;
			break;
		case O_IDLE:
			ok = parse_uint(optarg, MAX_CONNS, &o->idle);
			break;
		case O_WARMUP:
			ok = parse_seconds(optarg, 3600, &o->warmup);
			warmup_set = true;
			break;
		case O_DURATION:
			ok = parse_seconds(optarg, 3600, &o->duration) && o->duration > 0;
			break;
		case O_HOLD:
			ok = parse_seconds(optarg, 86400, &o->hold);
			break;
		case O_OPENC:
			ok = parse_uint(optarg, 65536, &o->open_concurrency) &&
			     o->open_concurrency > 0;
			break;
		case O_SRC:
			ok = parse_uint(optarg, 254, &o->src_addrs) && o->src_addrs > 0;
			break;
		case O_OPENT:
			ok = parse_seconds(optarg, 3600, &o->open_timeout) && o->open_timeout > 0;
			break;
		case O_PID:
			ok = parse_uint(optarg, 1u << 22, &u) && u > 0;
			o->server_pid = (int)u;
			break;
		case O_LABEL:
			o->label = optarg;
			ok = label_ok(optarg);
			break;
		case O_BUSY:
			o->busy_poll = true;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			return false;
		}
		if (!ok) {
			fprintf(stderr, "ws-loadgen: bad value for --%s: '%s'\n",
				longopts[c - O_HOST].name, optarg);
			return false;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ws-loadgen: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	if (o->mode == MODE_LATENCY) {
		o->conns = conns_set ? o->conns : 1;
		o->inflight = inflight_set ? o->inflight : 1;
		o->warmup = warmup_set ? o->warmup : 0.5;
	}
	if (o->mode == MODE_CONNECT && !conns_set)
		o->conns = 16;
	if (o->mode == MODE_IDLE && o->idle == 0) {
		fprintf(stderr, "ws-loadgen: idle mode needs --idle N\n");
		return false;
	}
	if (o->mode != MODE_FREE_PORT && o->port == 0) {
		fprintf(stderr, "ws-loadgen: --port is required\n");
		return false;
	}
	return true;
}

/* ------------------------------------------------------------ utilities */

static inline uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t
seconds_ns(double s)
{
	return (uint64_t)(s * (double)NS_PER_S);
}

/* Process CPU time in ns: our own (getrusage), or another's from /proc (0 if unreadable). */
static uint64_t
cpu_self_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * NS_PER_S +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
}

static uint64_t
cpu_pid_ns(int pid)
{
	char path[64], buf[1024];
	unsigned long long ut = 0, st = 0;
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and ')': fields restart after the last ')' */
	const char *p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * (NS_PER_S / (uint64_t)sysconf(_SC_CLK_TCK));
}

/*
 * The whole machine's busy and stolen CPU time in ns (all CPUs, from the
 * first line of /proc/stat): against our own and the server's share it
 * shows when something else on the machine skewed a run.
 */
static void
cpu_machine_ns(uint64_t *busy, uint64_t *steal)
{
	unsigned long long v[8] = { 0 };
	*busy = *steal = 0;
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		       &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n != 8)
		return;
	uint64_t tick = NS_PER_S / (uint64_t)sysconf(_SC_CLK_TCK);
	/* user nice system [idle iowait] irq softirq steal */
	*busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * tick;
	*steal = v[7] * tick;
}

/* xorshift64*: masks for the rare control frames need not be costly. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void
random_bytes(void *p, size_t n)
{
	uint8_t *b = p;
	while (n > 0) {
		ssize_t r = getrandom(b, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* cannot happen on this kernel; a predictable fallback is harmless here */
			for (size_t i = 0; i < n; i++)
				b[i] = (uint8_t)rng_next();
			return;
		}
		b += r;
		n -= (size_t)r;
	}
}

/* ------------------------------------------------------- connections */

enum kind { KIND_IDLE, KIND_ECHO, KIND_CYCLE };
enum state { ST_DONE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSING };

/* What an echo connection needs on top of a connection. */
struct echo {
	uint8_t *train; /* inflight + 1 identical masked frames */
	uint64_t *fifo; /* send times of the messages awaiting their echo */
	uint64_t owed;  /* train bytes still to write */
	uint32_t phase; /* where the next byte to write sits within a frame */
	uint32_t head;  /* oldest fifo entry */
	uint32_t count; /* messages in flight */
};

/* Hot fields first: the echo path touches the first cache line or two only. */
struct conn {
	int fd;
	uint32_t id;
	uint8_t kind;
	uint8_t state;
	bool sent_close;
	bool got_close;
	bool queued_again; /* on the list of connections with unread input */
	/* frame parser */
	bool in_payload;
	bool fin;
	uint8_t opcode;     /* of the current frame */
	uint8_t msg_opcode; /* of the data message in progress, 0 if none */
	uint8_t hdr_have;
	uint8_t hdr[14];
	uint64_t remaining; /* payload bytes left in the current frame */
	uint64_t msg_len;   /* data-message bytes seen so far */
	struct echo *echo;  /* NULL unless kind == KIND_ECHO */
	uint64_t t_start;   /* connect mode: when this cycle began */
	uint8_t *hs;        /* handshake response so far (pooled buffer) */
	uint16_t hs_len;
	uint16_t req_off; /* request bytes already sent */
	/* a control frame received (ping or close payload) and one to send (pong or close) */
	uint8_t ctl_rx_len;
	uint8_t ctl_len;
	uint8_t ctl_off;
	uint8_t ctl_rx[125];
	uint8_t ctl_tx[WSC_CTL_FRAME_MAX];
};

enum phase { PH_OPEN, PH_HOLD, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_CLOSE, PH_DONE };

struct counters {
	uint64_t msgs; /* echoes received while measuring */
	uint64_t bytes;
	uint64_t cycles; /* connect mode: cycles finished while measuring */
	uint64_t t_begin, t_end;
	uint64_t cpu_self, cpu_server;
	uint64_t cpu_machine, cpu_steal;
	uint64_t polls, empty_polls;
	struct hist lat;       /* echo round trips, or connect-mode handshakes */
	struct hist cycle_lat; /* connect mode: whole open-handshake-close cycles */
};

struct loadgen {
	struct opts o;
	int epfd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned src_addrs;
	unsigned src_next;
	char request[1024];
	size_t request_len;
	char accept[WSC_ACCEPT_LEN];
	uint8_t *payload;   /* what every echo message should carry, unmasked */
	uint32_t frame_len; /* of one echo message as sent */
	uint8_t *scratch;
	struct conn *conns;
	unsigned n_conns; /* idle first, then echo (or connect slots) */
	unsigned next_open;
	uint8_t **hs_pool;
	unsigned hs_pool_len;
	unsigned pending; /* connections between socket() and the 101 */
	unsigned live;    /* file descriptors open */
	unsigned idle_open, idle_failed, idle_dropped;
	unsigned errors; /* failures that spoil the result */
	char first_error[128];
	unsigned unclean;  /* closes that did not finish the close handshake */
	unsigned lost;     /* messages never echoed */
	uint64_t inflight; /* echo messages awaiting their echo */
	enum phase phase;
	bool sending;
	bool measuring;
	bool ready_printed;
	bool stdin_eof;
	uint64_t now;
	uint64_t t_start, t_opened, deadline;
	struct conn **again; /* connections that still have input to read */
	unsigned again_len;
	struct counters k;
};

static volatile sig_atomic_t stop_signal;

/* The first SIGINT/SIGTERM ends the run cleanly (and reports); a second exits at once. */
static void
on_signal(int sig)
{
	if (stop_signal)
		_exit(128 + sig);
	stop_signal = sig;
}

/* Counts a failure that spoils the run: the first few are printed, the first is kept. */
static void
note_error(struct loadgen *lg, const struct conn *c, const char *what)
{
	lg->errors++;
	if (lg->errors <= 3 && c)
		fprintf(stderr, "ws-loadgen: connection %u: %s\n", c->id, what);
	else if (lg->errors <= 3)
		fprintf(stderr, "ws-loadgen: %s\n", what);
	if (!lg->first_error[0])
		snprintf(lg->first_error, sizeof lg->first_error, "%s", what);
}

/* "what: strerror(errno)" in a buffer that lives until the next call. */
static const char *
errno_why(const char *what)
{
	static char buf[128];
	snprintf(buf, sizeof buf, "%s: %s", what, strerror(errno));
	return buf;
}

static uint8_t *
hs_get(struct loadgen *lg)
{
	if (lg->hs_pool_len > 0)
		return lg->hs_pool[--lg->hs_pool_len];
	return malloc(HS_BUF_SIZE);
}

static void
hs_put(struct loadgen *lg, struct conn *c)
{
	if (c->hs)
		lg->hs_pool[lg->hs_pool_len++] = c->hs;
	c->hs = NULL;
}

/*
 * Releases the socket. why is NULL when the close handshake completed (the
 * server's close frame and its FIN both arrived), else what went wrong; it
 * counts as an error unless the run was closing anyway.
 */
static void conn_finish(struct loadgen *lg, struct conn *c, const char *why);
static void conn_flush(struct loadgen *lg, struct conn *c);

static void
conn_reset_parser(struct conn *c)
{
	c->remaining = 0;
	c->msg_len = 0;
	c->hdr_have = 0;
	c->msg_opcode = 0;
	c->in_payload = false;
	c->ctl_rx_len = 0;
	c->ctl_len = 0;
	c->ctl_off = 0;
	c->sent_close = false;
	c->got_close = false;
}

/* Binds to the next loopback source address when spreading is on. */
static bool
bind_source(struct loadgen *lg, int fd)
{
	if (lg->src_addrs <= 1)
		return true;
	int one = 1;
	struct sockaddr_in src = { .sin_family = AF_INET };
	/* the kernel then picks the port at connect() time, per 4-tuple */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	src.sin_addr.s_addr = htonl(0x7f000001u + lg->src_next++ % lg->src_addrs);
	return bind(fd, (struct sockaddr *)&src, sizeof src) == 0;
}

static void
conn_send_request(struct loadgen *lg, struct conn *c)
{
	while (c->req_off < lg->request_len) {
		ssize_t n = send(c->fd, lg->request + c->req_off, lg->request_len - c->req_off,
				 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_finish(lg, c, errno_why("connect"));
			return;
		}
		c->req_off += (uint16_t)n;
	}
	c->state = ST_HANDSHAKE;
}

/* Starts connecting c; false (after saying why) only when the system refuses a socket. */
static bool
conn_start(struct loadgen *lg, struct conn *c)
{
	int one = 1;
	int fd = socket(lg->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "ws-loadgen: socket: %s\n", strerror(errno));
		return false;
	}
	/* pipelined small frames must not wait for ACKs */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.u32 = c->id,
	};
	if (!bind_source(lg, fd) || epoll_ctl(lg->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		fprintf(stderr, "ws-loadgen: bind or epoll_ctl: %s\n", strerror(errno));
		close(fd);
		return false;
	}
	c->hs = hs_get(lg);
	if (!c->hs) {
		fprintf(stderr, "ws-loadgen: out of memory\n");
		close(fd);
		return false;
	}
	c->fd = fd;
	c->state = ST_CONNECTING;
	c->req_off = 0;
	c->hs_len = 0;
	c->t_start = lg->now;
	conn_reset_parser(c);
	lg->pending++;
	lg->live++;
	if (connect(fd, (struct sockaddr *)&lg->addr, lg->addrlen) == 0)
		conn_send_request(lg, c);
	else if (errno != EINPROGRESS)
		conn_finish(lg, c, errno_why("connect"));
	return true;
}

/* Queues a masked control frame; a pong may replace an unsent pong. */
static void
conn_queue_ctl(struct conn *c, enum wsclient_opcode opcode, const uint8_t *payload, size_t len)
{
	uint8_t mask[4];
	if (c->ctl_off > 0 && c->ctl_off < c->ctl_len)
		return; /* one already half-sent; RFC 6455 lets us answer only the latest ping */
	uint32_t m = rng_next();
	memcpy(mask, &m, 4);
	size_t h = wsclient_header(c->ctl_tx, opcode, len, mask);
	memcpy(c->ctl_tx + h, payload, len);
	wsclient_mask(c->ctl_tx + h, len, mask);
	c->ctl_len = (uint8_t)(h + len);
	c->ctl_off = 0;
}

static void
conn_send_close(struct loadgen *lg, struct conn *c, const uint8_t *code, size_t len)
{
	static const uint8_t normal[2] = { 1000 >> 8, 1000 & 0xff };
	if (c->sent_close)
		return;
	if (!code) {
		code = normal;
		len = 2;
	}
	conn_queue_ctl(c, WSC_OP_CLOSE, code, len);
	c->sent_close = true;
	c->state = ST_CLOSING;
	conn_flush(lg, c);
}

/* Commits one more message to an echo connection: its send time, and its bytes to write. */
static void
echo_push(struct loadgen *lg, struct echo *e)
{
	uint32_t tail = e->head + e->count;
	if (tail >= lg->o.inflight)
		tail -= lg->o.inflight;
	e->fifo[tail] = lg->now;
	e->count++;
	lg->inflight++;
	e->owed += lg->frame_len;
}

/* An echo arrived: time it, and send its successor while the load runs. */
static const char *
echo_on_message(struct loadgen *lg, struct conn *c)
{
	struct echo *e = c->echo;
	if (e->count == 0)
		return "an echo of a message never sent";
	uint64_t sent = e->fifo[e->head];
	e->head = e->head + 1 == lg->o.inflight ? 0 : e->head + 1;
	e->count--;
	lg->inflight--;
	if (lg->measuring) {
		lg->k.msgs++;
		lg->k.bytes += lg->o.size;
		hist_add(&lg->k.lat, lg->now - sent);
	}
	if (lg->sending)
		echo_push(lg, e);
	return NULL;
}

static void
conn_on_open(struct loadgen *lg, struct conn *c)
{
	hs_put(lg, c);
	lg->pending--;
	c->state = ST_OPEN;
	if (c->kind == KIND_IDLE)
		lg->idle_open++;
	if (c->kind != KIND_CYCLE)
		return;
	/* connect mode: the handshake is timed, and the cycle goes straight on to close */
	if (lg->measuring)
		hist_add(&lg->k.lat, lg->now - c->t_start);
	conn_send_close(lg, c, NULL, 0);
}

/* A frame (or, for data, the message it ends) is complete; returns why it is wrong, or NULL. */
static const char *
conn_on_frame_end(struct loadgen *lg, struct conn *c)
{
	switch (c->opcode) {
	case WSC_OP_PING:
		if (!c->sent_close)
			conn_queue_ctl(c, WSC_OP_PONG, c->ctl_rx, c->ctl_rx_len);
		return NULL;
	case WSC_OP_PONG:
		return NULL;
	case WSC_OP_CLOSE:
		c->got_close = true;
		/* answer with the server's code (RFC 6455 5.5.1), then await its FIN */
		conn_send_close(lg, c, c->ctl_rx, c->ctl_rx_len >= 2 ? 2 : 0);
		return NULL;
	default:
		break;
	}
	if (!c->fin || c->kind != KIND_ECHO) {
		if (c->fin)
			c->msg_opcode = 0, c->msg_len = 0;
		return NULL;
	}
	bool ok = c->msg_len == lg->o.size &&
		  c->msg_opcode == (lg->o.binary ? WSC_OP_BINARY : WSC_OP_TEXT);
	c->msg_opcode = 0;
	c->msg_len = 0;
	return ok ? echo_on_message(lg, c) : "an echo of the wrong size or type";
}

/* Checks a frame header and starts its payload; returns why it is wrong, or NULL. */
static const char *
conn_on_header(struct loadgen *lg, struct conn *c, const uint8_t *h)
{
	unsigned op = h[0] & 0x0f;
	uint64_t len = h[1] & 0x7f;
	if (len == 126) {
		len = (uint64_t)h[2] << 8 | h[3];
	} else if (len == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | h[2 + i];
	}
	if (h[0] & 0x70)
		return "a frame with reserved bits set";
	if (h[1] & 0x80)
		return "a masked frame from the server";
	c->fin = h[0] & 0x80;
	c->opcode = (uint8_t)op;
	c->remaining = len;
	if (op >= WSC_OP_CLOSE) {
		if (op > WSC_OP_PONG || len > 125 || !c->fin)
			return "a bad control frame";
		c->ctl_rx_len = 0;
	} else if (op == WSC_OP_CONT) {
		if (c->msg_opcode == 0)
			return "a continuation with no message to continue";
	} else if (op == WSC_OP_TEXT || op == WSC_OP_BINARY) {
		if (c->msg_opcode != 0)
			return "a new message inside a fragmented one";
		c->msg_opcode = (uint8_t)op;
	} else {
		return "a reserved opcode";
	}
	if (c->kind == KIND_ECHO && op < WSC_OP_CLOSE && c->msg_len + len > lg->o.size)
		return "an echo longer than the message sent";
	c->in_payload = len > 0;
	return len == 0 ? conn_on_frame_end(lg, c) : NULL;
}

static const char *
conn_on_payload(struct loadgen *lg, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->opcode >= WSC_OP_CLOSE) {
		memcpy(c->ctl_rx + c->ctl_rx_len, p, n);
		c->ctl_rx_len += (uint8_t)n;
	} else {
		if (c->kind == KIND_ECHO && lg->o.verify &&
		    memcmp(p, lg->payload + c->msg_len, n) != 0)
			return "an echo whose payload differs from the message sent";
		c->msg_len += n;
	}
	c->remaining -= n;
	if (c->remaining > 0)
		return NULL;
	c->in_payload = false;
	return conn_on_frame_end(lg, c);
}

/*
 * Parses every frame in p[0..n); returns why the stream is wrong, or NULL.
 * Headers complete in the buffer are read in place; only a header split
 * across reads is copied into c->hdr. Nothing after a close frame counts.
 */
static const char *
conn_consume(struct loadgen *lg, struct conn *c, const uint8_t *p, size_t n)
{
	const char *why = NULL;
	while (n > 0 && !c->got_close && !why) {
		if (c->in_payload) {
			size_t take = c->remaining < n ? (size_t)c->remaining : n;
			why = conn_on_payload(lg, c, p, take);
			p += take;
			n -= take;
		} else if (c->hdr_have == 0 && n >= 2 && n >= wsclient_server_header_len(p[1])) {
			unsigned hl = wsclient_server_header_len(p[1]);
			why = conn_on_header(lg, c, p);
			p += hl;
			n -= hl;
		} else {
			unsigned need = c->hdr_have < 2 ? 2 : wsclient_server_header_len(c->hdr[1]);
			while (c->hdr_have < need && n > 0) {
				c->hdr[c->hdr_have++] = *p++;
				n--;
				if (c->hdr_have == 2)
					need = wsclient_server_header_len(c->hdr[1]);
			}
			if (c->hdr_have < need)
				break;
			c->hdr_have = 0;
			why = conn_on_header(lg, c, c->hdr);
		}
	}
	return why;
}

/* The status line of a refused handshake, for the error message. */
static const char *
handshake_why(const struct conn *c)
{
	static char buf[128];
	int len = (int)strcspn((const char *)c->hs, "\r\n");
	snprintf(buf, sizeof buf, "handshake refused: %.*s", len > 80 ? 80 : len,
		 (const char *)c->hs);
	return buf;
}

/*
 * Takes in handshake bytes just read into c->hs; once the header is complete
 * and right the connection is open, and any bytes after it are frames.
 * Returns why the handshake failed, or NULL.
 */
static const char *
conn_on_handshake_bytes(struct loadgen *lg, struct conn *c, size_t n)
{
	c->hs_len += (uint16_t)n;
	c->hs[c->hs_len] = '\0';
	char *end = memmem(c->hs, c->hs_len, "\r\n\r\n", 4);
	if (!end)
		return c->hs_len >= HS_BUF_SIZE - 1 ? "handshake response too long" : NULL;
	if (!wsclient_response_ok((const char *)c->hs, end, lg->accept))
		return handshake_why(c);
	/* copy the frames out before the buffer goes back to the pool */
	size_t hl = (size_t)(end + 4 - (char *)c->hs);
	size_t extra = c->hs_len - hl;
	memcpy(lg->scratch, c->hs + hl, extra);
	conn_on_open(lg, c);
	return extra > 0 ? conn_consume(lg, c, lg->scratch, extra) : NULL;
}

static void
conn_queue_again(struct loadgen *lg, struct conn *c)
{
	if (c->queued_again)
		return;
	c->queued_again = true;
	lg->again[lg->again_len++] = c;
}

/*
 * Reads until the socket is empty. With edge-triggered epoll a short read
 * means the receive queue was drained, which saves the recv() that would
 * only say EAGAIN; once the peer has shut down (hup) we read to EOF.
 */
static void
conn_read(struct loadgen *lg, struct conn *c, bool hup)
{
	for (int i = 0; i < READS_PER_EVENT; i++) {
		bool handshake = c->state == ST_CONNECTING || c->state == ST_HANDSHAKE;
		uint8_t *buf = handshake ? c->hs + c->hs_len : lg->scratch;
		size_t asked = handshake ? HS_BUF_SIZE - 1u - c->hs_len : SCRATCH_SIZE;
		ssize_t n = recv(c->fd, buf, asked, 0);
		const char *why = NULL;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			why = errno_why("recv");
		else if (n == 0 && !(c->got_close && c->sent_close))
			why = c->got_close ? "EOF before our close frame left"
					   : "closed by the server without a close frame";
		else if (n > 0 && handshake)
			why = conn_on_handshake_bytes(lg, c, (size_t)n);
		else if (n > 0)
			why = conn_consume(lg, c, lg->scratch, (size_t)n);
		if (n == 0 || why) {
			conn_finish(lg, c, why);
			return;
		}
		if ((size_t)n < asked && !hup)
			return;
	}
	conn_queue_again(lg, c);
}

static ssize_t
send_some(int fd, const uint8_t *p, size_t n)
{
	ssize_t r;
	do
		r = send(fd, p, n, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r;
}

/*
 * Writes what is owed: a control frame only between two train frames, and
 * the train slice in one send(). A short write leaves the rest for the
 * next EPOLLOUT edge.
 */
static void
conn_flush(struct loadgen *lg, struct conn *c)
{
	struct echo *e = c->echo;
	for (int round = 0; round < 2; round++) {
		if (c->ctl_off < c->ctl_len && (!e || e->phase == 0)) {
			ssize_t n = send_some(c->fd, c->ctl_tx + c->ctl_off,
					      c->ctl_len - c->ctl_off);
			if (n < 0)
				goto fail;
			c->ctl_off += (uint8_t)n;
			if (c->ctl_off < c->ctl_len)
				return;
		}
		if (!e || e->owed == 0)
			return;
		ssize_t n = send_some(c->fd, e->train + e->phase, e->owed);
		if (n < 0)
			goto fail;
		e->owed -= (uint64_t)n;
		e->phase = (uint32_t)((e->phase + (uint64_t)n) % lg->frame_len);
		if (e->owed > 0 || c->ctl_off == c->ctl_len)
			return;
	}
	return;
fail:
	if (errno != EAGAIN)
		conn_finish(lg, c, errno_why("send"));
}

static void
conn_finish(struct loadgen *lg, struct conn *c, const char *why)
{
	if (c->state == ST_DONE)
		return;
	bool was_open = c->state == ST_OPEN || c->state == ST_CLOSING;
	bool closing = lg->phase >= PH_CLOSE;
	close(c->fd);
	c->fd = -1;
	c->state = ST_DONE;
	lg->live--;
	if (!was_open) {
		hs_put(lg, c);
		lg->pending--;
	}
	if (why && was_open)
		lg->unclean++;
	if (c->echo) {
		lg->lost += c->echo->count;
		lg->inflight -= c->echo->count;
		c->echo->count = 0;
		c->echo->owed = 0;
	}
	if (!was_open && c->kind == KIND_IDLE)
		lg->idle_failed++;
	else if (was_open && c->kind == KIND_IDLE && !closing)
		lg->idle_dropped++;
	if (c->kind == KIND_CYCLE && !why) {
		if (lg->measuring) {
			lg->k.cycles++;
			hist_add(&lg->k.cycle_lat, lg->now - c->t_start);
		}
	} else if (!closing) {
		/* only connect-mode cycles end on their own: anything else is the server's doing */
		note_error(lg, c, why ? why : "closed by the server");
	}
}

static void
conn_on_event(struct loadgen *lg, struct conn *c, uint32_t events)
{
	bool hup = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
	if (c->state == ST_DONE)
		return;
	if (c->state == ST_CONNECTING && (events & EPOLLOUT))
		conn_send_request(lg, c);
	if (c->state != ST_DONE && (events & EPOLLIN || hup))
		conn_read(lg, c, hup);
	if (c->state == ST_OPEN || c->state == ST_CLOSING)
		conn_flush(lg, c);
}

/* ----------------------------------------------------------- set-up */

static bool
resolve_target(struct loadgen *lg)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)&lg->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&lg->addr;
	memset(&lg->addr, 0, sizeof lg->addr);
	if (inet_pton(AF_INET, lg->o.host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			goto refuse;
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)lg->o.port);
		lg->addrlen = sizeof *in4;
		return true;
	}
	if (inet_pton(AF_INET6, lg->o.host, &in6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			goto refuse;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)lg->o.port);
		lg->addrlen = sizeof *in6;
		return true;
	}
refuse:
	fprintf(stderr,
		"ws-loadgen: --host must be a loopback literal (127.0.0.0/8 or ::1), not '%s'\n",
		lg->o.host);
	return false;
}

/* One key for the whole run: the server's work is the same, and the accept check is computed once.
 */
static void
build_request(struct loadgen *lg)
{
	uint8_t nonce[16];
	char key[WSC_KEY_LEN];
	random_bytes(nonce, sizeof nonce);
	wsclient_key(nonce, key, lg->accept);
	bool v6 = lg->addr.ss_family == AF_INET6;
	int n = snprintf(lg->request, sizeof lg->request,
			 "GET %s HTTP/1.1\r\n"
			 "Host: %s%s%s:%u\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Key: %s\r\n"
			 "Sec-WebSocket-Version: 13\r\n"
			 "\r\n",
			 lg->o.path, v6 ? "[" : "", lg->o.host, v6 ? "]" : "", lg->o.port, key);
	lg->request_len = (size_t)n;
}

/*
 * Every message of a connection is one frame, masked once with a key drawn
 * for that connection: the server unmasks exactly as it would with a fresh
 * key per frame, and the generator spends nothing per message on masking.
 */
static bool
echo_init(struct loadgen *lg, struct echo *e)
{
	uint8_t mask[4];
	size_t frame_len = lg->frame_len;
	random_bytes(mask, sizeof mask);
	e->train = malloc(frame_len * (lg->o.inflight + 1));
	e->fifo = calloc(lg->o.inflight, sizeof *e->fifo);
	if (!e->train || !e->fifo)
		return false;
	size_t hl = wsclient_header(e->train, lg->o.binary ? WSC_OP_BINARY : WSC_OP_TEXT,
				    lg->o.size, mask);
	memcpy(e->train + hl, lg->payload, lg->o.size);
	wsclient_mask(e->train + hl, lg->o.size, mask);
	for (unsigned i = 1; i <= lg->o.inflight; i++)
		memcpy(e->train + i * frame_len, e->train, frame_len);
	return true;
}

static bool
alloc_conns(struct loadgen *lg)
{
	const struct opts *o = &lg->o;
	unsigned active = o->mode == MODE_IDLE ? 0 : o->conns;
	bool echo = o->mode == MODE_ECHO || o->mode == MODE_LATENCY;
	lg->frame_len = wsclient_frame_len(o->size);
	if (echo && (uint64_t)active * (o->inflight + 1) * lg->frame_len > MAX_TRAIN_BYTES) {
		fprintf(stderr, "ws-loadgen: conns x inflight x size is over 1 GiB\n");
		return false;
	}
	lg->n_conns = o->idle + active;
	if (lg->n_conns > MAX_CONNS) {
		fprintf(stderr, "ws-loadgen: too many connections\n");
		return false;
	}
	lg->conns = calloc(lg->n_conns, sizeof *lg->conns);
	lg->again = calloc(lg->n_conns, sizeof *lg->again);
	lg->hs_pool = calloc(lg->n_conns, sizeof *lg->hs_pool);
	lg->scratch = malloc(SCRATCH_SIZE);
	lg->payload = malloc(o->size + 1);
	if (!lg->conns || !lg->again || !lg->hs_pool || !lg->scratch || !lg->payload)
		return false;
	/* printable ASCII: valid UTF-8 for text messages, arbitrary enough for binary */
	for (unsigned i = 0; i < o->size; i++)
		lg->payload[i] = (uint8_t)('a' + i % 26);
	for (unsigned i = 0; i < lg->n_conns; i++) {
		struct conn *c = &lg->conns[i];
		c->id = i;
		c->fd = -1;
		c->state = ST_DONE;
		c->kind = i < o->idle ? KIND_IDLE : echo ? KIND_ECHO : KIND_CYCLE;
		if (c->kind != KIND_ECHO)
			continue;
		c->echo = calloc(1, sizeof *c->echo);
		if (!c->echo || !echo_init(lg, c->echo))
			return false;
	}
	return true;
}

/* 10,000+ connections and a server: ask for every descriptor the hard limit allows. */
static void
raise_nofile(unsigned want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)want + 16)
		fprintf(stderr, "ws-loadgen: warning: RLIMIT_NOFILE %llu is below %u connections\n",
			(unsigned long long)rl.rlim_cur, want);
}

/* ------------------------------------------------------------ phases */

static void
open_more(struct loadgen *lg)
{
	unsigned limit = lg->o.open_concurrency;
	while (lg->pending < limit && lg->next_open < lg->n_conns) {
		struct conn *c = &lg->conns[lg->next_open];
		if (c->kind == KIND_CYCLE)
			break; /* connect-mode slots start with the measurement */
		lg->next_open++;
		if (!conn_start(lg, c))
			exit(EXIT_SYSTEM);
	}
}

static void
begin_measure(struct loadgen *lg)
{
	memset(&lg->k, 0, sizeof lg->k);
	lg->measuring = true;
	lg->k.t_begin = now_ns();
	lg->k.cpu_self = cpu_self_ns();
	lg->k.cpu_server = cpu_pid_ns(lg->o.server_pid);
	cpu_machine_ns(&lg->k.cpu_machine, &lg->k.cpu_steal);
	lg->phase = PH_MEASURE;
	lg->deadline = lg->k.t_begin + seconds_ns(lg->o.duration);
}

static void
end_measure(struct loadgen *lg)
{
	lg->measuring = false;
	lg->k.t_end = now_ns();
	lg->k.cpu_self = cpu_self_ns() - lg->k.cpu_self;
	if (lg->o.server_pid > 0)
		lg->k.cpu_server = cpu_pid_ns(lg->o.server_pid) - lg->k.cpu_server;
	uint64_t busy, steal;
	cpu_machine_ns(&busy, &steal);
	lg->k.cpu_machine = busy - lg->k.cpu_machine;
	lg->k.cpu_steal = steal - lg->k.cpu_steal;
}

static void
begin_load(struct loadgen *lg)
{
	lg->t_opened = lg->now;
	lg->phase = PH_WARMUP;
	lg->deadline = lg->now + seconds_ns(lg->o.warmup);
	lg->sending = true;
	for (unsigned i = 0; i < lg->n_conns; i++) {
		struct conn *c = &lg->conns[i];
		if (c->kind == KIND_ECHO && c->state == ST_OPEN) {
			while (c->echo->count < lg->o.inflight)
				echo_push(lg, c->echo);
			conn_flush(lg, c);
		} else if (c->kind == KIND_CYCLE && !conn_start(lg, c)) {
			exit(EXIT_SYSTEM);
		}
	}
}

/* Stops sending; echoes still in flight (or cycles still running) may finish. */
static void
begin_drain(struct loadgen *lg)
{
	end_measure(lg);
	lg->sending = false;
	lg->phase = PH_DRAIN;
	lg->deadline = lg->now + (lg->o.mode == MODE_CONNECT ? CYCLE_TIMEOUT_NS : DRAIN_WAIT_NS);
}

static bool
drained(const struct loadgen *lg)
{
	return lg->o.mode == MODE_CONNECT ? lg->live == lg->o.idle : lg->inflight == 0;
}

/* Sends every open connection a close frame; the rest are dropped. */
static void
begin_close(struct loadgen *lg)
{
	lg->sending = false;
	lg->phase = PH_CLOSE;
	lg->deadline = now_ns() + CLOSE_WAIT_NS;
	for (unsigned i = 0; i < lg->n_conns; i++) {
		struct conn *c = &lg->conns[i];
		if (c->state == ST_OPEN && (!c->echo || c->echo->owed == 0))
			conn_send_close(lg, c, NULL, 0);
		else if (c->state != ST_DONE && c->state != ST_CLOSING)
			conn_finish(lg, c, "dropped while closing: not open, or a frame half-sent");
	}
}

static void
finish_all(struct loadgen *lg)
{
	for (unsigned i = 0; i < lg->n_conns; i++)
		conn_finish(lg, &lg->conns[i], "no close handshake within the close wait");
	lg->phase = PH_DONE;
}

static void
print_idle_ready(struct loadgen *lg)
{
	double secs = (double)(lg->now - lg->t_start) / 1e9;
	printf("{\"event\":\"idle_ready\",\"label\":\"%s\",\"idle\":%u,\"open_s\":%.3f}\n",
	       lg->o.label, lg->idle_open, secs);
	fflush(stdout);
	fprintf(stderr, "ws-loadgen: %u idle connections open in %.2f s\n", lg->idle_open, secs);
	lg->ready_printed = true;
}

/* Restarts connect-mode slots that finished and times out stuck ones. */
static void
cycle_slots(struct loadgen *lg)
{
	for (unsigned i = lg->o.idle; i < lg->n_conns; i++) {
		struct conn *c = &lg->conns[i];
		if (c->state != ST_DONE && lg->now - c->t_start > CYCLE_TIMEOUT_NS)
			conn_finish(lg, c, "an open-handshake-close cycle took over 5 s");
		if (c->state == ST_DONE && lg->sending && !conn_start(lg, c))
			exit(EXIT_SYSTEM);
	}
}

static void
advance_open(struct loadgen *lg)
{
	open_more(lg);
	if (lg->now > lg->deadline) {
		char why[96];
		snprintf(why, sizeof why, "connections not open after %.1f s (%u pending)",
			 lg->o.open_timeout, lg->pending);
		note_error(lg, NULL, why);
		begin_close(lg);
		return;
	}
	if (lg->o.idle > 0 && lg->idle_open == lg->o.idle && !lg->ready_printed)
		print_idle_ready(lg);
	bool all_open = lg->pending == 0 && (lg->next_open == lg->n_conns ||
					     lg->conns[lg->next_open].kind == KIND_CYCLE);
	if (!all_open)
		return;
	if (lg->o.mode == MODE_IDLE) {
		lg->phase = PH_HOLD;
		lg->t_opened = lg->now;
		lg->deadline = lg->now + seconds_ns(lg->o.hold);
		return;
	}
	begin_load(lg);
}

/*
 * Whether to give up: any failure spoils an echo or idle run (a lost
 * connection skews every figure), while connect mode tolerates a few.
 */
static bool
too_many_errors(const struct loadgen *lg)
{
	return lg->errors > (lg->o.mode == MODE_CONNECT ? MAX_CYCLE_ERRORS : 0);
}

/* Moves the run along by time and counts; called after every batch of events. */
static void
advance(struct loadgen *lg)
{
	lg->now = now_ns();
	bool stop = stop_signal != 0 || too_many_errors(lg);
	switch (lg->phase) {
	case PH_OPEN:
		if (stop)
			begin_close(lg);
		else
			advance_open(lg);
		break;
	case PH_HOLD:
		if (stop || lg->stdin_eof || lg->now >= lg->deadline)
			begin_close(lg);
		break;
	case PH_WARMUP:
		if (stop)
			begin_close(lg);
		else if (lg->now >= lg->deadline)
			begin_measure(lg);
		break;
	case PH_MEASURE:
		if (stop || lg->now >= lg->deadline)
			begin_drain(lg);
		break;
	case PH_DRAIN:
		if (drained(lg) || lg->now >= lg->deadline)
			begin_close(lg);
		break;
	case PH_CLOSE:
		if (lg->live == 0 || lg->now >= lg->deadline)
			finish_all(lg);
		break;
	case PH_DONE:
		break;
	}
	if (lg->o.mode == MODE_CONNECT && lg->phase >= PH_WARMUP && lg->phase <= PH_DRAIN)
		cycle_slots(lg);
}

static int
wait_timeout_ms(const struct loadgen *lg)
{
	if (lg->again_len > 0)
		return 0;
	/* spinning spares the server the cost of waking us: an artefact of loopback */
	if (lg->o.busy_poll && lg->phase >= PH_WARMUP && lg->phase <= PH_DRAIN)
		return 0;
	uint64_t now = now_ns();
	if (lg->deadline <= now)
		return 0;
	uint64_t ms = (lg->deadline - now + 999999) / 1000000;
	return ms < TICK_MS ? (int)ms : TICK_MS;
}

static void
watch_stdin(struct loadgen *lg)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = STDIN_TAG };
	/* a file or /dev/null cannot be polled: then only --hold and signals end the hold */
	(void)epoll_ctl(lg->epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
}

static void
on_stdin(struct loadgen *lg)
{
	char buf[256];
	ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		lg->stdin_eof = true;
		epoll_ctl(lg->epfd, EPOLL_CTL_DEL, STDIN_FILENO, NULL);
	}
}

static void
run_again_list(struct loadgen *lg)
{
	unsigned n = lg->again_len;
	lg->again_len = 0;
	for (unsigned i = 0; i < n; i++) {
		struct conn *c = lg->again[i];
		c->queued_again = false;
		if (c->state == ST_DONE)
			continue;
		lg->now = now_ns();
		conn_read(lg, c, false);
		if (c->state == ST_OPEN || c->state == ST_CLOSING)
			conn_flush(lg, c);
	}
}

static void
event_loop(struct loadgen *lg)
{
	struct epoll_event events[MAX_EVENTS];
	lg->now = lg->t_start = now_ns();
	lg->deadline = lg->t_start + seconds_ns(lg->o.open_timeout);
	while (lg->phase != PH_DONE) {
		int n = epoll_wait(lg->epfd, events, MAX_EVENTS, wait_timeout_ms(lg));
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "ws-loadgen: epoll_wait: %s\n", strerror(errno));
			exit(EXIT_SYSTEM);
		}
		if (lg->measuring) {
			lg->k.polls++;
			lg->k.empty_polls += n <= 0;
		}
		for (int i = 0; i < n; i++) {
			lg->now = now_ns();
			if (events[i].data.u32 == STDIN_TAG)
				on_stdin(lg);
			else
				conn_on_event(lg, &lg->conns[events[i].data.u32], events[i].events);
		}
		run_again_list(lg);
		advance(lg);
	}
}

/* ------------------------------------------------------------ reports */

/* What every measured report shares: the window's length and both sides' CPU use. */
struct window {
	double secs;
	double cpu_self_pct;
	double cpu_machine_pct; /* every CPU's busy time: 100 per core */
	double cpu_steal_pct;
	char cpu_server_pct[16]; /* a JSON number, or null when no --server-pid */
	char cpu_json[256];      /* the fields above as JSON members */
};

static struct window
window_of(const struct loadgen *lg)
{
	const struct counters *k = &lg->k;
	uint64_t wall = k->t_end > k->t_begin ? k->t_end - k->t_begin : 0;
	struct window w = { .secs = (double)wall / 1e9 };
	double pct = wall ? 100.0 / (double)wall : 0;
	w.cpu_self_pct = pct * (double)k->cpu_self;
	w.cpu_machine_pct = pct * (double)k->cpu_machine;
	w.cpu_steal_pct = pct * (double)k->cpu_steal;
	if (lg->o.server_pid > 0 && wall)
		snprintf(w.cpu_server_pct, sizeof w.cpu_server_pct, "%.1f",
			 pct * (double)k->cpu_server);
	else
		snprintf(w.cpu_server_pct, sizeof w.cpu_server_pct, "null");
	/* with --busy-poll the CPU share is always ~100%: empty polls show the slack instead */
	/* the rest of the machine: other processes, which skew the figures (softirq work
	 * is charged to whichever task it interrupts, so ours is in self and server) */
	char other[16] = "null";
	if (lg->o.server_pid > 0 && wall)
		snprintf(other, sizeof other, "%.1f",
			 w.cpu_machine_pct - w.cpu_self_pct - pct * (double)k->cpu_server);
	snprintf(w.cpu_json, sizeof w.cpu_json,
		 "\"cpu_self_pct\":%.1f,\"cpu_server_pct\":%s,\"cpu_other_pct\":%s,"
		 "\"cpu_machine_pct\":%.1f,\"cpu_steal_pct\":%.1f,\"busy_poll\":%s,"
		 "\"empty_poll_pct\":%.1f",
		 w.cpu_self_pct, w.cpu_server_pct, other, w.cpu_machine_pct, w.cpu_steal_pct,
		 lg->o.busy_poll ? "true" : "false",
		 k->polls ? 100.0 * (double)k->empty_polls / (double)k->polls : 0);
	return w;
}

static double
per_second(uint64_t n, const struct window *w)
{
	return w->secs > 0 ? (double)n / w->secs : 0;
}

static double
quantile_us(const struct hist *h, double q)
{
	return hist_quantile(h, q) / 1e3;
}

/* The first error as a JSON value: a string (it may quote the server's status line), or null. */
static const char *
first_error_json(const struct loadgen *lg)
{
	static char buf[2 * sizeof lg->first_error + 8];
	size_t o = 0;
	if (!lg->first_error[0])
		return "null";
	buf[o++] = '"';
	for (const char *p = lg->first_error; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else {
			buf[o++] = ch < 0x20 || ch > 0x7e ? '?' : (char)ch;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static void
report_echo(const struct loadgen *lg)
{
	const struct opts *o = &lg->o;
	const struct counters *k = &lg->k;
	struct window w = window_of(lg);
	double rate = per_second(k->msgs, &w);
	double mib = per_second(k->bytes, &w) / (1024.0 * 1024.0);
	printf("{\"mode\":\"%s\",\"label\":\"%s\",\"host\":\"%s\",\"port\":%u,"
	       "\"conns\":%u,\"inflight\":%u,\"size\":%u,\"binary\":%s,\"idle\":%u,\"idle_open\":%u,"
	       "\"warmup_s\":%.3f,\"duration_s\":%.3f,\"msgs\":%" PRIu64 ",\"msgs_per_s\":%.0f,"
	       "\"mib_per_s\":%.2f,\"p50_us\":%.2f,\"p90_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
	       "\"max_us\":%.2f,\"errors\":%u,\"lost\":%u,\"unclean_closes\":%u,\"idle_dropped\":%u,"
	       "%s,\"first_error\":%s,\"ok\":%s}\n",
	       mode_names[o->mode], o->label, o->host, o->port, o->conns, o->inflight, o->size,
	       o->binary ? "true" : "false", o->idle, lg->idle_open, o->warmup, w.secs, k->msgs,
	       rate, mib, quantile_us(&k->lat, 0.5), quantile_us(&k->lat, 0.9),
	       quantile_us(&k->lat, 0.99), quantile_us(&k->lat, 0.999), (double)k->lat.max / 1e3,
	       lg->errors, lg->lost, lg->unclean, lg->idle_dropped, w.cpu_json,
	       first_error_json(lg),
	       lg->errors == 0 && lg->lost == 0 && k->msgs > 0 ? "true" : "false");
	fprintf(stderr,
		"%s: %u conns x %u x %u B%s: %.0f msgs/s (%.1f MiB/s), p50 %.1f us, "
		"p99 %.1f us, p99.9 %.1f us; cpu %% loadgen %.0f, server %s, machine %.0f; errors %u\n",
		o->label[0] ? o->label : mode_names[o->mode], o->conns, o->inflight, o->size,
		o->idle ? " (+idle)" : "", rate, mib, quantile_us(&k->lat, 0.5),
		quantile_us(&k->lat, 0.99), quantile_us(&k->lat, 0.999), w.cpu_self_pct,
		w.cpu_server_pct, w.cpu_machine_pct, lg->errors);
}

static void
report_connect(const struct loadgen *lg)
{
	const struct opts *o = &lg->o;
	const struct counters *k = &lg->k;
	struct window w = window_of(lg);
	double rate = per_second(k->cycles, &w);
	printf("{\"mode\":\"connect\",\"label\":\"%s\",\"host\":\"%s\",\"port\":%u,\"concurrency\":%u,"
	       "\"src_addrs\":%u,\"warmup_s\":%.3f,\"duration_s\":%.3f,\"cycles\":%" PRIu64 ","
	       "\"cycles_per_s\":%.0f,\"handshake_p50_us\":%.1f,\"handshake_p99_us\":%.1f,"
	       "\"cycle_p50_us\":%.1f,\"cycle_p99_us\":%.1f,\"errors\":%u,\"unclean_closes\":%u,"
	       "%s,\"first_error\":%s,\"ok\":%s}\n",
	       o->label, o->host, o->port, o->conns, lg->src_addrs, o->warmup, w.secs, k->cycles,
	       rate, quantile_us(&k->lat, 0.5), quantile_us(&k->lat, 0.99),
	       quantile_us(&k->cycle_lat, 0.5), quantile_us(&k->cycle_lat, 0.99), lg->errors,
	       lg->unclean, w.cpu_json, first_error_json(lg),
	       lg->errors == 0 && k->cycles > 0 ? "true" : "false");
	fprintf(stderr,
		"%s: %u slots: %.0f connections/s, handshake p50 %.1f us, "
		"cycle p50 %.1f us; cpu %% loadgen %.0f, server %s, machine %.0f; errors %u\n",
		o->label[0] ? o->label : "connect", o->conns, rate, quantile_us(&k->lat, 0.5),
		quantile_us(&k->cycle_lat, 0.5), w.cpu_self_pct, w.cpu_server_pct,
		w.cpu_machine_pct, lg->errors);
}

static void
report_idle(const struct loadgen *lg)
{
	bool opened = lg->t_opened != 0;
	double open_s = opened ? (double)(lg->t_opened - lg->t_start) / 1e9 : 0;
	double held = opened ? (double)(lg->now - lg->t_opened) / 1e9 : 0;
	bool ok = lg->errors == 0 && lg->idle_failed == 0 && lg->idle_dropped == 0;
	printf("{\"mode\":\"idle\",\"label\":\"%s\",\"host\":\"%s\",\"port\":%u,\"idle\":%u,"
	       "\"open\":%u,\"failed\":%u,\"dropped\":%u,\"open_s\":%.3f,\"held_s\":%.3f,"
	       "\"unclean_closes\":%u,\"first_error\":%s,\"ok\":%s}\n",
	       lg->o.label, lg->o.host, lg->o.port, lg->o.idle, lg->idle_open, lg->idle_failed,
	       lg->idle_dropped, open_s, held, lg->unclean, first_error_json(lg),
	       ok ? "true" : "false");
	fprintf(stderr,
		"%s: %u/%u open in %.2f s, %u dropped while held %.1f s, %u unclean closes\n",
		lg->o.label[0] ? lg->o.label : "idle", lg->idle_open, lg->o.idle, open_s,
		lg->idle_dropped, held, lg->unclean);
}

/* Picks a free port below the ephemeral range, so it never collides with our own source ports. */
static int
free_port(const struct loadgen *lg)
{
	for (int tries = 0; tries < 200; tries++) {
		unsigned port = 20000 + rng_next() % 12000;
		struct sockaddr_storage a = lg->addr;
		int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return EXIT_SYSTEM;
		if (a.ss_family == AF_INET)
			((struct sockaddr_in *)&a)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&a)->sin6_port = htons((uint16_t)port);
		int rc = bind(fd, (struct sockaddr *)&a, lg->addrlen);
		close(fd);
		if (rc == 0) {
			printf("%u\n", port);
			return 0;
		}
	}
	fprintf(stderr, "ws-loadgen: no free port found\n");
	return EXIT_SYSTEM;
}

/* Spreads source addresses so that no single 127.0.0.x runs short of ports. */
static unsigned
choose_src_addrs(const struct opts *o, int family)
{
	if (family != AF_INET)
		return 1;
	if (o->src_addrs)
		return o->src_addrs;
	/* connect mode churns through ports; others need one per open connection */
	if (o->mode == MODE_CONNECT)
		return 16;
	return 1 + (o->idle + o->conns) / 16000;
}

int
main(int argc, char **argv)
{
	static struct loadgen lg;
	if (!parse_opts(argc, argv, &lg.o))
		return EXIT_USAGE;
	if (lg.o.mode == MODE_FREE_PORT)
		lg.o.port = 1;
	if (!resolve_target(&lg))
		return EXIT_USAGE;
	random_bytes(&rng_state, sizeof rng_state);
	rng_state |= 1;
	if (lg.o.mode == MODE_FREE_PORT)
		return free_port(&lg);

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile(lg.o.idle + lg.o.conns);
	lg.src_addrs = choose_src_addrs(&lg.o, lg.addr.ss_family);
	build_request(&lg);
	if (!alloc_conns(&lg)) {
		fprintf(stderr, "ws-loadgen: out of memory\n");
		return EXIT_SYSTEM;
	}
	lg.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lg.epfd < 0) {
		fprintf(stderr, "ws-loadgen: epoll_create1: %s\n", strerror(errno));
		return EXIT_SYSTEM;
	}
	if (lg.o.mode == MODE_IDLE)
		watch_stdin(&lg);
	event_loop(&lg);

	if (lg.o.mode == MODE_IDLE)
		report_idle(&lg);
	else if (lg.o.mode == MODE_CONNECT)
		report_connect(&lg);
	else
		report_echo(&lg);
	bool ok = lg.errors == 0 && lg.idle_failed == 0 && lg.idle_dropped == 0 && lg.lost == 0;
	return ok ? 0 : EXIT_ERRORS;
}
