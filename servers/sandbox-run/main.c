/*
 * ws-sandbox-run: runs one command under exactly the sandbox ws-rpc gives
 * its commands, so that an operator can try a profile, a policy file or a
 * set of limits before deploying them. It waits for the command, kills
 * whatever the command left behind (its process group, and any orphan: the
 * tool is a child subreaper), and exits with the command's status.
 */
#define _GNU_SOURCE /* signalfd, PR_SET_CHILD_SUBREAPER, pipe2 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "sandbox.h"
#include "sandbox_child.h"

#define PROG "ws-sandbox-run"
#define EXIT_TIMEOUT 124
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

struct options {
	struct ws_sandbox_options sandbox;
	uint32_t timeout_ms;
	uint32_t grace_ms;
	bool check;
};

/*
 * This tool's names from before the sandbox's flags were one table with
 * ws-rpc's: docs/security.md and tests/sandbox use them.
 */
static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "profile", "seccomp-profile" }, { "policy", "seccomp-policy" },
	{ "cpu", "limit-cpu" },           { "as", "limit-as" },
	{ "nproc", "limit-nproc" },       { "fsize", "limit-fsize" },
	{ "nofile", "limit-nofile" },
};

#define NALIASES (sizeof(aliases) / sizeof(aliases[0]))

/* The sandbox's rows (ws-rpc's too), pointing into struct options. */
static void
sandbox_rows(struct ws_option rows[WS_SANDBOX_OPTIONS])
{
	ws_sandbox_options_rows(rows, WS_SANDBOX_OPTIONS, offsetof(struct options, sandbox));
}

/* A row's default for --help ("" when it has none to show). */
static const char *
default_text(const struct ws_option *row, const struct options *dflt, char *buf, size_t len)
{
	const void *v = (const char *)dflt + row->offset;
	uint64_t n;
	switch (row->type) {
	case WS_OPT_STRING:
		return *(const char *const *)v ? *(const char *const *)v : "";
	case WS_OPT_UINT:
		snprintf(buf, len, "%u", (unsigned)*(const uint32_t *)v);
		return buf;
	case WS_OPT_SIZE:
		n = *(const uint64_t *)v;
		if (n && n % (1ull << 30) == 0)
			snprintf(buf, len, "%llug", (unsigned long long)(n >> 30));
		else if (n && n % (1ull << 20) == 0)
			snprintf(buf, len, "%llum", (unsigned long long)(n >> 20));
		else
			snprintf(buf, len, "%llu", (unsigned long long)n);
		return buf;
	default:
		return "";
	}
}

static void
usage(FILE *out)
{
	struct ws_option rows[WS_SANDBOX_OPTIONS];
	sandbox_rows(rows);
	struct options dflt;
	ws_sandbox_options_defaults(&dflt.sandbox);
	fprintf(out, "usage: " PROG " [OPTION...] [--] COMMAND [ARG...]\n"
		     "Runs COMMAND under the sandbox ws-rpc applies to every command: a new\n"
		     "session, no inherited descriptors, rlimits, optional namespaces, an\n"
		     "optional unprivileged user, no_new_privs and a seccomp filter. The\n"
		     "sandbox's flags are ws-rpc's (shorter names in brackets).\n"
		     "\n");
	for (size_t i = 0; i < WS_SANDBOX_OPTIONS; i++) {
		const struct ws_option *row = &rows[i];
		const char *arg = row->arg ? row->arg : "";
		fprintf(out, "  --%s%s%s", row->name, *arg ? " " : "", arg);
		for (size_t a = 0; a < NALIASES; a++)
			if (strcmp(aliases[a].name, row->name) == 0)
				fprintf(out, " (--%s%s%s)", aliases[a].alias, *arg ? " " : "", arg);
		char buf[32];
		const char *d = default_text(row, &dflt, buf, sizeof(buf));
		fprintf(out, "\n      %s%s%s%s\n", row->help, *d ? " [" : "", d, *d ? "]" : "");
	}
	fprintf(out, "  --timeout S\n"
		     "      then SIGTERM to the command's process group (0: none; at least 0.001)\n"
		     "  --grace S\n"
		     "      after the timeout's SIGTERM, SIGKILL [2]\n"
		     "  --check\n"
		     "      print the filter's rules and exit\n"
		     "  -h, --help\n"
		     "      this text\n"
		     "  --version\n"
		     "      the version\n"
		     "\n"
		     "Exit status: the command's; 128+N when signal N ended it; 124 after\n"
		     "--timeout; 126 or 127 when COMMAND cannot be run or is not found; 100 for\n"
		     "a usage error; 111 when the sandbox could not be set up (nothing ran).\n");
}

