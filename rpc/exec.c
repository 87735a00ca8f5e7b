#define _GNU_SOURCE /* signalfd, pipe2, close_range, clone */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "list.h"
#include "log.h"
#include "sandbox.h"
#include "timer.h"
#include "watch.h"

#define STDIN_MAX (1u << 20)
#define READS_PER_EVENT 8
/* After the command exits, how long its pipes may stay open (a stray holder). */
#define DRAIN_AFTER_EXIT_MS 2000
/* The child's error channel sits at this descriptor while the sandbox is set up. */
#define ERR_FD 3
/* A child has this long from fork to execve; every START_POLL_MS it is checked for a stop. */
#define START_TIMEOUT_MS 5000
#define START_POLL_MS 10
/* A command that took longer than this from request to done is logged with its phases. */
#define SLOW_TRACE_US 50000
/* The stack a child that shares the server's memory runs on until it execs. */
#define CHILD_STACK (256u << 10)

enum phase { RUNNING, TERM_SENT, KILL_SENT, EXITED };

struct stream_ref {
	struct rpc_exec *x;
	enum rpc_stream s;
};

struct rpc_exec {
	struct rpc_engine *eng;
	struct ws_list link; /* in eng->list */
	const struct rpc_exec_ops *ops;
	void *arg;
	pid_t pid;
	struct ws_watch *out[3]; /* [RPC_STDOUT], [RPC_STDERR] */
	struct ws_watch *in;
	int in_fd;  /* owned by the `in` watch */
	int pty_fd; /* the pty's master, owned by out[RPC_STDOUT]; -1 without a pty or once closed */
	/*
	 * Our own descriptor of the pty's slave (O_NOCTTY), held until the
	 * command is reaped: with no slave open the master reads EIO, which
	 * would end the output of a program that closed 0, 1 and 2 and opens
	 * /dev/tty again later. -1 without a pty or once reaped.
	 */
	int pty_slave;
	struct stream_ref ref[3];
	struct ws_buf pending_in;
	struct ws_timer *timer;
	uint64_t got[3];
	uint64_t max_output;
	uint64_t started_ms;
	/* the phases' ends, in µs: for the exec-trace log line */
	uint64_t t_begin, t_spawned, t_execed, t_exited;
	int status;
	enum phase phase;
	bool in_eof, timed_out, truncated, abandoned, paused, pty;
};

struct rpc_engine {
	struct ws_server *srv;
	rpc_child_setup_fn setup;
	void *setup_ctx;
	uint64_t grace_ms;
	struct ws_watch *sigchld;
	struct ws_list list; /* every command not yet finished (rpc_exec.link) */
	unsigned running;
	int devnull; /* stdin of commands given none */
	/* children share our memory until they exec (no page-table copy): see spawn() */
	bool share_vm;
	void *stack; /* CHILD_STACK bytes under a guard page, for those children */
};

static uint64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The command whose process is pid, or NULL. */
static struct rpc_exec *
find_pid(struct rpc_engine *e, pid_t pid)
{
	ws_list_for_each (l, &e->list) {
		struct rpc_exec *x = ws_list_entry(l, struct rpc_exec, link);
		if (x->pid == pid)
			return x;
	}
	return NULL;
}

/* Kills children of ours that no command owns: daemons that escaped their group. */
static void
kill_orphans(struct rpc_engine *e)
{
	pid_t kids[1024];
	size_t n = ws_sandbox_children(kids, sizeof(kids) / sizeof(kids[0]));
	for (size_t i = 0; i < n; i++) {
		struct rpc_exec *x = find_pid(e, kids[i]);
		if (!x || x->phase == EXITED) {
			kill(-kids[i], SIGKILL);
			kill(kids[i], SIGKILL);
		}
	}
}

static void
close_slave(struct rpc_exec *x)
{
	if (x->pty_slave >= 0)
		close(x->pty_slave);
	x->pty_slave = -1;
}

