#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* One entry of a built-in set; a NULL name ends a table. */
struct call {
	const char *name;
	uint8_t action;
	uint16_t err;
	uint8_t cmp;
	uint8_t arg;
	uint64_t mask, value;
	uint8_t cmp2;
	uint8_t arg2;
	uint64_t mask2, value2;
	/* the call's number where libseccomp is older than the call (0: none) */
	int32_t nr;
};

/* The type of socket(2), without SOCK_NONBLOCK and SOCK_CLOEXEC. */
#define SOCK_TYPE_MASK 0xf
/* ioctl(USERFAULTFD_IOC_NEW) on /dev/userfaultfd: _IO(0xAA, 0x00) */
#define USERFAULTFD_IOC_NEW_REQ 0xAA00u
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
/*
 * personality(2) values Docker lets through: PER_LINUX, PER_LINUX32,
 * UNAME26 with either, and 0xffffffff, which only reads the persona. The
 * others turn off address randomisation (ADDR_NO_RANDOMIZE), make every
 * readable mapping executable (READ_IMPLIES_EXEC), map page zero, ...
 */
#define PERSONALITY(v)                                                         \
	{                                                                      \
		"personality", WS_POLICY_ERRNO, EPERM, WS_POLICY_ONLY, 0, 0, v \
	}

#define CLONE_NEW_FLAGS                                                                \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
	 CLONE_NEWPID | CLONE_NEWNET)

