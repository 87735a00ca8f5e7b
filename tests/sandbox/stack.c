/*
 * sandbox-stack: what ws-rpc does with the sandbox library, in a few lines,
 * so that tests/sandbox can check the RPC self-confinement and the command
 * sandbox stacked under it. It confines itself with ws-rpc's rules (the
 * dangerous set denied, told about the children's sandbox), prints what its own ptrace and unshare
 * now return, then runs COMMAND under the command sandbox and exits with
 * its status (128+N after signal N; 111 when the sandbox failed).
 *
 *   sandbox-stack [--profile P] [--policy FILE] [--isolate LIST] [--run-as USER]
 *                 -- COMMAND...
 */
#define _GNU_SOURCE /* unshare */

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "sandbox_child.h"
#include "sandbox_self.h"

static const char *
outcome(long r)
{
	return r == 0 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno);
}

int
main(int argc, char **argv)
{
	struct ws_sandbox_config cfg;
	ws_sandbox_config_defaults(&cfg);
	int i = 1;
	for (; i + 1 < argc && strcmp(argv[i], "--") != 0; i += 2) {
		bool ok = true;
		if (strcmp(argv[i], "--profile") == 0)
			ok = ws_sandbox_profile_parse(argv[i + 1], &cfg.profile);
		else if (strcmp(argv[i], "--isolate") == 0)
			ok = ws_sandbox_isolate_parse(argv[i + 1], &cfg.isolate);
		else if (strcmp(argv[i], "--run-as") == 0)
			cfg.run_as = argv[i + 1];
		else if (strcmp(argv[i], "--policy") == 0)
			cfg.policy_file = argv[i + 1];
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "sandbox-stack: bad option %s\n", argv[i]);
			return 100;
		}
	}
	if (i >= argc || strcmp(argv[i], "--") != 0 || i + 1 >= argc) {
		fprintf(stderr,
			"usage: sandbox-stack [--profile P] [--policy FILE] [--isolate LIST] "
			"[--run-as USER] -- CMD...\n");
		return 100;
	}
	char **cmd = argv + i + 1;

	char err[256];
	struct ws_sandbox *sb;
	if (ws_sandbox_create(&sb, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "sandbox-stack: %s\n", err);
		return 111;
	}
	static const enum ws_policy_set sets[] = { WS_POLICY_SET_DANGEROUS };
	static const struct ws_sandbox_self self = {
		.name = "rpc",
		.default_action = WS_POLICY_ALLOW,
		.sets = sets,
		.nsets = 1,
	};
	if (ws_sandbox_confine_self(&self, sb, err, sizeof(err)) != 0) {
		fprintf(stderr, "sandbox-stack: confine: %s\n", err);
		return 111;
	}
	/* pid 0 does not exist: ESRCH when the call gets through */
	printf("self ptrace=%s\n", outcome(ptrace(PTRACE_SEIZE, 0, NULL, NULL)));
	printf("self syslog=%s\n", outcome(syscall(SYS_syslog, 10, NULL, 0)));
	/* no child isolation uses CLONE_NEWUTS: denied even with --isolate */
	printf("self unshare-uts=%s\n", outcome(unshare(CLONE_NEWUTS)));
	fflush(stdout);

	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return 111;
	if (pid == 0) {
		struct ws_sandbox_failure why;
		if (ws_sandbox_child_apply(sb, parent, -1, &why) == 0)
			execvp(cmd[0], cmd);
		_exit(111);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 111;
	ws_sandbox_destroy(sb);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
