/*
 * The sandbox interface: configuration, preparation in the parent, the
 * child-side steps between fork and exec, and servers' self-confinement.
 * The filter itself is a backend's (sandbox_seccomp.c, sandbox_null.c).
 */
#define _GNU_SOURCE /* unshare, setresuid, getgrouplist, close_range, NSIG */

#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/magic.h>
#include <net/if.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "pids.h"
#include "sandbox_backend.h"

/* AddressSanitizer builds (gcc defines the macro, clang has the feature) */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED true
#endif
#endif
#ifndef SANITIZED
#define SANITIZED false
#endif

struct ws_sandbox {
	const struct ws_sandbox_backend *backend;
	void *state;              /* the backend's */
	struct ws_policy *policy; /* NULL with the null backend */
	struct ws_sandbox_limits limits;
	unsigned isolate;
	bool root; /* euid 0 when prepared */
	bool run_as;
	uid_t uid;
	gid_t gid;
	size_t ngroups;
	gid_t *groups;
	char *user;  /* the name of the user switched to */
	int pids_fd; /* the pids cgroup's directory, or -1 */
	char pids_path[4096];
	char pids_why[256]; /* why there is none */
};

void
ws_sandbox_config_defaults(struct ws_sandbox_config *cfg)
{
	*cfg = (struct ws_sandbox_config){
		.profile = WS_SANDBOX_DEFAULT,
		.limits = {
			.cpu_s = WS_SANDBOX_DEFAULT_CPU_S,
			.as_bytes = WS_SANDBOX_DEFAULT_AS,
			.nproc = WS_SANDBOX_DEFAULT_NPROC,
			.fsize_bytes = WS_SANDBOX_DEFAULT_FSIZE,
			.nofile = WS_SANDBOX_DEFAULT_NOFILE,
		},
	};
}

static const char *const profile_names[] = { "default", "nonet", "none" };

bool
ws_sandbox_profile_parse(const char *name, enum ws_sandbox_profile *out)
{
	for (size_t i = 0; i < sizeof(profile_names) / sizeof(profile_names[0]); i++) {
		if (strcmp(name, profile_names[i]) == 0) {
			*out = (enum ws_sandbox_profile)i;
			return true;
		}
	}
	return false;
}

const char *
ws_sandbox_profile_name(enum ws_sandbox_profile p)
{
	return (unsigned)p < 3 ? profile_names[p] : "?";
}

bool
ws_sandbox_isolate_parse(const char *list, unsigned *out)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "net", WS_SANDBOX_ISOLATE_NET },
		{ "pid", WS_SANDBOX_ISOLATE_PID },
		{ "mount", WS_SANDBOX_ISOLATE_MOUNT },
		{ "user", WS_SANDBOX_ISOLATE_USER },
	};
	unsigned bits = 0;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		bool known = false;
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
			if (n == strlen(words[i].name) && memcmp(p, words[i].name, n) == 0) {
				bits |= words[i].bit;
				known = true;
			}
		}
		if (!known)
			return false;
		p += n;
		if (*p == ',' && *++p == '\0')
			return false;
	}
	*out = bits;
	return true;
}

/* --- preparation (parent) ----------------------------------------------- */

