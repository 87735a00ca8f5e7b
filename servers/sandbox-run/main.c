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

#define PROG "ws-sandbox-run"
#define EXIT_TIMEOUT 124
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " [OPTION...] [--] COMMAND [ARG...]\n"
		"Runs COMMAND under the sandbox ws-rpc applies to every command: a new\n"
		"session, no inherited descriptors, rlimits, optional namespaces, an\n"
		"optional unprivileged user, no_new_privs and a seccomp filter.\n"
		"\n"
		"  --profile P      seccomp profile: default, nonet or none (default)\n"
		"  --policy FILE    policy file layered over the profile (docs/security.md)\n"
		"  --cpu S          CPU seconds, then SIGXCPU (%d; 0 keeps the inherited limit)\n"
		"  --as BYTES       address space, k/m/g suffixes (4g; 0 keeps)\n"
		"  --nproc N        processes of the command (%d; 0 keeps): its own pids\n"
		"                   cgroup when one is writable, and RLIMIT_NPROC\n"
		"  --fsize BYTES    largest file written, then SIGXFSZ (1g; 0 keeps)\n"
		"  --nofile N       open descriptors (%d; 0 keeps)\n"
		"  --run-as USER    run as USER and its groups (as root the default is\n"
		"                   " WS_SANDBOX_DEFAULT_USER
		", which must exist; without root: yourself)\n"
		"  --run-as-self    as root, keep root (commands can then reach the caller)\n"
		"  --isolate LIST   namespaces, comma-separated: net,pid,mount,user\n"
		"  --timeout S      then SIGTERM to the command's process group (0: none;\n"
		"                   at least 0.001)\n"
		"  --grace S        after the timeout's SIGTERM, SIGKILL (default 2)\n"
		"  --check          print the filter's rules and exit\n"
		"  -h, --help       this text\n"
		"      --version    the version\n"
		"\n"
		"Exit status: the command's; 128+N when signal N ended it; 124 after\n"
		"--timeout; 126 or 127 when COMMAND cannot be run or is not found; 100 for\n"
		"a usage error; 111 when the sandbox could not be set up (nothing ran).\n",
		WS_SANDBOX_DEFAULT_CPU_S, WS_SANDBOX_DEFAULT_NPROC, WS_SANDBOX_DEFAULT_NOFILE);
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

struct options {
	struct ws_sandbox_config sandbox;
	uint32_t timeout_ms;
	uint32_t grace_ms;
	bool check;
};

enum {
	OPT_PROFILE = 256,
	OPT_POLICY,
	OPT_CPU,
	OPT_AS,
	OPT_NPROC,
	OPT_FSIZE,
	OPT_NOFILE,
	OPT_RUN_AS,
	OPT_RUN_AS_SELF,
	OPT_ISOLATE,
	OPT_TIMEOUT,
	OPT_GRACE,
	OPT_CHECK,
	OPT_VERSION,
};

/* Returns the index of COMMAND in argv, or -1 after printing why (usage). */
static int
parse(struct options *o, int argc, char **argv, bool *exit_ok)
{
	static const struct option longopts[] = {
		{ "profile", required_argument, NULL, OPT_PROFILE },
		{ "seccomp-profile", required_argument, NULL, OPT_PROFILE },
		{ "policy", required_argument, NULL, OPT_POLICY },
		{ "seccomp-policy", required_argument, NULL, OPT_POLICY },
		{ "cpu", required_argument, NULL, OPT_CPU },
		{ "as", required_argument, NULL, OPT_AS },
		{ "nproc", required_argument, NULL, OPT_NPROC },
		{ "fsize", required_argument, NULL, OPT_FSIZE },
		{ "nofile", required_argument, NULL, OPT_NOFILE },
		{ "run-as", required_argument, NULL, OPT_RUN_AS },
		{ "run-as-self", no_argument, NULL, OPT_RUN_AS_SELF },
		{ "isolate", required_argument, NULL, OPT_ISOLATE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	ws_sandbox_config_defaults(&o->sandbox);
	o->timeout_ms = 0;
	o->grace_ms = 2000;
	o->check = false;
	*exit_ok = false;

	int c, idx = 0;
	opterr = 0;
	/* '+': stop at COMMAND, so its own options stay its own */
	while ((c = getopt_long(argc, argv, "+h", longopts, &idx)) != -1) {
		uint64_t v;
		bool ok = true;
		switch (c) {
		case OPT_PROFILE:
			ok = ws_sandbox_profile_parse(optarg, &o->sandbox.profile);
			break;
		case OPT_POLICY:
			o->sandbox.policy_file = optarg;
			break;
		case OPT_CPU:
			ok = ws_config_parse_uint(optarg, &v) && v <= 86400 * 365;
			o->sandbox.limits.cpu_s = (uint32_t)v;
			break;
		case OPT_AS:
			ok = ws_config_parse_size(optarg, &o->sandbox.limits.as_bytes);
			break;
		case OPT_NPROC:
			ok = ws_config_parse_uint(optarg, &v) && v <= 1u << 22;
			o->sandbox.limits.nproc = (uint32_t)v;
			break;
		case OPT_FSIZE:
			ok = ws_config_parse_size(optarg, &o->sandbox.limits.fsize_bytes);
			break;
		case OPT_NOFILE:
			/* 0 keeps the inherited limit; below 3 not even stdio fits */
			ok = ws_config_parse_uint(optarg, &v) && v <= 1u << 20 &&
			     (v == 0 || v >= 3);
			o->sandbox.limits.nofile = (uint32_t)v;
			break;
		case OPT_RUN_AS:
			o->sandbox.run_as = optarg;
			ok = *optarg != '\0';
			break;
		case OPT_RUN_AS_SELF:
			o->sandbox.run_as_self = true;
			break;
		case OPT_ISOLATE:
			ok = ws_sandbox_isolate_parse(optarg, &o->sandbox.isolate);
			break;
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
				complain("unknown option or missing value '%s' (try --help)",
					 argv[optind - 1]);
			return -1;
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
print_policy(const struct ws_sandbox *sb, const struct options *o)
{
	const struct ws_policy *p = ws_sandbox_policy(sb);
	const char *why = NULL;
	const char *cg = ws_sandbox_pids_cgroup(sb, &why);
	const char *user = ws_sandbox_user(sb);
	printf("# profile %s, backend %s\n", ws_sandbox_profile_name(o->sandbox.profile),
	       ws_sandbox_backend_name(sb));
	if (!user)
		user = ws_sandbox_runs_as_root(sb) ? "root (the caller's)" : "the caller's";
	printf("# user %s\n", user);
	if (cg)
		printf("# pids cgroup %s\n", cg);
	else
		printf("# pids cgroup none (%s)\n", why);
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
	struct ws_sandbox *sb = NULL;
	int rc = ws_sandbox_create(&sb, &o.sandbox, err, sizeof(err));
	if (rc != 0) {
		complain("%s", err);
		/* a bad policy file, path or user is the operator's to fix */
		/* a missing user is the machine's set-up: no retry will fix it (s6: 100) */
		bool usage_error = rc == -EINVAL || rc == -ENOENT || rc == -EPERM || rc == -ESRCH;
		return usage_error ? WS_EXIT_USAGE : WS_EXIT_SYSTEM;
	}
	int status = WS_EXIT_SYSTEM;
	int sigfd = -1, report[2] = { -1, -1 };
	if (o.check) {
		print_policy(sb, &o);
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