static const struct call dangerous[] = {
	/* replace or stop the running kernel */
	{ "init_module", WS_POLICY_ERRNO, EPERM },
	{ "finit_module", WS_POLICY_ERRNO, EPERM },
	{ "delete_module", WS_POLICY_ERRNO, EPERM },
	{ "create_module", WS_POLICY_ERRNO, EPERM },
	{ "query_module", WS_POLICY_ERRNO, EPERM },
	{ "get_kernel_syms", WS_POLICY_ERRNO, EPERM },
	{ "kexec_load", WS_POLICY_ERRNO, EPERM },
	{ "kexec_file_load", WS_POLICY_ERRNO, EPERM },
	{ "reboot", WS_POLICY_ERRNO, EPERM },
	/* change what the file system looks like, for everyone sharing it */
	{ "mount", WS_POLICY_ERRNO, EPERM },
	{ "umount", WS_POLICY_ERRNO, EPERM },
	{ "umount2", WS_POLICY_ERRNO, EPERM },
	{ "pivot_root", WS_POLICY_ERRNO, EPERM },
	{ "chroot", WS_POLICY_ERRNO, EPERM },
	{ "open_tree", WS_POLICY_ERRNO, EPERM },
	{ "move_mount", WS_POLICY_ERRNO, EPERM },
	{ "fsopen", WS_POLICY_ERRNO, EPERM },
	{ "fsconfig", WS_POLICY_ERRNO, EPERM },
	{ "fsmount", WS_POLICY_ERRNO, EPERM },
	{ "fspick", WS_POLICY_ERRNO, EPERM },
	{ "mount_setattr", WS_POLICY_ERRNO, EPERM },
	{ "open_tree_attr", WS_POLICY_ERRNO, EPERM, .nr = 467 },
	/*
	 * New namespaces are how unprivileged code reaches kernel code written
	 * for root. clone's flags are its first argument on every architecture
	 * Linux filters here; CLONE_NEWTIME only exists for clone3 and unshare.
	 */
	{ "unshare", WS_POLICY_ERRNO, EPERM },
	{ "setns", WS_POLICY_ERRNO, EPERM },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWNS, CLONE_NEWNS },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWCGROUP,
	  CLONE_NEWCGROUP },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWUTS, CLONE_NEWUTS },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWIPC, CLONE_NEWIPC },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWUSER, CLONE_NEWUSER },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWPID, CLONE_NEWPID },
	{ "clone", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 0, CLONE_NEWNET, CLONE_NEWNET },
	/*
	 * clone3 passes its flags in memory, out of a filter's reach. ENOSYS
	 * (not EPERM) makes glibc fall back to clone, which is filtered above.
	 */
	{ "clone3", WS_POLICY_ERRNO, ENOSYS },
	/* reach into other processes */
	{ "ptrace", WS_POLICY_ERRNO, EPERM },
	{ "process_vm_readv", WS_POLICY_ERRNO, EPERM },
	{ "process_vm_writev", WS_POLICY_ERRNO, EPERM },
	{ "process_madvise", WS_POLICY_ERRNO, EPERM },
	{ "kcmp", WS_POLICY_ERRNO, EPERM },
	{ "pidfd_getfd", WS_POLICY_ERRNO, EPERM },
	/* large kernel attack surface, rarely needed by commands */
	{ "bpf", WS_POLICY_ERRNO, EPERM },
	{ "perf_event_open", WS_POLICY_ERRNO, EPERM },
	{ "userfaultfd", WS_POLICY_ERRNO, EPERM },
	/* the same file descriptor, from the device: only its ioctl makes one */
	{ "ioctl", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 1, 0xffffffffu,
	  USERFAULTFD_IOC_NEW_REQ },
	{ "io_uring_setup", WS_POLICY_ERRNO, EPERM },
	{ "io_uring_enter", WS_POLICY_ERRNO, EPERM },
	{ "io_uring_register", WS_POLICY_ERRNO, EPERM },
	/*
	 * Memory placement across NUMA nodes, and moving another process's
	 * pages (Docker: CAP_SYS_NICE only).
	 */
	{ "mbind", WS_POLICY_ERRNO, EPERM },
	{ "set_mempolicy", WS_POLICY_ERRNO, EPERM },
	{ "set_mempolicy_home_node", WS_POLICY_ERRNO, EPERM },
	{ "get_mempolicy", WS_POLICY_ERRNO, EPERM },
	{ "move_pages", WS_POLICY_ERRNO, EPERM },
	{ "migrate_pages", WS_POLICY_ERRNO, EPERM },
	/* file handles bypass path permissions (Docker: CAP_DAC_READ_SEARCH) */
	{ "name_to_handle_at", WS_POLICY_ERRNO, EPERM },
	/* 16-bit segments, a history of kernel bugs; x86 only */
	{ "modify_ldt", WS_POLICY_ERRNO, EPERM },
	{ "vm86", WS_POLICY_ERRNO, EPERM },
	{ "vm86old", WS_POLICY_ERRNO, EPERM },
	PERSONALITY(0x0),
	PERSONALITY(0x8),
	PERSONALITY(0x20000),
	PERSONALITY(0x20008),
	PERSONALITY(0xffffffff),
	/*
	 * Sockets that see every packet on an interface (loopback included:
	 * other clients' tokens), forge any packet, or reach the hypervisor
	 * (vsock, which Docker denies too). As root they would work; without
	 * CAP_NET_RAW the kernel refuses the first two anyway.
	 */
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_EQ, 0, 0, AF_PACKET },
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_EQ, 0, 0, AF_VSOCK },
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 1, SOCK_TYPE_MASK, SOCK_PACKET },
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_EQ, 0, 0, AF_INET, WS_POLICY_MASKED_EQ, 1,
	  SOCK_TYPE_MASK, SOCK_RAW },
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_EQ, 0, 0, AF_INET6, WS_POLICY_MASKED_EQ, 1,
	  SOCK_TYPE_MASK, SOCK_RAW },
	/* keyrings are not namespaced */
	{ "add_key", WS_POLICY_ERRNO, EPERM },
	{ "request_key", WS_POLICY_ERRNO, EPERM },
	{ "keyctl", WS_POLICY_ERRNO, EPERM },
	/* machine administration */
	{ "acct", WS_POLICY_ERRNO, EPERM },
	{ "quotactl", WS_POLICY_ERRNO, EPERM },
	{ "quotactl_fd", WS_POLICY_ERRNO, EPERM },
	{ "swapon", WS_POLICY_ERRNO, EPERM },
	{ "swapoff", WS_POLICY_ERRNO, EPERM },
	{ "sethostname", WS_POLICY_ERRNO, EPERM },
	{ "setdomainname", WS_POLICY_ERRNO, EPERM },
	{ "vhangup", WS_POLICY_ERRNO, EPERM },
	{ "fanotify_init", WS_POLICY_ERRNO, EPERM },
	{ "open_by_handle_at", WS_POLICY_ERRNO, EPERM },
	{ "syslog", WS_POLICY_ERRNO, EPERM },
	{ "iopl", WS_POLICY_ERRNO, EPERM },
	{ "ioperm", WS_POLICY_ERRNO, EPERM },
	/* the clock is shared by the whole machine */
	{ "settimeofday", WS_POLICY_ERRNO, EPERM },
	{ "clock_settime", WS_POLICY_ERRNO, EPERM },
	{ "clock_adjtime", WS_POLICY_ERRNO, EPERM },
	{ "adjtimex", WS_POLICY_ERRNO, EPERM },
	{ "stime", WS_POLICY_ERRNO, EPERM },
	/* obsolete; nothing current uses them */
	{ "lookup_dcookie", WS_POLICY_ERRNO, EPERM },
	{ "nfsservctl", WS_POLICY_ERRNO, EPERM },
	{ "uselib", WS_POLICY_ERRNO, EPERM },
	{ "ustat", WS_POLICY_ERRNO, EPERM },
	{ "sysfs", WS_POLICY_ERRNO, EPERM },
	{ "_sysctl", WS_POLICY_ERRNO, EPERM },
	/*
	 * Typing into a terminal the command shares with someone else. The
	 * request is an unsigned int: compare only the low 32 bits, which is
	 * all the kernel looks at.
	 */
	{ "ioctl", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, TIOCSTI },
	{ "ioctl", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, TIOCLINUX },
	/* a line discipline change: with ldisc_autoload it loads n_gsm, n_hdlc... */
	{ "ioctl", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, TIOCSETD },
	{ NULL },
};