static int
resolve_user(struct ws_sandbox *sb, const char *who, bool dflt, char *err, size_t errlen)
{
	struct passwd *pw;
	char *end;
	errno = 0;
	unsigned long id = strtoul(who, &end, 10);
	if (*who >= '0' && *who <= '9' && *end == '\0' && id <= UINT32_MAX - 1)
		pw = getpwuid((uid_t)id);
	else
		pw = getpwnam(who);
	if (!pw && dflt) {
		snprintf(err, errlen,
			 "commands run as the user '%s', which does not exist: create it "
			 "(useradd --system --user-group --no-create-home --home-dir /nonexistent "
			 "--shell /usr/sbin/nologin %s), or name another with --run-as USER "
			 "(or keep root with --run-as-self: commands can then reach the server)",
			 who, who);
		return -ESRCH;
	}
	if (!pw) {
		snprintf(err, errlen, "--run-as: no such user '%s'", who);
		return -EINVAL;
	}
	if (pw->pw_uid == 0) {
		snprintf(err, errlen, "--run-as: '%s' is root; name an unprivileged user", who);
		return -EINVAL;
	}
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid())
			return 0; /* already that user: nothing to drop */
		snprintf(err, errlen, "--run-as %s needs root", who);
		return -EPERM;
	}
	sb->run_as = true;
	sb->uid = pw->pw_uid;
	sb->gid = pw->pw_gid;
	sb->user = strdup(pw->pw_name);
	if (!sb->user) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	/* the child cannot read /etc/group: initgroups()'s list, resolved here */
	int n = 16;
	for (;;) {
		gid_t *g = realloc(sb->groups, (size_t)n * sizeof(*g));
		if (!g) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		sb->groups = g;
		int got = n;
		if (getgrouplist(pw->pw_name, pw->pw_gid, g, &got) >= 0) {
			sb->ngroups = (size_t)got;
			return 0;
		}
		if (got <= n || got > 65536) {
			snprintf(err, errlen, "--run-as %s: cannot list its groups", who);
			return -EINVAL;
		}
		n = got;
	}
}

int
ws_sandbox_create(struct ws_sandbox **out, const struct ws_sandbox_config *cfg, char *err,
		  size_t errlen)
{
	int rc;
	struct ws_sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sb->limits = cfg->limits;
	sb->isolate = cfg->isolate;
	sb->root = geteuid() == 0;
	sb->pids_fd = -1;

	if ((unsigned)cfg->profile > WS_SANDBOX_NONE) {
		snprintf(err, errlen, "unknown profile %d", (int)cfg->profile);
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->profile == WS_SANDBOX_NONE && !cfg->policy_file) {
		sb->backend = &ws_sandbox_null_backend;
	} else {
		sb->backend = &ws_sandbox_seccomp_backend;
		sb->policy = malloc(sizeof(*sb->policy));
		if (!sb->policy) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
			goto fail;
		}
		ws_policy_init(sb->policy, WS_POLICY_ALLOW, 0);
		rc = 0;
		if (cfg->profile != WS_SANDBOX_NONE)
			rc = ws_policy_add_set(sb->policy, WS_POLICY_SET_DANGEROUS, err, errlen);
		if (rc == 0 && cfg->profile == WS_SANDBOX_NONET)
			rc = ws_policy_add_set(sb->policy, WS_POLICY_SET_NONET, err, errlen);
		if (rc == 0 && cfg->policy_file)
			rc = ws_policy_load_file(sb->policy, cfg->policy_file, err, errlen);
		if (rc != 0)
			goto fail;
	}
	rc = sb->backend->prepare(sb->policy, &sb->state, err, errlen);
	if (rc != 0)
		goto fail;

	if (cfg->run_as && cfg->run_as_self) {
		snprintf(err, errlen, "--run-as and --run-as-self exclude each other");
		rc = -EINVAL;
		goto fail;
	}
	if (cfg->run_as)
		rc = resolve_user(sb, cfg->run_as, false, err, errlen);
	else if (!cfg->run_as_self && sb->root)
		rc = resolve_user(sb, WS_SANDBOX_DEFAULT_USER, true, err, errlen);
	if (rc != 0)
		goto fail;
	if ((sb->isolate & ~(unsigned)WS_SANDBOX_ISOLATE_USER) && !sb->root &&
	    !(sb->isolate & WS_SANDBOX_ISOLATE_USER)) {
		snprintf(err, errlen, "--isolate net, pid or mount need root, or 'user' as well");
		rc = -EPERM;
		goto fail;
	}
	if (!sb->root)
		snprintf(sb->pids_why, sizeof(sb->pids_why), "not root");
	else if (!sb->limits.nproc)
		snprintf(sb->pids_why, sizeof(sb->pids_why), "no process limit asked for");
	else
		sb->pids_fd = ws_pids_open(sb->pids_path, sizeof(sb->pids_path), sb->pids_why,
					   sizeof(sb->pids_why));
	*out = sb;
	return 0;
fail:
	ws_sandbox_destroy(sb);
	return rc;
}

void
ws_sandbox_destroy(struct ws_sandbox *sb)
{
	if (!sb)
		return;
	if (sb->backend)
		sb->backend->finish(sb->state);
	ws_pids_close(sb->pids_fd, sb->pids_path);
	free(sb->policy);
	free(sb->groups);
	free(sb->user);
	free(sb);
}