static void
finish(struct rpc_exec *x)
{
	struct rpc_engine *e = x->eng;
	close_slave(x);
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++)
		ws_watch_close(x->out[s]);
	ws_watch_close(x->in);
	ws_timer_destroy(x->timer);
	ws_buf_finish(&x->pending_in);
	ws_list_remove(&x->link);
	e->running--;

	struct rpc_exec_result r = {
		.exit_code = WIFEXITED(x->status) ? WEXITSTATUS(x->status) : -1,
		.signal = WIFSIGNALED(x->status) ? WTERMSIG(x->status) : 0,
		.timed_out = x->timed_out,
		.truncated = x->truncated,
		.duration_ms = ws_clock_mono_ms() - x->started_ms,
	};
	/*
	 * Where a command's time went: spawn (request to fork's return),
	 * setup (the child's sandbox until execve), run (execve to reaped),
	 * drain (reaped to both pipes closed). Slow ones at info level.
	 */
	uint64_t t_end = now_us();
	uint64_t t_exit = x->t_exited ? x->t_exited : t_end;
	enum ws_log_level lvl = t_end - x->t_begin > SLOW_TRACE_US ? WS_LOG_INFO : WS_LOG_DEBUG;
	ws_log(lvl,
	       "exec-trace pid=%d spawn_us=%llu setup_us=%llu run_us=%llu drain_us=%llu "
	       "total_us=%llu running=%u",
	       (int)x->pid, (unsigned long long)(x->t_spawned - x->t_begin),
	       (unsigned long long)(x->t_execed - x->t_spawned),
	       (unsigned long long)(t_exit - x->t_execed), (unsigned long long)(t_end - t_exit),
	       (unsigned long long)(t_end - x->t_begin), e->running);

	if (!x->abandoned && x->ops->done)
		x->ops->done(x->arg, &r);
	free(x);
}

static void
maybe_finish(struct rpc_exec *x)
{
	if (x->phase == EXITED && !x->out[RPC_STDOUT] && !x->out[RPC_STDERR])
		finish(x);
}

static void
on_timer(void *arg)
{
	struct rpc_exec *x = arg;
	switch (x->phase) {
	case RUNNING:
		x->timed_out = true;
		x->phase = TERM_SENT;
		kill(-x->pid, SIGTERM);
		ws_timer_arm(x->timer, x->eng->grace_ms);
		return;
	case TERM_SENT:
		x->phase = KILL_SENT;
		kill(-x->pid, SIGKILL);
		return;
	case KILL_SENT:
		return;
	case EXITED:
		/* something still holds the pipes open: stop waiting for it */
		for (int s = RPC_STDOUT; s <= RPC_STDERR; s++) {
			ws_watch_close(x->out[s]);
			x->out[s] = NULL;
		}
		finish(x);
		return;
	}
}

static void
exited(struct rpc_exec *x, int status)
{
	x->status = status;
	x->phase = EXITED;
	x->t_exited = now_us();
	/* the command is over: so is everything it started */
	kill(-x->pid, SIGKILL);
	kill_orphans(x->eng);
	/* the master now reads what is left, then EIO once no one else holds the slave */
	close_slave(x);
	ws_timer_arm(x->timer, DRAIN_AFTER_EXIT_MS);
	maybe_finish(x);
}

static bool
on_sigchld(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev)
{
	struct rpc_engine *e = arg;
	if (ev == WS_WATCH_CLOSED) {
		e->sigchld = NULL;
		return false;
	}
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	bool orphan = false;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct rpc_exec *x = find_pid(e, pid);
		if (x && x->phase != EXITED)
			exited(x, status);
		else
			orphan = true;
	}
	/* a reaped orphan's own children were just handed to us */
	if (orphan)
		kill_orphans(e);
	return true;
}

