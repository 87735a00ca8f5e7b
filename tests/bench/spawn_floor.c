/*
 * spawn_floor: the exec floor for the RPC benchmark (tests/bench/run-rooms,
 * scenario exec_spawn_floor). No server, no WebSocket, no sandbox: it keeps
 * --inflight P children of `/bin/sh -c true` running at once, started with
 * posix_spawn the way a server would start a command (stdin /dev/null,
 * stdout and stderr to pipes that are drained and closed), and reaps each
 * through a pidfd on one epoll set. A child is done when both pipes reached
 * EOF and it was reaped; its latency is posix_spawn -> done.
 *
 *   spawn_floor [--inflight P] [--warmup S] [--duration S] [--label NAME]
 *
 * Output: one JSON line on stdout ({"mode":"spawn_floor",...}: completions
 * per second and latency while measuring, this process's CPU and its reaped
 * children's, as % of one core), a human line on stderr. Exit 0 clean, 1 a
 * child failed (exit status not 0, spawn error), 100 usage, 111 system
 * failure.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#define NS_PER_S 1000000000ull
#define MAX_INFLIGHT 256u
#define DRAIN_NS (5 * NS_PER_S)

extern char **environ;

struct slot {
	pid_t pid;   /* 0: free */
	int fds[3];  /* stdout pipe, stderr pipe, pidfd; -1 once closed */
	uint64_t t0; /* posix_spawn called */
	int status;
	bool reaped;
};

static struct slot slots[MAX_INFLIGHT];
static int ep = -1;
static uint64_t errors;
static char first_error[160];
static struct hist lat;
static volatile sig_atomic_t stop;

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
cpu_ns(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_S +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* epoll data: slot index * 4 + which fd (0 stdout, 1 stderr, 2 pidfd) */
static bool
watch(int fd, unsigned slot, unsigned which)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = (uint64_t)slot * 4 + which };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
}

static void
close_fd(struct slot *s, unsigned which)
{
	if (s->fds[which] >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fds[which], NULL);
		close(s->fds[which]);
		s->fds[which] = -1;
	}
}

