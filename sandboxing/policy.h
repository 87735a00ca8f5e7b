/*
 * policy: what a seccomp filter decides, as data. A policy is a default
 * action plus rules on system calls, some of them conditioned on one
 * argument. Policies are built from the library's named rule sets (the
 * profiles' denylist, the servers' allowlists) and from policy files; the
 * seccomp backend (sandbox_seccomp.c) compiles them to BPF. Nothing here
 * loads a filter.
 *
 * Policy file format (docs/security.md has the full description):
 *
 *   # a comment; blank lines are ignored; '#' also ends a rule
 *   deny  SYSCALL [ERRNO]   # fails with ERRNO (a name such as EACCES, or
 *                           # 1..4094); EPERM when omitted
 *   allow SYSCALL
 *   kill  SYSCALL           # the whole process dies by SIGSYS
 *
 * SYSCALL is a name libseccomp knows (names of calls this architecture does
 * not have are accepted and have no effect) or a number below 1024 for a
 * call newer than libseccomp. A rule in a file replaces every rule the
 * policy already had for that call, including argument conditions (so
 * `deny ioctl` denies every ioctl, not only TIOCSTI); naming a call twice
 * in one file is an error.
 */
#ifndef WS_POLICY_H
#define WS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what a policy file may hold. */
#define WS_POLICY_MAX_RULES 512
#define WS_POLICY_MAX_FILE (64 * 1024)
#define WS_POLICY_MAX_LINE 256
/* libseccomp refuses 4095 (MAX_ERRNO) itself; 0 would fake success */
#define WS_POLICY_MAX_ERRNO 4094

enum ws_policy_action {
	WS_POLICY_ALLOW,
	WS_POLICY_ERRNO, /* fail with rule.err */
	WS_POLICY_KILL,  /* SECCOMP_RET_KILL_PROCESS */
};

enum ws_policy_cmp {
	WS_POLICY_ALWAYS,    /* no condition */
	WS_POLICY_MASKED_EQ, /* (arg & mask) == value */
	WS_POLICY_NE,        /* arg != value (all 64 bits) */
	WS_POLICY_EQ,        /* arg == value (all 64 bits) */
	/*
	 * The action applies unless arg equals the value of one of the call's
	 * ONLY rules (each holds one value; they share action and arg).
	 */
	WS_POLICY_ONLY,
};

struct ws_policy_rule {
	int32_t nr;      /* native number; negative: not on this arch */
	uint8_t action;  /* enum ws_policy_action */
	uint8_t cmp;     /* enum ws_policy_cmp */
	uint8_t arg;     /* 0..5, when cmp != WS_POLICY_ALWAYS */
	uint16_t err;    /* errno, for WS_POLICY_ERRNO */
	uint16_t origin; /* 0: built in; n: the n-th file parsed */
	uint32_t line;   /* line in that file */
	uint64_t mask, value;
	/* a second condition, and-ed with the first (WS_POLICY_ALWAYS: none) */
	uint8_t cmp2, arg2;
	uint64_t mask2, value2;
};

struct ws_policy {
	uint8_t default_action; /* enum ws_policy_action */
	uint16_t default_err;
	uint16_t files; /* policy files parsed so far */
	size_t n;
	struct ws_policy_rule rules[WS_POLICY_MAX_RULES];
};