static const struct call nonet[] = {
	{ "socket", WS_POLICY_ERRNO, EPERM, WS_POLICY_NE, 0, 0, AF_UNIX },
	{ "socketpair", WS_POLICY_ERRNO, EPERM, WS_POLICY_NE, 0, 0, AF_UNIX },
	{ NULL },
};

/*
 * A server after start-up: no bind(), connect(), execve, fork, ptrace, or
 * file opens. Checked by running the integration, node and browser suites
 * (and the broadcast suite, with SQLITE) under a filter that logs instead
 * of killing: nothing outside this list was called.
 */
static const struct call server[] = {
	/* the event loop (libuv's epoll, or lws's poll fallback) */
	{ "epoll_wait", WS_POLICY_ALLOW },
	{ "epoll_pwait", WS_POLICY_ALLOW },
	{ "epoll_pwait2", WS_POLICY_ALLOW },
	{ "epoll_ctl", WS_POLICY_ALLOW },
	{ "epoll_create1", WS_POLICY_ALLOW },
	{ "poll", WS_POLICY_ALLOW },
	{ "ppoll", WS_POLICY_ALLOW },
	{ "eventfd2", WS_POLICY_ALLOW },
	{ "pipe2", WS_POLICY_ALLOW },
	/* the sockets it has, and the ones it accepts */
	{ "accept", WS_POLICY_ALLOW },
	{ "accept4", WS_POLICY_ALLOW },
	{ "read", WS_POLICY_ALLOW },
	{ "readv", WS_POLICY_ALLOW },
	{ "recvfrom", WS_POLICY_ALLOW },
	{ "recvmsg", WS_POLICY_ALLOW },
	{ "recvmmsg", WS_POLICY_ALLOW },
	{ "write", WS_POLICY_ALLOW },
	{ "writev", WS_POLICY_ALLOW },
	{ "sendto", WS_POLICY_ALLOW },
	{ "sendmsg", WS_POLICY_ALLOW },
	{ "sendmmsg", WS_POLICY_ALLOW },
	{ "shutdown", WS_POLICY_ALLOW },
	{ "close", WS_POLICY_ALLOW },
	{ "getpeername", WS_POLICY_ALLOW },
	{ "getsockname", WS_POLICY_ALLOW },
	{ "setsockopt", WS_POLICY_ALLOW },
	{ "getsockopt", WS_POLICY_ALLOW },
	{ "fcntl", WS_POLICY_ALLOW },
	{ "fstat", WS_POLICY_ALLOW },
	{ "newfstatat", WS_POLICY_ALLOW },
	{ "lseek", WS_POLICY_ALLOW },
	{ "ioctl", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, FIONBIO },
	{ "ioctl", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, FIONREAD },
	{ "ioctl", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, FIOCLEX },
	{ "ioctl", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, FIONCLEX },
	{ "ioctl", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 1, 0xffffffffu, TCGETS },
	/* memory; new executable mappings are refused (nothing loads code now) */
	{ "mmap", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 2, PROT_EXEC, 0 },
	{ "mmap", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 2, PROT_EXEC, PROT_EXEC },
	{ "mprotect", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 2, PROT_EXEC, 0 },
	{ "mprotect", WS_POLICY_ERRNO, EPERM, WS_POLICY_MASKED_EQ, 2, PROT_EXEC, PROT_EXEC },
	{ "munmap", WS_POLICY_ALLOW },
	{ "mremap", WS_POLICY_ALLOW },
	{ "brk", WS_POLICY_ALLOW },
	{ "madvise", WS_POLICY_ALLOW },
	{ "futex", WS_POLICY_ALLOW },
	{ "sched_yield", WS_POLICY_ALLOW },
	/* time (normally the vDSO's, but it may fall back to the system call) */
	{ "clock_gettime", WS_POLICY_ALLOW },
	{ "clock_getres", WS_POLICY_ALLOW },
	{ "gettimeofday", WS_POLICY_ALLOW },
	{ "time", WS_POLICY_ALLOW },
	{ "nanosleep", WS_POLICY_ALLOW },
	{ "clock_nanosleep", WS_POLICY_ALLOW },
	/* signals; SIGTERM drains the server */
	{ "rt_sigaction", WS_POLICY_ALLOW },
	{ "rt_sigprocmask", WS_POLICY_ALLOW },
	{ "rt_sigreturn", WS_POLICY_ALLOW },
	{ "sigaltstack", WS_POLICY_ALLOW },
	{ "restart_syscall", WS_POLICY_ALLOW },
	/* process identity, randomness and the way out */
	{ "getpid", WS_POLICY_ALLOW },
	{ "gettid", WS_POLICY_ALLOW },
	{ "getrandom", WS_POLICY_ALLOW },
	{ "exit", WS_POLICY_ALLOW },
	{ "exit_group", WS_POLICY_ALLOW },
	/*
	 * Readiness on $NOTIFY_SOCKET comes after confinement. An AF_UNIX
	 * socket without connect, bind or listen can only send datagrams.
	 */
	{ "socket", WS_POLICY_ALLOW, 0, WS_POLICY_EQ, 0, 0, AF_UNIX },
	/* a library that tries to open a file (time zones, /proc) just fails */
	{ "openat", WS_POLICY_ERRNO, EACCES },
	{ "open", WS_POLICY_ERRNO, EACCES },
	{ NULL },
};