struct rpc_engine *
rpc_engine_create(struct ws_server *srv, rpc_child_setup_fn setup, void *setup_ctx,
		  uint64_t grace_ms)
{
	struct rpc_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	*e = (struct rpc_engine){
		.srv = srv, .setup = setup, .setup_ctx = setup_ctx, .grace_ms = grace_ms
	};
	ws_list_init(&e->list);
	e->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* orphaned grandchildren come to us, not to PID 1, so we can reap and kill them */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		ws_log(WS_LOG_WARN, "subreaper failed=yes error=\"%s\"", strerror(errno));
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0 || !(e->sigchld = ws_watch_create(srv, fd, on_sigchld, e))) {
		ws_log(WS_LOG_ERROR, "signalfd failed=yes error=\"%s\"", strerror(errno));
		if (e->devnull >= 0)
			close(e->devnull);
		free(e);
		return NULL;
	}
	return e;
}

bool
rpc_engine_share_memory(struct rpc_engine *e, bool on)
{
	if (on && !e->stack) {
		void *p = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (p == MAP_FAILED)
			return false;
		/* the lowest page catches an overflow instead of the heap below */
		if (mprotect(p, 4096, PROT_NONE) != 0) {
			munmap(p, CHILD_STACK);
			return false;
		}
		e->stack = p;
	}
	e->share_vm = on;
	return true;
}

void
rpc_engine_destroy(struct rpc_engine *e)
{
	if (!e)
		return;
	while (!ws_list_empty(&e->list)) {
		struct rpc_exec *x = ws_list_entry(e->list.next, struct rpc_exec, link);
		kill(-x->pid, SIGKILL);
		if (x->phase != EXITED) {
			int status;
			waitpid(x->pid, &status, 0);
			x->status = status;
			x->phase = EXITED;
		}
		x->abandoned = true;
		finish(x);
	}
	kill_orphans(e);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	ws_watch_close(e->sigchld);
	if (e->devnull >= 0)
		close(e->devnull);
	if (e->stack)
		munmap(e->stack, CHILD_STACK);
	free(e);
}

unsigned
rpc_engine_running(const struct rpc_engine *e)
{
	return e->running;
}

static void
deliver(struct rpc_exec *x, enum rpc_stream s, const uint8_t *p, size_t n)
{
	uint64_t room = x->max_output - x->got[s];
	if (n > room) {
		x->truncated = true;
		n = (size_t)room;
	}
	x->got[s] += n;
	if (n && !x->abandoned && x->ops->output)
		x->ops->output(x->arg, s, p, n);
}

static bool
on_output(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev)
{
	struct stream_ref *ref = arg;
	struct rpc_exec *x = ref->x;
	enum rpc_stream s = ref->s;
	if (ev == WS_WATCH_WRITABLE)
		return true;
	if (ev == WS_WATCH_READABLE) {
		uint8_t buf[65536];
		size_t have = 0;
		bool eof = false;
		/*
		 * A few reads, then the next turn: a flood must not starve the
		 * rest. What they got leaves as one piece: a pty gives at most
		 * 4 KiB a read, and each piece costs a message to every client.
		 */
		for (int i = 0; i < READS_PER_EVENT && !eof && have < sizeof(buf); i++) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - have);
			if (n > 0)
				have += (size_t)n;
			else if (n < 0 && errno == EAGAIN)
				break;
			else if (!(n < 0 && errno == EINTR))
				eof = true; /* EOF or error */
		}
		if (have)
			deliver(x, s, buf, have);
		if (!eof)
			return true;
	}
	x->out[s] = NULL;
	if (s == RPC_STDOUT)
		x->pty_fd = -1;
	maybe_finish(x);
	return false;
}