/* The library's named rule sets; docs/security.md lists each call and why. */
enum ws_policy_set {
	/*
	 * EPERM for what Docker's default profile blocks: kernel modules,
	 * kexec, reboot, mounts, namespaces (unshare, setns, clone with a
	 * CLONE_NEW* flag; clone3 gets ENOSYS so libc falls back to clone),
	 * ptrace and cross-process memory, bpf, perf, userfaultfd (the call
	 * and /dev/userfaultfd's ioctl), io_uring, keyrings, NUMA placement,
	 * file handles, the LDT, personality flags but the harmless ones,
	 * accounting, quotas, swap, clock setting, port I/O, syslog,
	 * ioctl(TIOCSTI/TIOCLINUX), packet, raw and vsock sockets, and
	 * obsolete calls. docs/security.md lists every call and the
	 * differences from Docker kept on purpose.
	 */
	WS_POLICY_SET_DANGEROUS,
	/* EPERM for socket() and socketpair() of any family but AF_UNIX. */
	WS_POLICY_SET_NONET,
	/*
	 * What a running server on this library needs once it listens:
	 * sockets it already has or accepts, the event loop, memory (no new
	 * executable mappings), time, signals, stdio logging, socket(AF_UNIX)
	 * for $NOTIFY_SOCKET readiness. kill/tgkill only towards the calling
	 * process (abort() keeps working). openat fails with EACCES.
	 */
	WS_POLICY_SET_SERVER,
	/* SQLite's file work on an open database: open, read, write, sync, lock. */
	WS_POLICY_SET_SQLITE,
	/*
	 * A client of one TCP service (ws-broadcast's Redis): socket() of
	 * AF_INET/AF_INET6 streams (and AF_UNIX, as SERVER has it) and
	 * connect(). Addresses are resolved before confinement: no resolver.
	 */
	WS_POLICY_SET_NETCLIENT,
	/*
	 * What AddressSanitizer's leak check does at exit (a CLONE_VM tracer,
	 * ptrace, /proc reads). sandbox_self.c adds it to the servers' allowlists
	 * in sanitizer builds only; fork and execve still kill.
	 */
	WS_POLICY_SET_SANITIZER,
};

/* Empties p and sets its default action (err is used for WS_POLICY_ERRNO). */
void ws_policy_init(struct ws_policy *p, enum ws_policy_action def, uint16_t err);

/*
 * Adds a named set. Returns 0, or -ENOSPC when p is full (with a message in
 * err, which may be NULL).
 */
int ws_policy_add_set(struct ws_policy *p, enum ws_policy_set set, char *err, size_t errlen);

/*
 * Replaces every rule for the call `name` by one unconditional rule.
 * Returns 0, -ENOENT for a name libseccomp does not know, -ENOSPC when full.
 */
int ws_policy_set_call(struct ws_policy *p, const char *name, enum ws_policy_action a,
		       uint16_t err);

/* Removes every rule for the call `name`. Returns 0, or -ENOENT for an unknown name. */
int ws_policy_drop_call(struct ws_policy *p, const char *name);
/* Removes every rule for the call numbered nr. */
void ws_policy_drop_nr(struct ws_policy *p, int32_t nr);

/*
 * Appends r as a rule for the call `name` (r->nr is filled in), keeping
 * the call's other rules: for argument conditions built at run time.
 * Returns 0, -ENOENT for an unknown name, -ENOSPC when full.
 */
int ws_policy_add_rule(struct ws_policy *p, const char *name, const struct ws_policy_rule *r);

/*
 * Parses policy-file text (len bytes, need not be NUL-terminated) and layers
 * its rules over p. `source` names the text in messages. Returns 0, or
 * -EINVAL with "SOURCE:LINE: what is wrong" in err; p is then unchanged.
 */
int ws_policy_parse(struct ws_policy *p, const char *text, size_t len, const char *source,
		    char *err, size_t errlen);

/*
 * Reads and parses a policy file (at most WS_POLICY_MAX_FILE bytes). Returns
 * 0, -EINVAL for a malformed file or one that is not a regular file (a FIFO,
 * a directory), or another -errno when it cannot be read;
 * err says which and where.
 */
int ws_policy_load_file(struct ws_policy *p, const char *path, char *err, size_t errlen);

/*
 * Writes rule r in policy-file syntax, its condition as a comment:
 * "deny ioctl EPERM  # arg1 & 0xffffffff == 0x5412". Returns buf.
 */
const char *ws_policy_rule_format(const struct ws_policy_rule *r, char *buf, size_t len);

/* "EPERM" for 1; NULL for an errno without a name here. */
const char *ws_policy_errno_name(int err);

/* "allow", "deny", "kill". */
const char *ws_policy_action_name(enum ws_policy_action a);

#endif