const char *
ws_sandbox_user(const struct ws_sandbox *sb)
{
	return sb->run_as ? sb->user : NULL;
}

bool
ws_sandbox_runs_as_root(const struct ws_sandbox *sb)
{
	return sb->root && !sb->run_as;
}

/* Whether uid, gid and groups get `bit` (4 read, 1 search) on st, by its mode. */
static bool
permits(const struct ws_sandbox *sb, const struct stat *st, unsigned bit)
{
	if (st->st_uid == sb->uid)
		return st->st_mode & (bit << 6);
	bool member = st->st_gid == sb->gid;
	for (size_t i = 0; i < sb->ngroups && !member; i++)
		member = sb->groups[i] == st->st_gid;
	return st->st_mode & (member ? bit << 3 : bit);
}

bool
ws_sandbox_user_may_read(const struct ws_sandbox *sb, const char *path)
{
	if (!sb->run_as)
		return false;
	char *full = realpath(path, NULL);
	if (!full)
		return false;
	bool ok = true;
	struct stat st;
	/* every directory from / down to the file's own */
	for (char *slash = full; ok && (slash = strchr(slash + 1, '/'));) {
		*slash = '\0';
		ok = stat(full, &st) == 0 && permits(sb, &st, 1);
		*slash = '/';
	}
	if (ok && stat("/", &st) == 0)
		ok = permits(sb, &st, 1);
	if (ok)
		ok = stat(full, &st) == 0 && permits(sb, &st, 4);
	free(full);
	return ok;
}

const char *
ws_sandbox_pids_cgroup(const struct ws_sandbox *sb, const char **why)
{
	if (sb->pids_fd >= 0)
		return sb->pids_path;
	if (why)
		*why = sb->pids_why;
	return NULL;
}

const struct ws_policy *
ws_sandbox_policy(const struct ws_sandbox *sb)
{
	return sb->policy;
}

const char *
ws_sandbox_backend_name(const struct ws_sandbox *sb)
{
	return sb->backend->name;
}

/* --- the child's steps ---------------------------------------------------- */

static const char *const step_names[] = {
	[WS_SANDBOX_STEP_SIGNALS] = "signals",
	[WS_SANDBOX_STEP_CGROUP] = "cgroup",
	[WS_SANDBOX_STEP_SETSID] = "setsid",
	[WS_SANDBOX_STEP_FDS] = "close-fds",
	[WS_SANDBOX_STEP_PDEATHSIG] = "pdeathsig",
	[WS_SANDBOX_STEP_RLIMITS] = "rlimits",
	[WS_SANDBOX_STEP_ISOLATE] = "isolate",
	[WS_SANDBOX_STEP_RUN_AS] = "run-as",
	[WS_SANDBOX_STEP_NO_NEW_PRIVS] = "no-new-privs",
	[WS_SANDBOX_STEP_FILTER] = "seccomp",
	[WS_SANDBOX_STEP_EXEC] = "exec",
};

const char *
ws_sandbox_step_name(enum ws_sandbox_step step)
{
	return (unsigned)step <= WS_SANDBOX_STEP_EXEC ? step_names[step] : "?";
}

void
ws_sandbox_failure_format(const struct ws_sandbox_failure *f, char *buf, size_t len)
{
	snprintf(buf, len, "%s: %s", ws_sandbox_step_name((enum ws_sandbox_step)f->step),
		 strerror(f->err));
}

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

static int
write_file(const char *path, const char *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t w = write(fd, data, n);
	int saved = errno;
	close(fd);
	errno = saved;
	return w == (ssize_t)n ? 0 : -1;
}

/* Writes "ID ID 1\n" to a /proc/self map file: no stdio after fork. */
static int
write_map(const char *path, unsigned id)
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
	return write_file(path, line, n);
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
 * Enters the namespaces in `which`. With PID it forks: the parent becomes
 * the forwarder and *parent is updated in the child, PID 1 of the new
 * namespace.
 */
