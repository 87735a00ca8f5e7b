/*
 * The child's side of the command sandbox, between fork and exec. Every
 * step here is a system call on memory ws_sandbox_create() filled in the
 * parent (sandbox_child.h says why): no malloc, no stdio, no getpw*, and
 * errno is the only report until the caller writes *why to its pipe.
 */
#define _GNU_SOURCE /* unshare, setresuid, close_range, pipe2, NSIG */

#include "sandbox_child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox_private.h"

static int
failed(struct ws_sandbox_failure *why, enum ws_sandbox_step step, int err)
{
	why->step = (int32_t)step;
	why->err = err ? err : EIO;
	return -why->err;
}

static void
reset_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigemptyset(&sa.sa_mask);
	/* glibc's own real-time signals refuse with EINVAL: nothing to reset */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &sa, NULL);
}

static int
close_fds(int keep_fd)
{
	unsigned first = 3;
	if (keep_fd > 2) {
		if (fcntl(keep_fd, F_SETFD, FD_CLOEXEC) != 0)
			return -1;
		if (keep_fd > 3 && syscall(SYS_close_range, 3u, (unsigned)keep_fd - 1, 0u) != 0)
			goto fallback;
		first = (unsigned)keep_fd + 1;
	}
	if (syscall(SYS_close_range, first, ~0u, 0u) == 0)
		return 0;
fallback:
	if (errno != ENOSYS)
		return -1;
	/* kernels before 5.9: close one by one up to the descriptor limit */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	int max = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 20 ? 1 << 20
									: (int)rl.rlim_cur;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep_fd)
			close(fd);
	return 0;
}

/* PR_SET_PDEATHSIG, then makes sure the parent did not already go. */
static int
arm_pdeathsig(pid_t parent)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		return -1;
	if (getppid() != parent) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

static int
set_limit(int resource, uint64_t value, uint64_t hard_extra)
{
	struct rlimit rl;
	if (getrlimit(resource, &rl) != 0)
		return -1;
	/* only ever lower: a limit above the inherited hard one would fail */
	rlim_t want = (rlim_t)value;
	rlim_t hard = want + (rlim_t)hard_extra;
	if (rl.rlim_max != RLIM_INFINITY && hard > rl.rlim_max)
		hard = rl.rlim_max;
	if (want > hard)
		want = hard;
	rl.rlim_cur = want;
	rl.rlim_max = hard;
	return setrlimit(resource, &rl);
}

static int
apply_limits(const struct ws_sandbox_limits *l)
{
	struct rlimit core = { 0, 0 };
	if (setrlimit(RLIMIT_CORE, &core) != 0)
		return -1;
	/* the hard CPU limit a second later turns an ignored SIGXCPU into SIGKILL */
	if (l->cpu_s && set_limit(RLIMIT_CPU, l->cpu_s, 1) != 0)
		return -1;
	if (l->as_bytes && set_limit(RLIMIT_AS, l->as_bytes, 0) != 0)
		return -1;
	if (l->nproc && set_limit(RLIMIT_NPROC, l->nproc, 0) != 0)
		return -1;
	if (l->fsize_bytes && set_limit(RLIMIT_FSIZE, l->fsize_bytes, 0) != 0)
		return -1;
	if (l->nofile && set_limit(RLIMIT_NOFILE, l->nofile, 0) != 0)
		return -1;
	return 0;
}

/* Writes "ID ID 1\n" to a map file: no stdio after fork. */
static int
write_map_fd(int fd, unsigned id)
{
	char digits[12], line[32];
	size_t nd = 0, n = 0;
	do {
		digits[nd++] = (char)('0' + id % 10);
		id /= 10;
	} while (id);
	for (int twice = 0; twice < 2; twice++) {
		for (size_t i = nd; i-- > 0;)
			line[n++] = digits[i];
		line[n++] = ' ';
	}
	line[n++] = '1';
	line[n++] = '\n';
	return write(fd, line, n) == (ssize_t)n ? 0 : -1;
}

static int
loopback_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	int saved = errno;
	close(s);
	errno = saved;
	return rc;
}

/* The pid of the command, for the forwarder outside its pid namespace. */
static volatile pid_t forward_to;

static void
forward_signal(int sig)
{
	int saved = errno;
	kill(forward_to, sig);
	errno = saved;
}

/*
 * Outside the new pid namespace: pass signals on to the command, wait for
 * it, and end the same way it did. Never returns.
 */
static void
forwarder(pid_t command)
{
	forward_to = command;
	struct sigaction sa = { .sa_handler = forward_signal };
	sigfillset(&sa.sa_mask);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD)
			sigaction(s, &sa, NULL);
	int status;
	while (waitpid(command, &status, 0) < 0)
		if (errno != EINTR)
			_exit(111);
	if (WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	int sig = WTERMSIG(status);
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	kill(getpid(), sig);
	_exit(128 + sig);
}