/* Pushes queued stdin into the pipe; closes it when asked and empty. */
static void
write_stdin(struct rpc_exec *x)
{
	if (!x->in)
		return;
	while (x->pending_in.len) {
		ssize_t n = write(x->in_fd, ws_buf_begin(&x->pending_in), x->pending_in.len);
		if (n > 0) {
			ws_buf_consume(&x->pending_in, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ws_watch_want_write(x->in);
			return;
		}
		x->pending_in.len = 0; /* EPIPE: the command stopped reading */
		x->in_eof = true;
	}
	if (x->in_eof) {
		ws_watch_close(x->in);
		x->in = NULL;
		ws_buf_finish(&x->pending_in);
	}
}

static bool
on_stdin(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev)
{
	struct rpc_exec *x = arg;
	if (ev == WS_WATCH_CLOSED) {
		x->in = NULL;
		return false;
	}
	if (ev == WS_WATCH_WRITABLE)
		write_stdin(x);
	return true;
}

static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void
close_pair(int p[2])
{
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* execve, and a script without "#!" runs in the shell, as execvp and shells do. */
static void
exec_file(const char *file, char *const argv[], char *const envp[])
{
	execve(file, argv, envp);
	if (errno != ENOEXEC)
		return;
	char *shargv[RPC_ARGV_MAX + 2];
	size_t n = 0;
	shargv[n++] = "/bin/sh";
	shargv[n++] = (char *)file;
	for (size_t i = 1; argv[i] && n < RPC_ARGV_MAX + 1; i++)
		shargv[n++] = argv[i];
	shargv[n] = NULL;
	execve(shargv[0], shargv, envp);
	errno = ENOEXEC;
}

/*
 * execvpe, but searching the PATH of the command's own environment (the
 * server's may differ). Returns only on failure, with errno set.
 */
static void
exec_path(char *const argv[], char *const envp[])
{
	const char *file = argv[0];
	if (strchr(file, '/')) {
		exec_file(file, argv, envp);
		return;
	}
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	for (char *const *e = envp; *e; e++) {
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	}
	int err = ENOENT;
	char full[4096];
	for (const char *p = path;; p++) {
		const char *colon = strchr(p, ':');
		size_t dl = colon ? (size_t)(colon - p) : strlen(p);
		if (dl + 1 + strlen(file) < sizeof(full)) {
			/* an empty entry means the working directory */
			int n = snprintf(full, sizeof(full), "%.*s%s%s", (int)dl, p, dl ? "/" : "",
					 file);
			if (n > 0) {
				exec_file(full, argv, envp);
				if (errno == EACCES)
					err = EACCES;
				else if (errno != ENOENT && errno != ENOTDIR)
					return;
			}
		}
		if (!colon)
			break;
		p = colon;
	}
	errno = err;
}

/*
 * What the child starts from. It may share the server's memory (see
 * spawn()): it reads this and writes only to its own stack.
 */
struct child_args {
	struct rpc_engine *e;
	const struct rpc_exec_spec *spec;
	int in, out, err; /* its stdin, stdout, stderr */
	int tty;          /* a pty's slave, or -1 */
	int status_fd;
};

/* The child: pipes in place, sandbox, exec. Never returns. */
static void __attribute__((noreturn)) child(const struct child_args *a)
{
	struct rpc_engine *e = a->e;
	const struct rpc_exec_spec *spec = a->spec;
	int in = a->in, out = a->out, err = a->err, tty = a->tty;
	/*
	 * Signals were blocked across fork: reset every handler (the loop's
	 * would otherwise swallow a signal meant for the command before it
	 * execs) and every ignored signal (SIGPIPE), then unblock. A setup
	 * does it itself (rpc_child_setup_fn), so they are not done twice.
	 */
	if (!e->setup) {
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}

	if (tty >= 0) {
		/*
		 * A terminal: a session of its own, the pty as its controlling
		 * terminal, before the sandbox (whose setsid then has nothing to
		 * do) and its filter. Job control and SIGWINCH reach the command.
		 */
		if (setsid() < 0 || ioctl(tty, TIOCSCTTY, 0) != 0)
			_exit(126);
		in = out = err = tty;
	}
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 ||
	    dup2(a->status_fd, ERR_FD) < 0 || fcntl(ERR_FD, F_SETFD, FD_CLOEXEC) < 0)
		_exit(126);

	char msg[256] = "";
	if (e->setup) {
		if (e->setup(e->setup_ctx, msg, sizeof(msg)) != 0)
			goto fail;
	} else {
		if (tty < 0)
			setsid();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close_range(ERR_FD + 1, ~0u, 0);
	}
	if (spec->cwd && chdir(spec->cwd) != 0) {
		snprintf(msg, sizeof(msg), "cwd %s: %s", spec->cwd, strerror(errno));
		goto fail;
	}
	if (spec->path)
		exec_file(spec->path, spec->argv, spec->envp);
	else
		exec_path(spec->argv, spec->envp);
	int en = errno;
	dprintf(2, "%s: %s\n", spec->argv[0], en == ENOENT ? "command not found" : strerror(en));
	_exit(en == ENOENT ? 127 : 126);
fail:
	if (!*msg)
		snprintf(msg, sizeof(msg), "sandbox set-up failed");
	if (write(ERR_FD, msg, strlen(msg)) < 0)
		_exit(125);
	_exit(125);
}

static int
child_main(void *arg)
{
	child(arg);
}

#if defined(__SANITIZE_ADDRESS__)
#define SHARE_VM_OK 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHARE_VM_OK 0
#endif
#endif
#ifndef SHARE_VM_OK
#define SHARE_VM_OK 1
#endif

/*
 * fork(), or where the engine allows it (rpc_engine_share_memory) a clone
 * that shares our memory until the child execs: no page tables copied at
 * fork and none torn down again at execve, most of what a fork costs a
 * server. The child runs on e->stack and writes only there; the parent,
 * blocked in await_exec() with its signals blocked, touches nothing the
 * child reads until it has exec'd or is dead, so the next child can reuse
 * the stack. Under AddressSanitizer (its shadow of the shared stack would
 * carry one child's poison into the next), or where clone refuses the
 * flags (valgrind: EINVAL), it is fork.
 */
static pid_t
spawn(struct rpc_engine *e, const struct child_args *a)
{
	if (SHARE_VM_OK && e->share_vm) {
		pid_t pid = clone(child_main, (char *)e->stack + CHILD_STACK, CLONE_VM | SIGCHLD,
				  (void *)a);
		if (pid >= 0 || errno != EINVAL)
			return pid;
		e->share_vm = false;
		ws_log(WS_LOG_INFO, "exec spawn=fork reason=\"clone(CLONE_VM) refused\"");
	}
	pid_t pid = fork();
	if (pid == 0)
		child(a);
	return pid;
}

/*
 * Waits for the child to exec (the status pipe closes: 0) or to report a
 * set-up error (its length), without trusting it to get there: between its
 * privilege drop and execve, another command of the same user may stop it
 * (kill(-1, SIGSTOP)), and the loop must not wait on a stopped child. One
 * found stopped, or not started within START_TIMEOUT_MS, is killed: -1,
 * with *why saying so.
 */
static ssize_t
await_exec(pid_t pid, int fd, char *msg, size_t cap, const char **why)
{
	uint64_t deadline = ws_clock_mono_ms() + START_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, START_POLL_MS);
		if (r > 0) {
			ssize_t n;
			do
				n = read(fd, msg, cap - 1);
			while (n < 0 && errno == EINTR);
			if (n >= 0)
				return n;
			*why = "the command's status pipe failed";
			break;
		}
		if (r < 0 && errno != EINTR) {
			*why = "the command's status pipe failed";
			break;
		}
		siginfo_t si = { 0 };
		if (waitid(P_PID, pid, &si, WSTOPPED | WNOHANG | WNOWAIT) == 0 &&
		    si.si_pid == pid) {
			*why = "the command was stopped before it started";
			break;
		}
		if (ws_clock_mono_ms() >= deadline) {
			*why = "the command did not start in time";
			break;
		}
	}
	kill(pid, SIGKILL);
	return -1;
}