static const struct call sqlite[] = {
	{ "openat", WS_POLICY_ALLOW },
	{ "open", WS_POLICY_ALLOW },
	{ "pread64", WS_POLICY_ALLOW },
	{ "pwrite64", WS_POLICY_ALLOW },
	{ "fsync", WS_POLICY_ALLOW },
	{ "fdatasync", WS_POLICY_ALLOW },
	{ "ftruncate", WS_POLICY_ALLOW },
	{ "fallocate", WS_POLICY_ALLOW },
	{ "unlink", WS_POLICY_ALLOW },
	{ "unlinkat", WS_POLICY_ALLOW },
	{ "stat", WS_POLICY_ALLOW },
	{ "lstat", WS_POLICY_ALLOW },
	{ "access", WS_POLICY_ALLOW },
	{ "faccessat", WS_POLICY_ALLOW },
	{ "faccessat2", WS_POLICY_ALLOW },
	{ "readlink", WS_POLICY_ALLOW },
	{ "getcwd", WS_POLICY_ALLOW },
	{ "geteuid", WS_POLICY_ALLOW },
	/* sqlite hands new journal files to the database's owner when root */
	{ "fchown", WS_POLICY_ALLOW },
	{ "fchmod", WS_POLICY_ALLOW },
	{ NULL },
};

/* Restates SERVER's AF_UNIX socket: a set replaces what others said of a call. */
static const struct call netclient[] = {
	{ "socket", WS_POLICY_ALLOW, 0, WS_POLICY_EQ, 0, 0, AF_UNIX },
	{ "socket", WS_POLICY_ALLOW, 0, WS_POLICY_EQ, 0, 0, AF_INET, WS_POLICY_MASKED_EQ, 1,
	  SOCK_TYPE_MASK, SOCK_STREAM },
	{ "socket", WS_POLICY_ALLOW, 0, WS_POLICY_EQ, 0, 0, AF_INET6, WS_POLICY_MASKED_EQ, 1,
	  SOCK_TYPE_MASK, SOCK_STREAM },
	{ "connect", WS_POLICY_ALLOW },
	{ NULL },
};

/*
 * LeakSanitizer's exit-time check: a CLONE_VM tracer task that lists
 * /proc/self/task and ptraces the threads. Sanitizer builds only.
 */