/*
 * The user namespace's maps, written for the caller by a process forked
 * before the privilege drop. Writing its own maps after the drop would
 * need the caller dumpable (its /proc files are root's otherwise), and a
 * dumpable caller still holding a copy of the server's memory (its token)
 * could be read through /proc/PID/mem by any process of the same user
 * until exec. The mapper stays root, outside the new namespace, and the
 * caller stays non-dumpable until exec.
 */
struct mapper {
	pid_t pid; /* 0: none; the caller maps itself */
	int go;    /* the caller's end: one byte once it has unshared */
	int proc;  /* the caller's /proc/PID directory */
	uid_t uid; /* the ids to map, the dropped ones */
	gid_t gid;
};

/* Writes the three files under the /proc/PID directory dir (-1: /proc/self). */
static int
write_maps(int dir, uid_t uid, gid_t gid)
{
	int d = dir >= 0 ? dir : open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d < 0)
		return -1;
	/* map only the ids we have: the command gains no one else's */
	static const char *const files[] = { "setgroups", "uid_map", "gid_map" };
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < 3; i++) {
		int fd = openat(d, files[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -1;
			break;
		}
		rc = i == 0 ? (write(fd, "deny", 4) == 4 ? 0 : -1)
			    : write_map_fd(fd, i == 1 ? (unsigned)uid : (unsigned)gid);
		int saved = errno;
		close(fd);
		errno = saved;
	}
	if (d != dir) {
		int saved = errno;
		close(d);
		errno = saved;
	}
	return rc;
}

/*
 * Forks the mapper (root, before the drop): it waits for the go byte,
 * writes the caller's maps and exits 0, or 1 when it could not.
 */
static int
start_mapper(struct mapper *m, const struct ws_sandbox *sb)
{
	int p[2];
	m->uid = sb->run_as ? sb->uid : geteuid();
	m->gid = sb->run_as ? sb->gid : getegid();
	/* /proc/self, not /proc/PID: the pid this process has in /proc's namespace */
	m->proc = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->proc < 0)
		return -1;
	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	m->pid = fork();
	if (m->pid < 0)
		return -1;
	if (m->pid == 0) {
		char byte;
		close(p[1]);
		ssize_t n;
		while ((n = read(p[0], &byte, 1)) < 0 && errno == EINTR)
			;
		_exit(n == 1 && write_maps(m->proc, m->uid, m->gid) == 0 ? 0 : 1);
	}
	close(p[0]);
	m->go = p[1];
	return 0;
}