/* Starts `/bin/sh -c true` in slot i; false on a system failure. */
static bool
start_child(unsigned i)
{
	static char *const argv[] = { "/bin/sh", "-c", "true", NULL };
	struct slot *s = &slots[i];
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return false;
	if (pipe2(err, O_CLOEXEC) < 0) {
		close(out[0]);
		close(out[1]);
		return false;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	s->t0 = now_ns();
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	if (rc != 0) {
		close(out[0]);
		close(err[0]);
		errno = rc;
		return false;
	}
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0) {
		close(out[0]);
		close(err[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return false;
	}
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(err[0], F_SETFL, O_NONBLOCK);
	s->pid = pid;
	s->fds[0] = out[0];
	s->fds[1] = err[0];
	s->fds[2] = pfd;
	s->reaped = false;
	s->status = 0;
	return watch(out[0], i, 0) && watch(err[0], i, 1) && watch(pfd, i, 2);
}

/* Handles one event; returns true when slot i's child is done (pipes at EOF and reaped). */
static bool
on_event(unsigned i, unsigned which)
{
	struct slot *s = &slots[i];
	if (which < 2) {
		char buf[4096];
		for (;;) {
			ssize_t n = read(s->fds[which], buf, sizeof buf);
			if (n > 0)
				continue;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return false;
			close_fd(s, which); /* EOF or error */
			break;
		}
	} else {
		siginfo_t si = { 0 };
		if (waitid(P_PIDFD, (id_t)s->fds[2], &si, WEXITED | WNOHANG) < 0) {
			error_once("waitid failed");
			si.si_pid = s->pid;
			si.si_code = CLD_KILLED;
		}
		if (si.si_pid == 0)
			return false; /* not yet */
		s->reaped = true;
		s->status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
		close_fd(s, 2);
	}
	return s->reaped && s->fds[0] < 0 && s->fds[1] < 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: spawn_floor [options]\n"
		"  --inflight P       children of `/bin/sh -c true` running at once (4; 1..256)\n"
		"  --warmup S --duration S   (0.5, 2)\n"
		"  --label NAME\n");
}

int
main(int argc, char **argv)
{
	unsigned inflight = 4;
	double warmup = 0.5, duration = 2;
	const char *label = "";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 100;
		}
		i++;
		char *end;
		if (!strcmp(a, "--inflight")) {
			unsigned long p = strtoul(v, &end, 10);
			inflight = *end || p > MAX_INFLIGHT ? 0 : (unsigned)p;
		} else if (!strcmp(a, "--warmup")) {
			warmup = strtod(v, &end);
			if (*end)
				warmup = -1;
		} else if (!strcmp(a, "--duration")) {
			duration = strtod(v, &end);
			if (*end)
				duration = 0;
		} else if (!strcmp(a, "--label"))
			label = v;
		else {
			usage(stderr);
			return 100;
		}
	}
	if (!inflight || duration <= 0 || duration > 60 || warmup < 0 || warmup > 30) {
		usage(stderr);
		return 100;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 111;
	for (unsigned i = 0; i < MAX_INFLIGHT; i++)
		slots[i].fds[0] = slots[i].fds[1] = slots[i].fds[2] = -1;

	uint64_t start = now_ns();
	uint64_t t_measure = start + (uint64_t)(warmup * 1e9);
	uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
	uint64_t hard_end = t_end + DRAIN_NS;
	uint64_t cpu0 = 0, kids0 = 0, cpu1 = 0, kids1 = 0, measured = 0, started = 0;
	unsigned running = 0;
	bool measuring = false, measured_end = false;
	for (unsigned i = 0; i < inflight; i++) {
		if (!start_child(i)) {
			fprintf(stderr, "spawn_floor: posix_spawn: %s\n", strerror(errno));
			return 111;
		}
		running++;
		started++;
	}
	while (running) {
		uint64_t now = now_ns();
		if (!measuring && now >= t_measure) {
			measuring = true;
			cpu0 = cpu_ns(RUSAGE_SELF);
			kids0 = cpu_ns(RUSAGE_CHILDREN);
		}
		if (measuring && !measured_end && now >= t_end) {
			measured_end = true;
			cpu1 = cpu_ns(RUSAGE_SELF);
			kids1 = cpu_ns(RUSAGE_CHILDREN);
		}
		if (stop || now >= hard_end)
			break;
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 10);
		if (n < 0 && errno != EINTR)
			return 111;
		now = now_ns();
		for (int k = 0; k < n; k++) {
			unsigned i = (unsigned)(evs[k].data.u64 / 4),
				 which = (unsigned)(evs[k].data.u64 % 4);
			struct slot *s = &slots[i];
			if (!s->pid || s->fds[which] < 0 || !on_event(i, which))
				continue;
			if (s->status != 0)
				error_once("a child's exit status was not 0");
			if (now >= t_measure && now < t_end) {
				measured++;
				hist_add(&lat, now - s->t0);
			}
			s->pid = 0;
			running--;
			if (now < t_end && !stop) {
				if (!start_child(i)) {
					error_once("posix_spawn failed");
					stop = 1;
					continue;
				}
				running++;
				started++;
			}
		}
	}
	if (!measured_end) {
		cpu1 = cpu_ns(RUSAGE_SELF);
		kids1 = cpu_ns(RUSAGE_CHILDREN);
	}
	if (running && !stop)
		error_once("children still running after the drain");
	for (unsigned i = 0; i < MAX_INFLIGHT; i++)
		if (slots[i].pid) {
			kill(slots[i].pid, SIGKILL);
			waitpid(slots[i].pid, NULL, 0);
		}

	double per_s = (double)measured / duration;
	double cpu_pct = (double)(cpu1 - cpu0) / 1e9 / duration * 100;
	double kids_pct = (double)(kids1 - kids0) / 1e9 / duration * 100;
	double p50 = hist_quantile(&lat, 0.5) / 1e3, p99 = hist_quantile(&lat, 0.99) / 1e3,
	       p999 = hist_quantile(&lat, 0.999) / 1e3;
	printf("{\"mode\":\"spawn_floor\",\"label\":\"%s\",\"inflight\":%u,\"per_s\":%.1f,"
	       "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
	       "\"cpu_pct\":%.1f,\"children_cpu_pct\":%.1f,\"spawned\":%" PRIu64
	       ",\"errors\":%" PRIu64 ",\"first_error\":\"%s\"}\n",
	       label, inflight, per_s, p50, p99, p999, (double)lat.max / 1e3, cpu_pct, kids_pct,
	       started, errors, first_error);
	fprintf(stderr,
		"%s spawn_floor x%u: %.0f/s, p50 %.0f us, p99 %.0f us, cpu self %.0f%% children %.0f%%%s%s\n",
		label, inflight, per_s, p50, p99, cpu_pct, kids_pct, errors ? ", error: " : "",
		first_error);
	return errors ? 1 : 0;
}