/* A pty pair: tty[0] the master, tty[1] the slave, both close-on-exec, sized cols x rows. */
static int
open_pty(int tty[2], uint16_t cols, uint16_t rows)
{
	char name[64];
	tty[0] = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (tty[0] < 0)
		return -1;
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	if (grantpt(tty[0]) != 0 || unlockpt(tty[0]) != 0 ||
	    ptsname_r(tty[0], name, sizeof(name)) != 0 ||
	    (tty[1] = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
	    ioctl(tty[0], TIOCSWINSZ, &ws) != 0) {
		int en = errno;
		close_pair(tty);
		tty[0] = tty[1] = -1;
		errno = en;
		return -1;
	}
	return 0;
}

struct rpc_exec *
rpc_exec_start(struct rpc_engine *e, const struct rpc_exec_spec *spec,
	       const struct rpc_exec_ops *ops, void *arg, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 }, st[2] = { -1, -1 };
	int tty[2] = { -1, -1 }; /* master, slave */
	uint64_t t_begin = now_us();
	/* no input to give: /dev/null, not a pipe and a watch closed at once */
	bool want_in = spec->stdin_len || spec->stdin_open;
	struct rpc_exec *x = calloc(1, sizeof(*x));
	if (!x ||
	    (spec->pty ? open_pty(tty, spec->cols, spec->rows) != 0
		       : (want_in && pipe2(in, O_CLOEXEC)) || pipe2(out, O_CLOEXEC) ||
				 pipe2(er, O_CLOEXEC)) ||
	    pipe2(st, O_CLOEXEC)) {
		snprintf(err, errlen, "cannot create %s: %s", spec->pty ? "a pty" : "pipes",
			 strerror(errno));
		goto fail;
	}
	if (!(x->timer = ws_timer_create(e->srv, on_timer, x))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* blocked until the child has exec'd: nothing of ours runs while it may share our memory */
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	struct child_args ca = {
		.e = e,
		.spec = spec,
		.in = in[0] >= 0 ? in[0] : e->devnull,
		.out = out[1],
		.err = er[1],
		.tty = tty[1],
		.status_fd = st[1],
	};
	pid_t pid = spawn(e, &ca);
	int fork_errno = errno;
	uint64_t t_spawned = now_us();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		snprintf(err, errlen, "fork: %s", strerror(fork_errno));
		goto fail;
	}

	close_pair((int[2]){ in[0], out[1] });
	close_pair((int[2]){ er[1], st[1] });
	/* a pty's slave stays open here until the command is reaped (rpc_exec.pty_slave) */
	int slave = tty[1];
	in[0] = out[1] = er[1] = st[1] = tty[1] = -1;

	/* set-up errors come back on the status pipe; exec closes it (CLOEXEC) */
	char msg[256];
	const char *why = NULL;
	ssize_t n = await_exec(pid, st[0], msg, sizeof(msg), &why);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(st[0]);
	st[0] = -1;
	if (n != 0) {
		if (n > 0)
			msg[n] = '\0';
		snprintf(err, errlen, "%s", n > 0 ? msg : why);
		waitpid(pid, NULL, 0);
		close_pair((int[2]){ slave, -1 });
		goto fail;
	}

	*x = (struct rpc_exec){
		.eng = e,
		.ops = ops,
		.arg = arg,
		.pid = pid,
		.timer = x->timer,
		.max_output = spec->max_output,
		.started_ms = ws_clock_mono_ms(),
		.pty = spec->pty,
		.pty_fd = -1,
		.pty_slave = slave,
		.t_begin = t_begin,
		.t_spawned = t_spawned,
		.t_execed = now_us(),
	};
	ws_list_insert(&e->list, &x->link);
	e->running++;

	if (spec->pty) {
		/* one descriptor both ways; stdin writes through its own copy (one watch per fd) */
		out[0] = tty[0];
		in[1] = fcntl(tty[0], F_DUPFD_CLOEXEC, 0);
		x->pty_fd = tty[0];
		tty[0] = -1;
	}
	set_nonblock(out[0]);
	if (er[0] >= 0)
		set_nonblock(er[0]);
	if (in[1] >= 0)
		set_nonblock(in[1]);
	x->ref[RPC_STDOUT] = (struct stream_ref){ x, RPC_STDOUT };
	x->ref[RPC_STDERR] = (struct stream_ref){ x, RPC_STDERR };
	x->out[RPC_STDOUT] = ws_watch_create(e->srv, out[0], on_output, &x->ref[RPC_STDOUT]);
	if (er[0] >= 0)
		x->out[RPC_STDERR] = ws_watch_create(e->srv, er[0], on_output, &x->ref[RPC_STDERR]);
	if (!x->out[RPC_STDOUT])
		x->pty_fd = -1;
	x->in_fd = in[1];
	x->in = in[1] >= 0 ? ws_watch_create(e->srv, in[1], on_stdin, x) : NULL;
	if (x->in)
		ws_watch_read(x->in, false);
	if (spec->stdin_len)
		ws_buf_append(&x->pending_in, spec->stdin_data, spec->stdin_len);
	/* a terminal's input stays open: it is the keyboard */
	x->in_eof = !spec->stdin_open && !spec->pty;
	write_stdin(x);
	if (spec->timeout_ms)
		ws_timer_arm(x->timer, spec->timeout_ms);
	return x;
fail:
	close_pair(in);
	close_pair(out);
	close_pair(er);
	close_pair(st);
	close_pair(tty);
	if (x)
		ws_timer_destroy(x->timer);
	free(x);
	return NULL;
}