static const struct call sanitizer[] = {
	{ "clone", WS_POLICY_ALLOW, 0, WS_POLICY_MASKED_EQ, 0, CLONE_VM, CLONE_VM },
	{ "ptrace", WS_POLICY_ALLOW },
	{ "prctl", WS_POLICY_ALLOW },
	{ "wait4", WS_POLICY_ALLOW },
	{ "getppid", WS_POLICY_ALLOW },
	{ "open", WS_POLICY_ALLOW },
	{ "openat", WS_POLICY_ALLOW },
	{ "getdents", WS_POLICY_ALLOW },
	{ "getdents64", WS_POLICY_ALLOW },
	/* reports name the binary through /proc/self/exe */
	{ "readlink", WS_POLICY_ALLOW },
	{ "readlinkat", WS_POLICY_ALLOW },
	{ NULL },
};

void
ws_policy_init(struct ws_policy *p, enum ws_policy_action def, uint16_t err)
{
	p->default_action = (uint8_t)def;
	p->default_err = err;
	p->files = 0;
	p->n = 0;
}

/* Drops every rule for nr that did not come from `origin`. */
static void
drop_rules(struct ws_policy *p, int32_t nr, uint16_t origin)
{
	size_t o = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (p->rules[i].nr == nr && p->rules[i].origin != origin)
			continue;
		p->rules[o++] = p->rules[i];
	}
	p->n = o;
}

static int
push(struct ws_policy *p, const struct ws_policy_rule *r)
{
	if (p->n >= WS_POLICY_MAX_RULES)
		return -ENOSPC;
	p->rules[p->n++] = *r;
	return 0;
}

/* True when an entry of t before c names the same call. */
static bool
named_before(const struct call *t, const struct call *c)
{
	for (; t < c; t++)
		if (strcmp(t->name, c->name) == 0)
			return true;
	return false;
}

int
ws_policy_add_set(struct ws_policy *p, enum ws_policy_set set, char *err, size_t errlen)
{
	const struct call *t;
	switch (set) {
	case WS_POLICY_SET_DANGEROUS:
		t = dangerous;
		break;
	case WS_POLICY_SET_NONET:
		t = nonet;
		break;
	case WS_POLICY_SET_SERVER:
		t = server;
		break;
	case WS_POLICY_SET_SQLITE:
		t = sqlite;
		break;
	case WS_POLICY_SET_NETCLIENT:
		t = netclient;
		break;
	case WS_POLICY_SET_SANITIZER:
		t = sanitizer;
		break;
	default:
		return -EINVAL;
	}
	/*
	 * A set adds to the calls it names and replaces what another set said
	 * about them (SQLITE's openat over SERVER's EACCES).
	 */
	for (const struct call *c = t; c->name; c++) {
		int nr = seccomp_syscall_resolve_name(c->name);
		if (nr == __NR_SCMP_ERROR && c->nr > 0)
			nr = c->nr;
		if (nr == __NR_SCMP_ERROR) {
			/* a built-in name libseccomp lost: fail closed, loudly */
			if (err)
				snprintf(err, errlen, "libseccomp does not know '%s'", c->name);
			return -ENOENT;
		}
		if (!named_before(t, c))
			drop_rules(p, nr, UINT16_MAX);
		struct ws_policy_rule r = {
			.nr = nr,
			.action = c->action,
			.err = c->err,
			.cmp = c->cmp,
			.arg = c->arg,
			.mask = c->mask,
			.value = c->value,
			.cmp2 = c->cmp2,
			.arg2 = c->arg2,
			.mask2 = c->mask2,
			.value2 = c->value2,
		};
		if (push(p, &r) != 0)
			goto full;
	}
	if (set == WS_POLICY_SET_SERVER) {
		/* signals only to itself: abort() and raise() use tgkill */
		static const char *const self_signals[] = { "kill", "tgkill" };
		for (size_t i = 0; i < 2; i++) {
			int nr = seccomp_syscall_resolve_name(self_signals[i]);
			drop_rules(p, nr, UINT16_MAX);
			struct ws_policy_rule r = {
				.nr = nr,
				.action = WS_POLICY_ALLOW,
				.cmp = WS_POLICY_EQ,
				.arg = 0,
				.value = (uint64_t)getpid(),
			};
			if (push(p, &r) != 0)
				goto full;
		}
	}
	return 0;
full:
	if (err)
		snprintf(err, errlen, "more than %d rules", WS_POLICY_MAX_RULES);
	return -ENOSPC;
}