/* After unshare: lets the mapper write the maps and waits for it. */
static int
finish_mapper(struct mapper *m)
{
	ssize_t w = write(m->go, "g", 1);
	close(m->go);
	close(m->proc);
	int status;
	while (waitpid(m->pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	m->pid = 0;
	if (w != 1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/*
 * Enters the namespaces in `which`. With PID it forks: the parent becomes
 * the forwarder and *parent is updated in the child, PID 1 of the new
 * namespace. With USER the maps are written by m's mapper when it has
 * one, else by the caller itself (made dumpable for it, then not again).
 */
static int
isolate(unsigned which, int keep_fd, pid_t *parent, struct mapper *m)
{
	if (!which)
		return 0;
	int flags = 0;
	if (which & WS_SANDBOX_ISOLATE_USER)
		flags |= CLONE_NEWUSER;
	if (which & WS_SANDBOX_ISOLATE_NET)
		flags |= CLONE_NEWNET;
	if (which & WS_SANDBOX_ISOLATE_PID)
		flags |= CLONE_NEWPID;
	if (which & WS_SANDBOX_ISOLATE_MOUNT)
		flags |= CLONE_NEWNS;
	bool self_map = (which & WS_SANDBOX_ISOLATE_USER) && !m->pid;
	/*
	 * without root (no mapper possible): /proc/self is root's while not
	 * dumpable; the window lasts until the maps are written
	 */
	if (self_map && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		return -1;
	/* read before unshare: inside, until mapped, they read as the overflow id */
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (unshare(flags) != 0)
		return -1;
	if (self_map && (write_maps(-1, uid, gid) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0))
		return -1;
	if ((which & WS_SANDBOX_ISOLATE_USER) && m->pid && finish_mapper(m) != 0)
		return -1;
	if ((which & WS_SANDBOX_ISOLATE_NET) && loopback_up() != 0)
		return -1;
	if ((which & WS_SANDBOX_ISOLATE_MOUNT) &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		return -1;
	if (which & WS_SANDBOX_ISOLATE_PID) {
		pid_t pid = fork();
		if (pid < 0)
			return -1;
		if (pid > 0) {
			if (keep_fd > 2)
				close(keep_fd);
			forwarder(pid);
		}
		/*
		 * The forwarder is outside this namespace, so getppid() reads 0
		 * here, whether it lives or not: arm_pdeathsig() can only check
		 * for 0. The forwarder dies only by SIGKILL, which the command's
		 * process group (this process included) gets as well.
		 */
		*parent = 0;
		if (arm_pdeathsig(0) != 0)
			return -1;
		if ((which & WS_SANDBOX_ISOLATE_MOUNT) &&
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
			return -1;
	}
	return 0;
}

/*
 * The command's standard descriptors are usually pipes or sockets its
 * caller made, owned by the caller with mode 0600: reopening them by path
 * (`echo x > /dev/stderr`, /proc/self/fd/1) would fail for the new user.
 * Hand those (never a file, a named FIFO or a terminal) to the user.
 */
static void
hand_over_stdio(const struct ws_sandbox *sb)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct statfs fs;
		if (fstatfs(fd, &fs) == 0 &&
		    (fs.f_type == PIPEFS_MAGIC || fs.f_type == SOCKFS_MAGIC))
			if (fchown(fd, sb->uid, sb->gid) != 0)
				continue; /* best effort: the command still has the descriptor */
	}
}

/*
 * Raw system calls, not glibc's wrappers: in a multi-threaded process those
 * broadcast the change to every thread glibc knows of (SIGSETXID), and a
 * child that shares the server's memory (rpc/exec's clone(CLONE_VM)) would
 * find the server's threads in that list. The child is one thread: the
 * kernel's per-task change is the whole change.
 */
static int
drop_privileges(const struct ws_sandbox *sb)
{
	hand_over_stdio(sb);
	if (syscall(SYS_setgroups, (size_t)sb->ngroups, sb->groups) != 0 ||
	    syscall(SYS_setresgid, sb->gid, sb->gid, sb->gid) != 0 ||
	    syscall(SYS_setresuid, sb->uid, sb->uid, sb->uid) != 0)
		return -1;
	/* fail closed if root can be had back */
	if (syscall(SYS_setresuid, -1, 0, -1) == 0 || syscall(SYS_setuid, 0) == 0 ||
	    (sb->gid != 0 && syscall(SYS_setgid, 0) == 0)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
ws_sandbox_child_apply(const struct ws_sandbox *sb, pid_t parent, int keep_fd,
		       struct ws_sandbox_failure *why)
{
	reset_signals();
	sigset_t none;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		return failed(why, WS_SANDBOX_STEP_SIGNALS, errno);
	/* first, so that everything the command starts is counted */
	int rc;
	if ((rc = ws_cgroup_join(&sb->pids)) != 0 || (rc = ws_cgroup_join(&sb->mem)) != 0 ||
	    (rc = ws_cgroup_join(&sb->cpu)) != 0)
		return failed(why, WS_SANDBOX_STEP_CGROUP, -rc);
	/* a terminal's command is already the leader of its own session (the pty's) */
	if (setsid() < 0 && getsid(0) != getpid())
		return failed(why, WS_SANDBOX_STEP_SETSID, errno);
	if (close_fds(keep_fd) != 0)
		return failed(why, WS_SANDBOX_STEP_FDS, errno);
	if (arm_pdeathsig(parent) != 0)
		return failed(why, WS_SANDBOX_STEP_PDEATHSIG, errno);
	if (apply_limits(&sb->limits) != 0)
		return failed(why, WS_SANDBOX_STEP_RLIMITS, errno);

	/*
	 * Root enters net, pid and mount namespaces before dropping privileges
	 * (it needs them to); the user namespace comes after, so that it maps
	 * the dropped ids. Without root, all of them come together, the user
	 * namespace first, which is what makes the others possible.
	 */
	unsigned user = sb->isolate & WS_SANDBOX_ISOLATE_USER;
	unsigned early = sb->root ? sb->isolate & ~user : 0;
	unsigned late = sb->root ? user : sb->isolate;
	struct mapper m = { .pid = 0, .go = -1, .proc = -1 };
	if (isolate(early, keep_fd, &parent, &m) != 0)
		return failed(why, WS_SANDBOX_STEP_ISOLATE, errno);
	/* root maps the user namespace from outside: see struct mapper */
	if (sb->root && user && start_mapper(&m, sb) != 0)
		return failed(why, WS_SANDBOX_STEP_ISOLATE, errno);
	if (sb->run_as && drop_privileges(sb) != 0)
		return failed(why, WS_SANDBOX_STEP_RUN_AS, errno);
	if (isolate(late, keep_fd, &parent, &m) != 0)
		return failed(why, WS_SANDBOX_STEP_ISOLATE, errno);
	/* a change of credentials clears the death signal: arm it again */
	if ((sb->run_as || sb->isolate) && arm_pdeathsig(parent) != 0)
		return failed(why, WS_SANDBOX_STEP_PDEATHSIG, errno);

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return failed(why, WS_SANDBOX_STEP_NO_NEW_PRIVS, errno);
	rc = sb->backend->install(sb->state, 0);
	if (rc != 0)
		return failed(why, WS_SANDBOX_STEP_FILTER, -rc);
	return 0;
}