pid_t
rpc_exec_pid(const struct rpc_exec *x)
{
	return x->pid;
}

uint64_t
rpc_exec_elapsed_ms(const struct rpc_exec *x)
{
	return ws_clock_mono_ms() - x->started_ms;
}

int
rpc_exec_stdin(struct rpc_exec *x, const uint8_t *data, size_t len, bool eof)
{
	if (!x->in || x->in_eof)
		return -EPIPE;
	if (x->pending_in.len + len + 1 > STDIN_MAX)
		return -ENOSPC;
	if (len && !ws_buf_append(&x->pending_in, data, len))
		return -ENOMEM;
	/* a terminal has no end of input to close: its program reads ^D as one */
	if (eof && x->pty && !ws_buf_append(&x->pending_in, "\x04", 1))
		return -ENOMEM;
	if (eof && !x->pty)
		x->in_eof = true;
	write_stdin(x);
	return 0;
}

int
rpc_exec_resize(struct rpc_exec *x, uint16_t cols, uint16_t rows)
{
	if (!x->pty)
		return -ENOTTY;
	if (x->pty_fd < 0)
		return -ESRCH;
	struct winsize ws = { .ws_row = rows, .ws_col = cols };
	return ioctl(x->pty_fd, TIOCSWINSZ, &ws) == 0 ? 0 : -errno;
}

int
rpc_exec_kill(struct rpc_exec *x, int sig)
{
	if (x->phase == EXITED)
		return -ESRCH;
	return kill(-x->pid, sig) == 0 ? 0 : -errno;
}

void
rpc_exec_pause(struct rpc_exec *x, bool paused)
{
	if (x->paused == paused)
		return;
	x->paused = paused;
	for (int s = RPC_STDOUT; s <= RPC_STDERR; s++) {
		if (x->out[s])
			ws_watch_read(x->out[s], !paused);
	}
}

void
rpc_exec_abandon(struct rpc_exec *x, bool kill_now)
{
	x->abandoned = true;
	rpc_exec_pause(x, false);
	if (kill_now && x->phase != EXITED)
		kill(-x->pid, SIGKILL);
}