int
ws_policy_set_call(struct ws_policy *p, const char *name, enum ws_policy_action a, uint16_t err)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return -ENOENT;
	drop_rules(p, nr, UINT16_MAX);
	struct ws_policy_rule r = { .nr = nr, .action = (uint8_t)a, .err = err };
	return push(p, &r);
}

int
ws_policy_drop_call(struct ws_policy *p, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return -ENOENT;
	drop_rules(p, nr, UINT16_MAX);
	return 0;
}

void
ws_policy_drop_nr(struct ws_policy *p, int32_t nr)
{
	drop_rules(p, nr, UINT16_MAX);
}

int
ws_policy_add_rule(struct ws_policy *p, const char *name, const struct ws_policy_rule *r)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return -ENOENT;
	struct ws_policy_rule copy = *r;
	copy.nr = nr;
	return push(p, &copy);
}

/* --- errno names ------------------------------------------------------- */

static const struct {
	const char *name;
	int value;
} errnos[] = {
	{ "EPERM", EPERM },
	{ "ENOENT", ENOENT },
	{ "ESRCH", ESRCH },
	{ "EINTR", EINTR },
	{ "EIO", EIO },
	{ "ENXIO", ENXIO },
	{ "E2BIG", E2BIG },
	{ "ENOEXEC", ENOEXEC },
	{ "EBADF", EBADF },
	{ "ECHILD", ECHILD },
	{ "EAGAIN", EAGAIN },
	{ "ENOMEM", ENOMEM },
	{ "EACCES", EACCES },
	{ "EFAULT", EFAULT },
	{ "EBUSY", EBUSY },
	{ "EEXIST", EEXIST },
	{ "EXDEV", EXDEV },
	{ "ENODEV", ENODEV },
	{ "ENOTDIR", ENOTDIR },
	{ "EISDIR", EISDIR },
	{ "EINVAL", EINVAL },
	{ "ENFILE", ENFILE },
	{ "EMFILE", EMFILE },
	{ "ENOTTY", ENOTTY },
	{ "EFBIG", EFBIG },
	{ "ENOSPC", ENOSPC },
	{ "ESPIPE", ESPIPE },
	{ "EROFS", EROFS },
	{ "EMLINK", EMLINK },
	{ "EPIPE", EPIPE },
	{ "ERANGE", ERANGE },
	{ "ENOSYS", ENOSYS },
	{ "ENOTSUP", ENOTSUP },
	{ "EOPNOTSUPP", EOPNOTSUPP },
	{ "EAFNOSUPPORT", EAFNOSUPPORT },
	{ "EPROTONOSUPPORT", EPROTONOSUPPORT },
	{ "EADDRNOTAVAIL", EADDRNOTAVAIL },
	{ "ENETUNREACH", ENETUNREACH },
	{ "ECONNREFUSED", ECONNREFUSED },
	{ "EHOSTUNREACH", EHOSTUNREACH },
	{ "ETIMEDOUT", ETIMEDOUT },
};

const char *
ws_policy_errno_name(int err)
{
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (errnos[i].value == err)
			return errnos[i].name;
	return NULL;
}

const char *
ws_policy_action_name(enum ws_policy_action a)
{
	switch (a) {
	case WS_POLICY_ALLOW:
		return "allow";
	case WS_POLICY_ERRNO:
		return "deny";
	case WS_POLICY_KILL:
		return "kill";
	}
	return "?";
}

/* --- the file parser --------------------------------------------------- */

/* A word of a line: [p, p + n). */
struct word {
	const char *p;
	size_t n;
};

static bool
word_is(struct word w, const char *s)
{
	return w.n == strlen(s) && memcmp(w.p, s, w.n) == 0;
}

/* Parses a decimal number of at most 4 digits; false when w is not one. */
static bool
word_number(struct word w, long *out)
{
	if (w.n == 0 || w.n > 4)
		return false;
	long v = 0;
	for (size_t i = 0; i < w.n; i++) {
		if (w.p[i] < '0' || w.p[i] > '9')
			return false;
		v = v * 10 + (w.p[i] - '0');
	}
	*out = v;
	return true;
}

static int
parse_errno(struct word w)
{
	long v;
	if (word_number(w, &v))
		return v >= 1 && v <= WS_POLICY_MAX_ERRNO ? (int)v : -1;
	for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		if (word_is(w, errnos[i].name))
			return errnos[i].value;
	return -1;
}

