/*
 * sandbox_child: the command sandbox applied in the child, between fork and
 * exec. It may only make system calls on what ws_sandbox_create() prepared
 * in the parent: no allocation, no stdio, no locks, nothing that reads a
 * file through libc (/etc/passwd, /etc/group), so that it is safe after
 * fork() in a single-threaded program. Whatever needs more belongs in
 * sandbox.c, done once before the first fork.
 */
#ifndef WS_SANDBOX_CHILD_H
#define WS_SANDBOX_CHILD_H

#include <sys/types.h>

#include "sandbox.h"

/*
 * Applies the sandbox to the calling process, which must be a child just
 * forked from `parent` (the caller's getpid() before fork) by a
 * single-threaded program. In order:
 *
 *   reset signal dispositions and mask; join a pids cgroup of its own
 *   (when the sandbox has one); setsid(); close every descriptor
 *   but 0, 1, 2 and keep_fd (-1: none; it gets FD_CLOEXEC, so exec closes
 *   it: a pipe to report a failure on); PR_SET_PDEATHSIG(SIGKILL); the
 *   rlimits; the isolation namespaces; the privilege drop (setgroups,
 *   setresgid, setresuid, then setuid(0) must fail); PR_SET_NO_NEW_PRIVS;
 *   the seccomp filter.
 *
 * With WS_SANDBOX_ISOLATE_PID the call forks once more: the process that
 * called it stays outside the new namespace, forwards signals and exits
 * with the command's status (never returning), and the call returns in
 * the child, PID 1 of the namespace.
 *
 * Returns 0: exec now. Or -errno with *why filled: the caller must not exec
 * and should report *why, then _exit().
 */
int ws_sandbox_child_apply(const struct ws_sandbox *sb, pid_t parent, int keep_fd,
			   struct ws_sandbox_failure *why);

#endif
