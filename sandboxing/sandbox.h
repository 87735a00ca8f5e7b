/*
 * sandbox: the one interface to confining processes, shaped like OpenSSH's
 * (one API, a seccomp backend and a null backend for the `none` profile).
 * Its three jobs are three files, each with the header that says what it
 * may do:
 *
 *   sandbox.h        (sandbox.c) the parent's set-up: the settings and their
 *                    flags, ws_sandbox_create()/ws_sandbox_destroy(), what a
 *                    prepared sandbox will do, reading a child's failure.
 *                    It may allocate and read files; it reports through
 *                    err and return values, not the log.
 *   sandbox_child.h  (sandbox_child.c) the child between fork and exec:
 *                    system calls on memory the parent prepared, nothing
 *                    else (no allocation, no stdio, no locks).
 *   sandbox_self.h   (sandbox_self.c) a server confining itself with the
 *                    rules its main.c passes.
 *
 * Commands (ws-rpc's exec, ws-sandbox-run):
 *
 *   parent:  ws_sandbox_create()     resolves the user, compiles the filter
 *            fork()
 *   child:   ws_sandbox_child_apply() then, only if it returned 0, exec
 *   parent:  ws_sandbox_destroy()     when no more commands will start
 *
 * docs/security.md describes every layer.
 */
#ifndef WS_SANDBOX_H
#define WS_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
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
	uint64_t mem_bytes;   /* the command's memory cgroup, whole tree: OOM kill */
};

#define WS_SANDBOX_DEFAULT_CPU_S 60
#define WS_SANDBOX_DEFAULT_AS (4ULL << 30)
#define WS_SANDBOX_DEFAULT_NPROC 256
#define WS_SANDBOX_DEFAULT_FSIZE (1ULL << 30)
#define WS_SANDBOX_DEFAULT_NOFILE 1024
#define WS_SANDBOX_DEFAULT_MEM (1ULL << 30)
/* the private /dev/shm every command of one sandbox shares */
#define WS_SANDBOX_DEFAULT_SHM (64ULL << 20)

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
	/*
	 * Size of the private tmpfs on /dev/shm; 0 keeps the caller's
	 * /dev/shm (see ws_sandbox_create).
	 */
	uint64_t shm_bytes;
};

/* profile `default`, the default limits and user, no policy file or isolation. */
void ws_sandbox_config_defaults(struct ws_sandbox_config *cfg);

/* "default", "nonet", "none"; false for anything else. */
bool ws_sandbox_profile_parse(const char *name, enum ws_sandbox_profile *out);
const char *ws_sandbox_profile_name(enum ws_sandbox_profile p);

/* "net,pid,mount,user" (any subset, any order, "" for none); false on an unknown word. */
bool ws_sandbox_isolate_parse(const char *list, unsigned *out);

/*
 * The command sandbox's settings as flags: one table for every program that
 * runs commands (ws-rpc, ws-sandbox-run), so that both take the same names,
 * bounds and defaults. A program embeds struct ws_sandbox_options in the
 * struct its option table writes into, fills it with
 * ws_sandbox_options_defaults(), adds ws_sandbox_options_rows() to its table
 * and, once parsed, turns it into a configuration with
 * ws_sandbox_options_config().
 */
struct ws_sandbox_options {
	const char *profile;             /* --seccomp-profile, checked while parsing */
	const char *policy;              /* --seccomp-policy; NULL: none */
	const char *run_as;              /* --run-as; NULL: see ws_sandbox_config.run_as */
	bool run_as_self;                /* --run-as-self */
	const char *isolate;             /* --isolate, checked while parsing; NULL: none */
	struct ws_sandbox_limits limits; /* --limit-* */
	uint64_t shm_bytes;              /* --shm-size */
};

/* How many rows ws_sandbox_options_rows() writes. */
#define WS_SANDBOX_OPTIONS 12

/* Profile "default", the default limits and user, no policy file or isolation. */
void ws_sandbox_options_defaults(struct ws_sandbox_options *o);

