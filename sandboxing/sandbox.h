/*
 * sandbox: the one interface to confining processes, shaped like OpenSSH's
 * (one API, a seccomp backend and a null backend for the `none` profile).
 *
 * Commands (ws-rpc's exec, ws-sandbox-run):
 *
 *   parent:  ws_sandbox_create()     resolves the user, compiles the filter
 *            fork()
 *   child:   ws_sandbox_child_apply() then, only if it returned 0, exec
 *   parent:  ws_sandbox_destroy()     when no more commands will start
 *
 * Servers: ws_sandbox_confine_self() once listening (the ws_app.confine hook).
 *
 * Everything that allocates or reads files happens in ws_sandbox_create();
 * the child side makes system calls only, so it is safe after fork() in a
 * single-threaded program. docs/security.md describes every layer.
 */
#ifndef WS_SANDBOX_H
#define WS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

enum ws_sandbox_profile {
	WS_SANDBOX_DEFAULT, /* allow, except WS_POLICY_SET_DANGEROUS (EPERM) */
	WS_SANDBOX_NONET,   /* default, plus no socket but AF_UNIX */
	WS_SANDBOX_NONE,    /* no filter (the null backend) unless a policy file adds one */
};

/* --isolate: namespaces entered before the filter. */
enum {
	WS_SANDBOX_ISOLATE_NET = 1 << 0,   /* a private network: loopback only, up */
	WS_SANDBOX_ISOLATE_PID = 1 << 1,   /* the command is PID 1 of its own tree */
	WS_SANDBOX_ISOLATE_MOUNT = 1 << 2, /* private mounts; with pid, a private /proc */
	WS_SANDBOX_ISOLATE_USER = 1 << 3,  /* a user namespace mapping only its own ids */
};

/*
 * Resource limits; 0 keeps the limit the process inherited (a limit is
 * never raised above it). Core size is always 0. The field types are the
 * config tables' (WS_OPT_UINT, WS_OPT_SIZE), so a server can point its
 * flags straight at them.
 */
struct ws_sandbox_limits {
	uint32_t cpu_s;       /* RLIMIT_CPU: SIGXCPU, then SIGKILL a second later */
	uint64_t as_bytes;    /* RLIMIT_AS: allocations fail */
	uint32_t nproc;       /* RLIMIT_NPROC: per real user; not enforced for root */
	uint64_t fsize_bytes; /* RLIMIT_FSIZE: SIGXFSZ / EFBIG */
	uint32_t nofile;      /* RLIMIT_NOFILE */
};

#define WS_SANDBOX_DEFAULT_CPU_S 60
#define WS_SANDBOX_DEFAULT_AS (4ULL << 30)
#define WS_SANDBOX_DEFAULT_NPROC 256
#define WS_SANDBOX_DEFAULT_FSIZE (1ULL << 30)
#define WS_SANDBOX_DEFAULT_NOFILE 1024

/*
 * The user commands run as when the caller is root and names none: a
 * system user that owns nothing (the image creates it; see
 * docs/security.md).
 */
#define WS_SANDBOX_DEFAULT_USER "ws-exec"

struct ws_sandbox_config {
	enum ws_sandbox_profile profile;
	const char *policy_file; /* layered over the profile; NULL: none */
	struct ws_sandbox_limits limits;
	/*
	 * User name or uid. NULL: WS_SANDBOX_DEFAULT_USER when the caller is
	 * root, else the caller's own user (it cannot switch).
	 */
	const char *run_as;
	bool run_as_self; /* keep the caller's user, root included */
	unsigned isolate; /* WS_SANDBOX_ISOLATE_* */
};

/* profile `default`, the default limits and user, no policy file or isolation. */
void ws_sandbox_config_defaults(struct ws_sandbox_config *cfg);

/* "default", "nonet", "none"; false for anything else. */
bool ws_sandbox_profile_parse(const char *name, enum ws_sandbox_profile *out);
const char *ws_sandbox_profile_name(enum ws_sandbox_profile p);

/* "net,pid,mount,user" (any subset, any order, "" for none); false on an unknown word. */
bool ws_sandbox_isolate_parse(const char *list, unsigned *out);

struct ws_sandbox;

/*
 * Prepares a command sandbox: loads the policy file, compiles the filter,
 * resolves the user and its groups, and as root makes the sandbox's pids
 * cgroup when a pids hierarchy is writable (each command gets its own
 * under it, pids.max = limits.nproc). Returns 0 and *out, or -errno with
 * one line in err: -EINVAL for a bad policy file or user, -ENOENT for a
 * missing policy file (an operator's mistake), -ESRCH when the default
 * user does not exist (the machine is not set up: err says how to create
 * it), another -errno for a failed system call.
 */