__attribute__((format(printf, 1, 2))) static void
complain(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Stores one value of a sandbox row; false when it is malformed or out of bounds. */
static bool
set(const struct ws_option *row, struct options *o, const char *v)
{
	void *dst = (char *)o + row->offset;
	uint64_t n;
	switch (row->type) {
	case WS_OPT_STRING:
		if (row->check && !row->check(v))
			return false;
		*(const char **)dst = v;
		return true;
	case WS_OPT_FLAG:
		*(bool *)dst = true;
		return true;
	case WS_OPT_UINT:
		if (!ws_config_parse_uint(v, &n) || n < row->min || n > row->max)
			return false;
		*(uint32_t *)dst = (uint32_t)n;
		return true;
	case WS_OPT_SIZE:
		if (!ws_config_parse_size(v, &n) || n < row->min || n > row->max)
			return false;
		*(uint64_t *)dst = n;
		return true;
	default:
		/* the sandbox's table has no other kind */
		return false;
	}
}

enum {
	OPT_TIMEOUT = 256,
	OPT_GRACE,
	OPT_CHECK,
	OPT_VERSION,
	OPT_ROW = 1000, /* + the sandbox row's index */
};

/* Returns the index of COMMAND in argv, or -1 after printing why (usage). */
static int
parse(struct options *o, int argc, char **argv, bool *exit_ok)
{
	struct ws_option rows[WS_SANDBOX_OPTIONS];
	sandbox_rows(rows);
	struct option longopts[WS_SANDBOX_OPTIONS + NALIASES + 6];
	size_t k = 0;
	for (size_t i = 0; i < WS_SANDBOX_OPTIONS; i++)
		longopts[k++] = (struct option){ rows[i].name,
						 rows[i].type == WS_OPT_FLAG ? no_argument
									     : required_argument,
						 NULL, OPT_ROW + (int)i };
	for (size_t a = 0; a < NALIASES; a++)
		for (size_t i = 0; i < WS_SANDBOX_OPTIONS; i++)
			if (strcmp(aliases[a].name, rows[i].name) == 0)
				longopts[k++] = (struct option){ aliases[a].alias,
								 required_argument, NULL,
								 OPT_ROW + (int)i };
	longopts[k++] = (struct option){ "timeout", required_argument, NULL, OPT_TIMEOUT };
	longopts[k++] = (struct option){ "grace", required_argument, NULL, OPT_GRACE };
	longopts[k++] = (struct option){ "check", no_argument, NULL, OPT_CHECK };
	longopts[k++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[k++] = (struct option){ "version", no_argument, NULL, OPT_VERSION };
	longopts[k] = (struct option){ NULL, 0, NULL, 0 };

	ws_sandbox_options_defaults(&o->sandbox);
	o->timeout_ms = 0;
	o->grace_ms = 2000;
	o->check = false;
	*exit_ok = false;

	int c, idx = 0;
	opterr = 0;
	/* '+': stop at COMMAND, so its own options stay its own */
	while ((c = getopt_long(argc, argv, "+h", longopts, &idx)) != -1) {
		bool ok = true;
		if (c >= OPT_ROW && c < OPT_ROW + WS_SANDBOX_OPTIONS) {
			ok = set(&rows[c - OPT_ROW], o, optarg);
		} else {
			switch (c) {
			case OPT_TIMEOUT:
				/* a positive time that rounds to 0 ms must not mean "none" */
				ok = ws_config_parse_seconds(optarg, &o->timeout_ms) &&
				     (o->timeout_ms > 0 || strtod(optarg, NULL) == 0);
				break;
			case OPT_GRACE:
				ok = ws_config_parse_seconds(optarg, &o->grace_ms);
				break;
			case OPT_CHECK:
				o->check = true;
				break;
			case 'h':
				usage(stdout);
				*exit_ok = true;
				return -1;
			case OPT_VERSION:
				printf(PROG " %s\n", WS_VERSION);
				*exit_ok = true;
				return -1;
			default:
				if (optopt && optopt < 256)
					complain("unknown option '-%c' (try --help)", optopt);
				else
					complain(
						"unknown option or missing value '%s' (try --help)",
						argv[optind - 1]);
				return -1;
			}
		}
		if (!ok) {
			complain("bad value '%s' for --%s (try --help)", optarg,
				 longopts[idx].name);
			return -1;
		}
	}
	if (!o->check && optind >= argc) {
		complain("no command given (try --help)");
		return -1;
	}
	return optind;
}

static void
print_policy(const struct ws_sandbox *sb, const struct ws_sandbox_config *cfg)
{
	const struct ws_policy *p = ws_sandbox_policy(sb);
	const char *why = NULL;
	const char *cg = ws_sandbox_pids_cgroup(sb, &why);
	const char *user = ws_sandbox_user(sb);
	printf("# profile %s, backend %s\n", ws_sandbox_profile_name(cfg->profile),
	       ws_sandbox_backend_name(sb));
	if (!user)
		user = ws_sandbox_runs_as_root(sb) ? "root (the caller's)" : "the caller's";
	printf("# user %s\n", user);
	if (cg)
		printf("# pids cgroup %s\n", cg);
	else
		printf("# pids cgroup none (%s)\n", why);
	if ((cg = ws_sandbox_mem_cgroup(sb, &why)))
		printf("# memory cgroup %s\n", cg);
	else
		printf("# memory cgroup none (%s)\n", why);
	uint64_t shm = ws_sandbox_shm(sb, &why);
	if (shm)
		printf("# /dev/shm private, %llu bytes\n", (unsigned long long)shm);
	else
		printf("# /dev/shm the caller's (%s)\n", why);
	if (!p) {
		printf("# no filter: every system call is allowed\n");
		return;
	}
	printf("# default: %s; other architectures: kill\n",
	       p->default_action == WS_POLICY_ALLOW ? "allow" : "kill");
	char line[200];
	for (size_t i = 0; i < p->n; i++)
		if (p->rules[i].nr >= 0)
			printf("%s\n", ws_policy_rule_format(&p->rules[i], line, sizeof(line)));
}

/*
 * Kills the command's process group and every process left under this
 * subreaper, and reaps them all. Orphans of the killed reach us in turn,
 * so repeat until there is no child left.
 */
static void
kill_leftovers(pid_t group)
{
	for (;;) {
		kill(-group, SIGKILL);
		pid_t kids[256];
		size_t n = ws_sandbox_children(kids, 256);
		for (size_t i = 0; i < n; i++)
			kill(kids[i], SIGKILL);
		pid_t r;
		while ((r = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (r < 0 && errno == ECHILD)
			return;
		r = waitpid(-1, NULL, 0);
		if (r < 0 && errno == ECHILD)
			return;
	}
}

static void
child(const struct ws_sandbox *sb, pid_t parent, int report, char **cmd)
{
	struct ws_sandbox_failure why;
	if (ws_sandbox_child_apply(sb, parent, report, &why) == 0) {
		execvp(cmd[0], cmd);
		why = (struct ws_sandbox_failure){ WS_SANDBOX_STEP_EXEC, errno };
	}
	/* one small write is atomic on a pipe */
	ssize_t w = write(report, &why, sizeof(why));
	(void)w;
	_exit(why.step == WS_SANDBOX_STEP_EXEC ? EXIT_CANNOT_EXEC : WS_EXIT_SYSTEM);
}

/* Waits for the command, forwarding signals and enforcing the timeout. */
static int
supervise(pid_t pid, int sigfd, const struct options *o, bool *timed_out)
{
	int64_t deadline = o->timeout_ms ? (int64_t)ws_clock_mono_ms() + o->timeout_ms : -1;
	bool termed = false;
	for (;;) {
		int wait_ms = -1;
		if (deadline >= 0) {
			int64_t left = deadline - (int64_t)ws_clock_mono_ms();
			if (left <= 0) {
				if (!termed) {
					*timed_out = true;
					termed = true;
					kill(-pid, SIGTERM);
					deadline = (int64_t)ws_clock_mono_ms() + o->grace_ms;
				} else {
					kill(-pid, SIGKILL);
					deadline = -1;
				}
				continue;
			}
			wait_ms = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd pfd = { .fd = sigfd, .events = POLLIN };
		int r = poll(&pfd, 1, wait_ms);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		struct signalfd_siginfo si;
		if (read(sigfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			/* the command has its own session: pass the signal on */
			kill(-pid, (int)si.ssi_signo);
			continue;
		}
		int status;
		pid_t got;
		while ((got = waitpid(-1, &status, WNOHANG)) > 0)
			if (got == pid)
				return status;
		if (got < 0 && errno == ECHILD)
			return -ECHILD;
	}
}

int
main(int argc, char **argv)
{
	struct options o;
	bool exit_ok;
	int first = parse(&o, argc, argv, &exit_ok);
	if (first < 0)
		return exit_ok ? WS_EXIT_OK : WS_EXIT_USAGE;
	char **cmd = argv + first;

	char err[512] = "";
	struct ws_sandbox_config cfg;
	struct ws_sandbox *sb = NULL;
	int rc = ws_sandbox_options_config(&o.sandbox, &cfg, err, sizeof(err));
	if (rc == 0)
		rc = ws_sandbox_create(&sb, &cfg, err, sizeof(err));
	if (rc != 0) {
		complain("%s", err);
		return ws_sandbox_exit_status(rc);
	}
	int status = WS_EXIT_SYSTEM;
	int sigfd = -1, report[2] = { -1, -1 };
	if (o.check) {
		print_policy(sb, &cfg);
		status = WS_EXIT_OK;
		goto out;
	}
	if (!ws_sandbox_policy(sb))
		complain("warning: profile none: no seccomp filter");
	if (ws_sandbox_runs_as_root(sb))
		complain("warning: --run-as-self: the command runs as root");

	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		complain("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
		goto out;
	}
	/* signals become reads on sigfd; the child unblocks them again */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (sigfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0) {
		complain("signalfd: %s", strerror(errno));
		goto out;
	}
	if (pipe2(report, O_CLOEXEC) != 0) {
		complain("pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		complain("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(sb, parent, report[1], cmd);
	close(report[1]);
	report[1] = -1;

	/* EOF: the command was executed (the pipe is close-on-exec) */
	struct ws_sandbox_failure why;
	ssize_t n;
	while ((n = read(report[0], &why, sizeof(why))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(why)) {
		char msg[256];
		if (why.step == WS_SANDBOX_STEP_EXEC) {
			complain("%s: %s", cmd[0], strerror(why.err));
			status = why.err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
		} else {
			ws_sandbox_failure_format(&why, msg, sizeof(msg));
			complain("sandbox: %s (nothing was run)", msg);
			status = WS_EXIT_SYSTEM;
		}
		kill_leftovers(pid);
		goto out;
	}

	bool timed_out = false;
	int ws = supervise(pid, sigfd, &o, &timed_out);
	kill_leftovers(pid);
	if (ws < 0) {
		complain("waiting for the command: %s", strerror(-ws));
		status = WS_EXIT_SYSTEM;
	} else if (timed_out) {
		complain("timed out after %u.%03u s", o.timeout_ms / 1000, o.timeout_ms % 1000);
		status = EXIT_TIMEOUT;
	} else if (WIFEXITED(ws)) {
		status = WEXITSTATUS(ws);
	} else {
		status = 128 + WTERMSIG(ws);
	}
out:
	if (report[0] >= 0)
		close(report[0]);
	if (report[1] >= 0)
		close(report[1]);
	if (sigfd >= 0)
		close(sigfd);
	ws_sandbox_destroy(sb);
	return status;
}