/* The call's number, or __NR_SCMP_ERROR when w names nothing. */
static int
parse_syscall(struct word w)
{
	long v;
	if (word_number(w, &v))
		return v < 1024 ? (int)v : __NR_SCMP_ERROR;
	char name[64];
	if (w.n >= sizeof(name))
		return __NR_SCMP_ERROR;
	memcpy(name, w.p, w.n);
	name[w.n] = '\0';
	for (size_t i = 0; i < w.n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return __NR_SCMP_ERROR;
	}
	return seccomp_syscall_resolve_name(name);
}

/* Splits a line (comment removed) into at most max words; returns the count, or max + 1. */
static size_t
split(const char *s, size_t n, struct word *w, size_t max)
{
	size_t count = 0, i = 0;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i == n)
			return count;
		size_t start = i;
		while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			i++;
		if (count == max)
			return max + 1;
		w[count].p = s + start;
		w[count].n = i - start;
		count++;
	}
}

/* Prints "SOURCE:LINE: " then fmt into err. */
__attribute__((format(printf, 5, 6))) static int
fail(char *err, size_t errlen, const char *source, size_t line, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return -EINVAL;
	int n = snprintf(err, errlen, "%s:%zu: ", source, line);
	if (n >= 0 && (size_t)n < errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A word for a message: at most 40 bytes, control bytes shown as '?'. */
static const char *
shown(struct word w, char *buf, size_t len)
{
	size_t n = w.n < len - 1 ? w.n : len - 1;
	if (n > 40)
		n = 40;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w.p[i];
		buf[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	buf[n] = '\0';
	return buf;
}

int
ws_policy_parse(struct ws_policy *p, const char *text, size_t len, const char *source, char *err,
		size_t errlen)
{
	if (len > WS_POLICY_MAX_FILE)
		return fail(err, errlen, source, 0, "longer than %d bytes", WS_POLICY_MAX_FILE);
	if (p->files == UINT16_MAX - 1)
		return fail(err, errlen, source, 0, "too many policy files");

	/*
	 * Parse into a copy so that a bad line leaves p as it was. The copy is
	 * ~20 KiB: on the heap, not the stack.
	 */
	struct ws_policy *q = malloc(sizeof(*q));
	if (!q) {
		if (err)
			snprintf(err, errlen, "%s: out of memory", source);
		return -ENOMEM;
	}
	*q = *p;
	uint16_t origin = (uint16_t)(q->files + 1);
	int rc = 0;
	char buf[48];
	size_t lineno = 0;
	for (size_t pos = 0; pos < len;) {
		lineno++;
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *line = text + pos;
		size_t n = end - pos;
		pos = end + 1;

		if (n > WS_POLICY_MAX_LINE) {
			rc = fail(err, errlen, source, lineno, "line longer than %d bytes",
				  WS_POLICY_MAX_LINE);
			goto out;
		}
		if (memchr(line, '\0', n)) {
			rc = fail(err, errlen, source, lineno, "NUL byte");
			goto out;
		}
		const char *hash = memchr(line, '#', n);
		if (hash)
			n = (size_t)(hash - line);

		struct word w[3];
		size_t count = split(line, n, w, 3);
		if (count == 0)
			continue;

		enum ws_policy_action action;
		if (word_is(w[0], "allow"))
			action = WS_POLICY_ALLOW;
		else if (word_is(w[0], "deny"))
			action = WS_POLICY_ERRNO;
		else if (word_is(w[0], "kill"))
			action = WS_POLICY_KILL;
		else {
			rc = fail(err, errlen, source, lineno,
				  "unknown action '%s' (expected allow, deny or kill)",
				  shown(w[0], buf, sizeof(buf)));
			goto out;
		}
		size_t max = action == WS_POLICY_ERRNO ? 3 : 2;
		if (count < 2 || count > max) {
			rc = fail(err, errlen, source, lineno,
				  action == WS_POLICY_ERRNO ? "expected 'deny SYSCALL [ERRNO]'"
							    : "expected '%s SYSCALL'",
				  ws_policy_action_name(action));
			goto out;
		}
		int nr = parse_syscall(w[1]);
		if (nr == __NR_SCMP_ERROR) {
			rc = fail(err, errlen, source, lineno, "unknown system call '%s'",
				  shown(w[1], buf, sizeof(buf)));
			goto out;
		}
		int e = EPERM;
		if (count == 3 && (e = parse_errno(w[2])) < 0) {
			rc = fail(err, errlen, source, lineno,
				  "unknown errno '%s' (a name such as EACCES, or 1..4094)",
				  shown(w[2], buf, sizeof(buf)));
			goto out;
		}
		for (size_t i = 0; i < q->n; i++) {
			if (q->rules[i].nr == nr && q->rules[i].origin == origin) {
				rc = fail(err, errlen, source, lineno,
					  "'%s' already has a rule on line %u",
					  shown(w[1], buf, sizeof(buf)), q->rules[i].line);
				goto out;
			}
		}
		drop_rules(q, nr, origin);
		struct ws_policy_rule r = {
			.nr = nr,
			.action = (uint8_t)action,
			.err = action == WS_POLICY_ERRNO ? (uint16_t)e : 0,
			.origin = origin,
			.line = (uint32_t)lineno,
		};
		if (push(q, &r) != 0) {
			rc = fail(err, errlen, source, lineno, "more than %d rules",
				  WS_POLICY_MAX_RULES);
			goto out;
		}
	}
	q->files = origin;
	*p = *q;
out:
	free(q);
	return rc;
}

int
ws_policy_load_file(struct ws_policy *p, const char *path, char *err, size_t errlen)
{
	int rc = 0;
	char *text = NULL;
	/* O_NONBLOCK: opening a FIFO must not wait for a writer */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		if (err)
			snprintf(err, errlen, "%s: not a regular file", path);
		rc = -EINVAL;
		goto out;
	}
	text = malloc(WS_POLICY_MAX_FILE + 1);
	if (!text) {
		rc = -ENOMEM;
		goto fail;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, text + len, WS_POLICY_MAX_FILE + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > WS_POLICY_MAX_FILE) {
			if (err)
				snprintf(err, errlen, "%s: longer than %d bytes", path,
					 WS_POLICY_MAX_FILE);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = ws_policy_parse(p, text, len, path, err, errlen);
	goto out;
fail:
	if (err)
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
out:
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Writes one argument condition ("arg1 & 0xf == 0x3"); returns what snprintf does. */
static int
format_cond(char *buf, size_t len, uint8_t cmp, uint8_t arg, uint64_t mask, uint64_t value)
{
	switch (cmp) {
	case WS_POLICY_MASKED_EQ:
		return snprintf(buf, len, "arg%u & %#llx == %#llx", arg, (unsigned long long)mask,
				(unsigned long long)value);
	case WS_POLICY_NE:
		return snprintf(buf, len, "arg%u != %llu", arg, (unsigned long long)value);
	case WS_POLICY_EQ:
		return snprintf(buf, len, "arg%u == %llu", arg, (unsigned long long)value);
	case WS_POLICY_ONLY:
		return snprintf(buf, len, "arg%u == %#llx", arg, (unsigned long long)value);
	}
	return 0;
}

const char *
ws_policy_rule_format(const struct ws_policy_rule *r, char *buf, size_t len)
{
	char *name = r->nr >= 0 ? seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, r->nr) : NULL;
	char num[16];
	snprintf(num, sizeof(num), "%d", r->nr);
	const char *call = name ? name : num;
	int n;
	if (r->action == WS_POLICY_ERRNO) {
		const char *en = ws_policy_errno_name(r->err);
		if (en)
			n = snprintf(buf, len, "deny %s %s", call, en);
		else
			n = snprintf(buf, len, "deny %s %u", call, r->err);
	} else {
		n = snprintf(buf, len, "%s %s",
			     ws_policy_action_name((enum ws_policy_action)r->action), call);
	}
	if (n >= 0 && (size_t)n < len && r->cmp != WS_POLICY_ALWAYS) {
		int m = snprintf(buf + n, len - (size_t)n, "  # %s ",
				 r->cmp == WS_POLICY_ONLY ? "unless" : "when");
		if (m > 0 && (size_t)(n + m) < len)
			n += m + format_cond(buf + n + m, len - (size_t)(n + m), r->cmp, r->arg,
					     r->mask, r->value);
		if (r->cmp2 != WS_POLICY_ALWAYS && n >= 0 && (size_t)n < len) {
			m = snprintf(buf + n, len - (size_t)n, " and ");
			if (m > 0 && (size_t)(n + m) < len)
				format_cond(buf + n + m, len - (size_t)(n + m), r->cmp2, r->arg2,
					    r->mask2, r->value2);
		}
	}
	free(name);
	return buf;
}