int ws_sandbox_create(struct ws_sandbox **out, const struct ws_sandbox_config *cfg, char *err,
		      size_t errlen);
/* Also removes the pids cgroups of commands that are gone. NULL is a no-op. */
void ws_sandbox_destroy(struct ws_sandbox *sb);

/* The user commands switch to; NULL when they keep the caller's. */
const char *ws_sandbox_user(const struct ws_sandbox *sb);
/* True when commands run as root (uid 0 outside any user namespace of theirs). */
bool ws_sandbox_runs_as_root(const struct ws_sandbox *sb);
/*
 * True when the user commands switch to could read path (search on every
 * directory above it, read on the file), by its mode bits: a server checks
 * its secrets with it. ACLs are not read. False when commands keep the
 * caller's user (nothing to compare) or path does not exist.
 */
bool ws_sandbox_user_may_read(const struct ws_sandbox *sb, const char *path);

/*
 * The sandbox's pids cgroup directory, or NULL with the reason there is
 * none in *why (a static or sandbox-owned string).
 */
const char *ws_sandbox_pids_cgroup(const struct ws_sandbox *sb, const char **why);

/* The policy the filter was compiled from; NULL for the null backend. */
const struct ws_policy *ws_sandbox_policy(const struct ws_sandbox *sb);
/* "seccomp" or "null". */
const char *ws_sandbox_backend_name(const struct ws_sandbox *sb);

/* The steps of ws_sandbox_child_apply, in order; EXEC is the caller's own. */
enum ws_sandbox_step {
	WS_SANDBOX_STEP_SIGNALS, /* default dispositions, nothing blocked */
	WS_SANDBOX_STEP_CGROUP,  /* its own pids cgroup */
	WS_SANDBOX_STEP_SETSID,
	WS_SANDBOX_STEP_FDS, /* close every descriptor but 0-2 (and keep_fd) */
	WS_SANDBOX_STEP_PDEATHSIG,
	WS_SANDBOX_STEP_RLIMITS,
	WS_SANDBOX_STEP_ISOLATE,
	WS_SANDBOX_STEP_RUN_AS,
	WS_SANDBOX_STEP_NO_NEW_PRIVS,
	WS_SANDBOX_STEP_FILTER,
	WS_SANDBOX_STEP_EXEC,
};

struct ws_sandbox_failure {
	int32_t step; /* enum ws_sandbox_step */
	int32_t err;  /* errno */
};

/* "setsid", "rlimits", "run-as", ... */
const char *ws_sandbox_step_name(enum ws_sandbox_step step);

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

/* Writes "STEP: strerror(err)" into buf. */
void ws_sandbox_failure_format(const struct ws_sandbox_failure *f, char *buf, size_t len);

/*
 * This process's children, read from /proc: for a subreaper, the orphans it
 * adopted are among them. Writes at most max pids; returns how many.
 */
size_t ws_sandbox_children(pid_t *out, size_t max);

/* What a server is, for its own filter. */
enum ws_sandbox_self {
	WS_SANDBOX_SELF_ECHO,      /* allowlist, default kill */
	WS_SANDBOX_SELF_BROADCAST, /* the same, plus SQLite's file calls */
	WS_SANDBOX_SELF_RPC,       /* allow, except the dangerous set (EPERM) */
};

/*
 * Installs the server's own filter on every thread of the calling process,
 * after PR_SET_NO_NEW_PRIVS, and logs one line first. For ECHO and
 * BROADCAST anything outside the allowlist kills the process (SIGSYS):
 * execve, fork, ptrace, socket, bind, connect. RPC keeps fork and exec;
 * `children`, the sandbox its commands will apply, says which calls they
 * still need before their own filter (unshare and mount for --isolate),
 * and which calls its policy file allows (commands inherit this filter,
 * so it must not deny what their policy lets through).
 * Returns 0, or -errno with one line in err: then the server must not
 * start.
 */
int ws_sandbox_confine_self(enum ws_sandbox_self kind, const struct ws_sandbox *children, char *err,
			    size_t errlen);

/*
 * A server's ws_app.confine: its own filter (logging why it failed), or
 * with --no-self-sandbox a warning and nothing. Returns 0 or -errno.
 */
int ws_sandbox_confine_server(enum ws_sandbox_self kind, const struct ws_sandbox *children,
			      bool disabled);

#endif