/*
 * Writes the WS_SANDBOX_OPTIONS rows (--seccomp-profile, --seccomp-policy,
 * --limit-cpu, --limit-as, --limit-nproc, --limit-fsize, --limit-nofile,
 * --limit-mem, --shm-size, --run-as, --run-as-self, --isolate, each with
 * its WS_ environment twin)
 * into out, their offsets moved by `base`: where the caller's option struct
 * holds its struct ws_sandbox_options. Returns how many it wrote, 0 when
 * max is too small.
 */
size_t ws_sandbox_options_rows(struct ws_option *out, size_t max, size_t base);

/*
 * Fills cfg from parsed options. Returns 0, or -EINVAL with one line in err
 * for a profile or isolation list the table's checks would have refused.
 * cfg points into o's strings.
 */
int ws_sandbox_options_config(const struct ws_sandbox_options *o, struct ws_sandbox_config *cfg,
			      char *err, size_t errlen);

/*
 * The exit status for a failed ws_sandbox_create(): WS_EXIT_USAGE (100) for
 * what the operator or the machine's set-up must fix (-EINVAL, -ENOENT,
 * -EPERM, -ESRCH: no retry helps), else WS_EXIT_SYSTEM (111).
 */
int ws_sandbox_exit_status(int rc);

struct ws_sandbox;

/*
 * Prepares a command sandbox: loads the policy file, compiles the filter,
 * resolves the user and its groups, and as root makes the sandbox's pids
 * and memory cgroups where those hierarchies are writable (each command
 * gets its own under them: pids.max = limits.nproc, the memory limit =
 * limits.mem_bytes, swap off).
 *
 * With cfg->shm_bytes and root it also changes the caller: the calling
 * process (which must be single-threaded) moves into a mount namespace of
 * its own (mounts still propagate in from the host's) with a tmpfs of that
 * size on /dev/shm (mode 1777, nosuid, nodev), which it and every command
 * it starts then share; the host's /dev/shm is untouched. Where that
 * cannot be done, the sandbox keeps the caller's /dev/shm and
 * ws_sandbox_shm() says why. Returns 0 and *out, or -errno with
 * one line in err: -EINVAL for a bad policy file or user, or limits.nofile
 * 1 or 2 (not even the standard descriptors fit), -ENOENT for a
 * missing policy file (an operator's mistake), -ESRCH when the default
 * user does not exist (the machine is not set up: err says how to create
 * it), another -errno for a failed system call.
 */
int ws_sandbox_create(struct ws_sandbox **out, const struct ws_sandbox_config *cfg, char *err,
		      size_t errlen);
/* Also removes the cgroups of commands that are gone. NULL is a no-op. */
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

/* The sandbox's memory cgroup directory, or NULL with the reason in *why. */
const char *ws_sandbox_mem_cgroup(const struct ws_sandbox *sb, const char **why);

/*
 * The size of the private /dev/shm commands share, or 0 (they see the
 * caller's) with the reason in *why.
 */
uint64_t ws_sandbox_shm(const struct ws_sandbox *sb, const char **why);

/* The policy the filter was compiled from; NULL for the null backend. */
const struct ws_policy *ws_sandbox_policy(const struct ws_sandbox *sb);
/* "seccomp" or "null". */
const char *ws_sandbox_backend_name(const struct ws_sandbox *sb);

/*
 * True when ws_sandbox_child_apply() forks on its own or leaves a process
 * behind that keeps running the caller's memory (--isolate: the pid
 * namespace's forwarder, the user namespace's mapper). A caller that
 * starts its child sharing its memory (clone with CLONE_VM) must fork
 * instead then.
 */
bool ws_sandbox_child_forks(const struct ws_sandbox *sb);

/* The steps of ws_sandbox_child_apply, in order; EXEC is the caller's own. */
enum ws_sandbox_step {
	WS_SANDBOX_STEP_SIGNALS, /* default dispositions, nothing blocked */
	WS_SANDBOX_STEP_CGROUP,  /* its own pids and memory cgroups */
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
 * Writes "STEP: strerror(err)" into buf: for the parent, or a child that
 * has given up and only reports before _exit() (it uses snprintf).
 */
void ws_sandbox_failure_format(const struct ws_sandbox_failure *f, char *buf, size_t len);

/*
 * This process's children, read from /proc: for a subreaper, the orphans it
 * adopted are among them. Writes at most max pids; returns how many.
 */
size_t ws_sandbox_children(pid_t *out, size_t max);

#endif