static int
isolate(unsigned which, int keep_fd, pid_t *parent)
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
	/* after a privilege drop /proc/self is root's until dumpable again */
	if ((which & WS_SANDBOX_ISOLATE_USER) && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
		return -1;
	/* read before unshare: inside, until mapped, they read as the overflow id */
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (unshare(flags) != 0)
		return -1;
	if (which & WS_SANDBOX_ISOLATE_USER) {
		/* map only the ids we have: the command gains no one else's */
		if (write_file("/proc/self/setgroups", "deny", 4) != 0 ||
		    write_map("/proc/self/uid_map", (unsigned)uid) != 0 ||
		    write_map("/proc/self/gid_map", (unsigned)gid) != 0)
			return -1;
	}
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

static int
drop_privileges(const struct ws_sandbox *sb)
{
	hand_over_stdio(sb);
	if (setgroups(sb->ngroups, sb->groups) != 0 || setresgid(sb->gid, sb->gid, sb->gid) != 0 ||
	    setresuid(sb->uid, sb->uid, sb->uid) != 0)
		return -1;
	/* fail closed if root can be had back */
	if (setuid(0) == 0 || seteuid(0) == 0 || (sb->gid != 0 && setgid(0) == 0)) {
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
	if (sb->pids_fd >= 0 && (rc = ws_pids_join(sb->pids_fd, sb->limits.nproc)) != 0)
		return failed(why, WS_SANDBOX_STEP_CGROUP, -rc);
	if (setsid() < 0)
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
	if (isolate(early, keep_fd, &parent) != 0)
		return failed(why, WS_SANDBOX_STEP_ISOLATE, errno);
	if (sb->run_as && drop_privileges(sb) != 0)
		return failed(why, WS_SANDBOX_STEP_RUN_AS, errno);
	if (isolate(late, keep_fd, &parent) != 0)
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

/* --- servers ------------------------------------------------------------- */

static const char *const self_names[] = { "echo", "broadcast", "rpc" };

/*
 * A call the operator's policy file allows for commands is let through
 * this filter too: stacked filters take the stricter answer, so the
 * command would otherwise still get this filter's EPERM.
 */
static void
allow_policy_file(struct ws_policy *p, const struct ws_policy *children)
{
	for (size_t i = 0; i < children->n; i++) {
		const struct ws_policy_rule *r = &children->rules[i];
		if (r->origin != 0 && r->action == WS_POLICY_ALLOW)
			ws_policy_drop_nr(p, r->nr);
	}
}

/*
 * Lets through what a child's isolation step calls before its own filter:
 * unshare of exactly those namespaces (each other CLONE_NEW* flag still
 * EPERM), and mount for private mounts and /proc.
 */
static int
allow_isolation(struct ws_policy *p, unsigned isolate)
{
	static const struct {
		unsigned isolate;
		uint64_t flag;
	} ns[] = {
		{ WS_SANDBOX_ISOLATE_USER, CLONE_NEWUSER },
		{ WS_SANDBOX_ISOLATE_NET, CLONE_NEWNET },
		{ WS_SANDBOX_ISOLATE_PID, CLONE_NEWPID },
		{ WS_SANDBOX_ISOLATE_MOUNT, CLONE_NEWNS },
		{ 0, CLONE_NEWUTS },
		{ 0, CLONE_NEWIPC },
		{ 0, CLONE_NEWCGROUP },
		{ 0, CLONE_NEWTIME },
	};
	int rc = ws_policy_drop_call(p, "unshare");
	for (size_t i = 0; rc == 0 && i < sizeof(ns) / sizeof(ns[0]); i++) {
		if (isolate & ns[i].isolate)
			continue;
		struct ws_policy_rule r = {
			.action = WS_POLICY_ERRNO,
			.err = EPERM,
			.cmp = WS_POLICY_MASKED_EQ,
			.arg = 0,
			.mask = ns[i].flag,
			.value = ns[i].flag,
		};
		rc = ws_policy_add_rule(p, "unshare", &r);
	}
	if (rc == 0 && (isolate & WS_SANDBOX_ISOLATE_MOUNT))
		rc = ws_policy_drop_call(p, "mount");
	return rc;
}

int
ws_sandbox_confine_self(enum ws_sandbox_self kind, const struct ws_sandbox *children, char *err,
			size_t errlen)
{
	int rc;
	void *state = NULL;
	struct ws_policy *p = malloc(sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	switch (kind) {
	case WS_SANDBOX_SELF_ECHO:
	case WS_SANDBOX_SELF_BROADCAST:
		ws_policy_init(p, WS_POLICY_KILL, 0);
		rc = ws_policy_add_set(p, WS_POLICY_SET_SERVER, err, errlen);
		if (rc == 0 && kind == WS_SANDBOX_SELF_BROADCAST)
			rc = ws_policy_add_set(p, WS_POLICY_SET_SQLITE, err, errlen);
		if (rc == 0 && SANITIZED)
			rc = ws_policy_add_set(p, WS_POLICY_SET_SANITIZER, err, errlen);
		break;
	case WS_SANDBOX_SELF_RPC:
		/*
		 * Commands inherit this filter under their own, so it cannot be
		 * an allowlist: it denies what the `default` profile denies,
		 * except what the children's isolation needs before their own
		 * filter goes on.
		 */
		ws_policy_init(p, WS_POLICY_ALLOW, 0);
		rc = ws_policy_add_set(p, WS_POLICY_SET_DANGEROUS, err, errlen);
		if (rc == 0 && children && children->isolate)
			rc = allow_isolation(p, children->isolate);
		if (rc == 0 && children && children->policy)
			allow_policy_file(p, children->policy);
		/* the leak check ptraces the threads; commands keep their own filter */
		if (rc == 0 && SANITIZED)
			rc = ws_policy_drop_call(p, "ptrace");
		if (rc != 0)
			snprintf(err, errlen, "building the rpc policy: %s", strerror(-rc));
		break;
	default:
		snprintf(err, errlen, "unknown server kind %d", (int)kind);
		rc = -EINVAL;
		break;
	}
	if (rc != 0)
		goto out;
	rc = ws_sandbox_seccomp_backend.prepare(p, &state, err, errlen);
	if (rc != 0)
		goto out;

	ws_log(WS_LOG_INFO, "sandbox self=%s backend=seccomp rules=%zu default=%s sanitizer=%s",
	       self_names[kind], p->n, p->default_action == WS_POLICY_KILL ? "kill" : "allow",
	       SANITIZED ? "yes" : "no");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		rc = -errno;
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		goto out;
	}
	rc = ws_sandbox_seccomp_backend.install(state, WS_SANDBOX_BACKEND_ALL_THREADS);
	if (rc != 0)
		snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-rc));
out:
	ws_sandbox_seccomp_backend.finish(state);
	free(p);
	return rc;
}

/* The slow way: every /proc/PID/stat, looking for our pid as the parent. */
static size_t
children_by_scan(pid_t *out, size_t max)
{
	pid_t self = getpid();
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while (n < max && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* "pid (comm) state ppid ...": comm may hold anything, ')' included */
		char *p = strrchr(buf, ')');
		int ppid;
		char state;
		if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 && ppid == self)
			out[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

int
ws_sandbox_confine_server(enum ws_sandbox_self kind, const struct ws_sandbox *children,
			  bool disabled)
{
	static const char *const names[] = { "echo", "broadcast", "rpc" };
	if (disabled) {
		ws_log(WS_LOG_WARN, "sandbox self=off hint=\"--no-self-sandbox was given\"");
		return 0;
	}
	char err[256];
	int rc = ws_sandbox_confine_self(kind, children, err, sizeof(err));
	if (rc != 0)
		ws_log(WS_LOG_ERROR, "sandbox self=%s failed=yes error=\"%s\"", names[kind], err);
	return rc;
}

size_t
ws_sandbox_children(pid_t *out, size_t max)
{
	/*
	 * One read where the kernel keeps the list (CONFIG_PROC_CHILDREN): a
	 * single-threaded process's children, adopted orphans included, hang
	 * off its main thread.
	 */
	char path[64], buf[8192];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return children_by_scan(out, max);
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len < 0 || len == (ssize_t)sizeof(buf) - 1)
		return children_by_scan(out, max); /* unreadable, or too many to hold */
	buf[len] = '\0';
	size_t n = 0;
	for (char *p = buf, *end; n < max; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0)
			out[n++] = (pid_t)pid;
	}
	return n;
}
