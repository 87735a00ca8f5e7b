/*
 * The parent's side of the command sandbox: its settings and their flags,
 * preparation (everything that allocates or reads a file, done once before
 * the first fork), what a prepared sandbox will do, and reading a child's
 * failure. The child's steps are sandbox_child.c's, servers'
 * self-confinement sandbox_self.c's, the filter a backend's
 * (sandbox_seccomp.c, sandbox_null.c).
 */
#define _GNU_SOURCE /* getgrouplist, unshare */

#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox_backend.h"
#include "sandbox_private.h"

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
			.mem_bytes = WS_SANDBOX_DEFAULT_MEM,
		},
		.shm_bytes = WS_SANDBOX_DEFAULT_SHM,
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

/* --- the settings as flags ----------------------------------------------- */

static bool
check_profile(const char *v)
{
	enum ws_sandbox_profile p;
	return ws_sandbox_profile_parse(v, &p);
}

static bool
check_isolate(const char *v)
{
	unsigned bits;
	return ws_sandbox_isolate_parse(v, &bits);
}

static bool
check_user(const char *v)
{
	return *v != '\0';
}

#define OPT(field) offsetof(struct ws_sandbox_options, field)

/*
 * The bounds are ws-rpc's, the program these settings are deployed with:
 * ws-sandbox-run, where an operator tries them first, must refuse what
 * ws-rpc would refuse. --limit-nofile 1 or 2 is refused by ws_sandbox_create.
 */
static const struct ws_option options[] = {
	{ "seccomp-profile", "WS_SECCOMP_PROFILE", "PROFILE", WS_OPT_STRING, OPT(profile), 0, 0,
	  "the commands' seccomp profile: default, nonet or none", check_profile },
	{ "seccomp-policy", "WS_SECCOMP_POLICY", "FILE", WS_OPT_STRING, OPT(policy), 0, 0,
	  "a policy file layered over the profile (docs/security.md)", NULL },
	{ "limit-cpu", "WS_LIMIT_CPU", "SECONDS", WS_OPT_UINT, OPT(limits.cpu_s), 0, 86400,
	  "CPU seconds per command, then SIGXCPU (0: inherited)", NULL },
	{ "limit-as", "WS_LIMIT_AS", "BYTES", WS_OPT_SIZE, OPT(limits.as_bytes), 0, 1ull << 48,
	  "address space per command (0: inherited)", NULL },
	{ "limit-nproc", "WS_LIMIT_NPROC", "N", WS_OPT_UINT, OPT(limits.nproc), 0, 1u << 22,
	  "processes per command: a pids cgroup as root, and RLIMIT_NPROC (0: inherited)", NULL },
	{ "limit-fsize", "WS_LIMIT_FSIZE", "BYTES", WS_OPT_SIZE, OPT(limits.fsize_bytes), 0,
	  1ull << 48, "largest file a command writes, then SIGXFSZ (0: inherited)", NULL },
	{ "limit-nofile", "WS_LIMIT_NOFILE", "N", WS_OPT_UINT, OPT(limits.nofile), 0, 1u << 20,
	  "open descriptors per command, at least 3 (0: inherited)", NULL },
	{ "limit-mem", "WS_LIMIT_MEM", "BYTES", WS_OPT_SIZE, OPT(limits.mem_bytes), 0, 1ull << 48,
	  "memory per command, its whole process tree with the files it writes to tmpfs: a "
	  "memory cgroup as root, then the OOM killer (0: none)",
	  NULL },
	{ "shm-size", "WS_SHM_SIZE", "BYTES", WS_OPT_SIZE, OPT(shm_bytes), 0, 1ull << 48,
	  "as root, the size of a private /dev/shm all commands share (0: the host's)", NULL },
	{ "run-as", "WS_RUN_AS", "USER", WS_OPT_STRING, OPT(run_as), 0, 0,
	  "run commands as USER and its groups (as root the default is " WS_SANDBOX_DEFAULT_USER
	  ", which must exist; without root, the caller's own user)",
	  check_user },
	{ "run-as-self", "WS_RUN_AS_SELF", NULL, WS_OPT_FLAG, OPT(run_as_self), 0, 0,
	  "run commands as the caller's own user, root included (unsafe: they can reach it)",
	  NULL },
	{ "isolate", "WS_ISOLATE", "LIST", WS_OPT_STRING, OPT(isolate), 0, 0,
	  "namespaces for each command, comma-separated: net,pid,mount,user", check_isolate },
};

_Static_assert(sizeof(options) / sizeof(options[0]) == WS_SANDBOX_OPTIONS,
	       "WS_SANDBOX_OPTIONS counts the rows");

void
ws_sandbox_options_defaults(struct ws_sandbox_options *o)
{
	struct ws_sandbox_config cfg;
	ws_sandbox_config_defaults(&cfg);
	*o = (struct ws_sandbox_options){
		.profile = ws_sandbox_profile_name(cfg.profile),
		.limits = cfg.limits,
		.shm_bytes = cfg.shm_bytes,
	};
}

size_t
ws_sandbox_options_rows(struct ws_option *out, size_t max, size_t base)
{
	if (max < WS_SANDBOX_OPTIONS)
		return 0;
	for (size_t i = 0; i < WS_SANDBOX_OPTIONS; i++) {
		out[i] = options[i];
		out[i].offset += base;
	}
	return WS_SANDBOX_OPTIONS;
}

int
ws_sandbox_options_config(const struct ws_sandbox_options *o, struct ws_sandbox_config *cfg,
			  char *err, size_t errlen)
{
	ws_sandbox_config_defaults(cfg);
	cfg->limits = o->limits;
	cfg->policy_file = o->policy;
	cfg->run_as = o->run_as;
	cfg->run_as_self = o->run_as_self;
	cfg->shm_bytes = o->shm_bytes;
	if (o->profile && !ws_sandbox_profile_parse(o->profile, &cfg->profile)) {
		snprintf(err, errlen, "--seccomp-profile: unknown profile '%s'", o->profile);
		return -EINVAL;
	}
	if (o->isolate && !ws_sandbox_isolate_parse(o->isolate, &cfg->isolate)) {
		snprintf(err, errlen, "--isolate: bad list '%s'", o->isolate);
		return -EINVAL;
	}
	return 0;
}

int
ws_sandbox_exit_status(int rc)
{
	/*
	 * A bad policy file, path or user is the operator's to fix, a missing
	 * default user the machine's set-up: no retry helps (s6: 100).
	 */
	if (rc == -EINVAL || rc == -ENOENT || rc == -EPERM || rc == -ESRCH)
		return WS_EXIT_USAGE;
	return WS_EXIT_SYSTEM;
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

/*
 * A mount namespace of the caller's own with a bounded tmpfs on /dev/shm.
 * Returns 0, or -errno with the reason in sb->shm_why (the caller keeps
 * the host's /dev/shm; a failure after unshare leaves it in a namespace
 * that is a copy of the host's, which changes nothing it sees).
 */
static int
private_shm(struct ws_sandbox *sb, uint64_t size)
{
	struct stat st;
	char opts[64];
	if (!sb->root) {
		snprintf(sb->shm_why, sizeof(sb->shm_why), "not root");
		return -EPERM;
	}
	if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(sb->shm_why, sizeof(sb->shm_why), "no /dev/shm directory");
		return -ENOENT;
	}
	snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)size);
	const char *step = NULL;
	if (unshare(CLONE_NEWNS) != 0)
		step = "unshare";
	/* slave: the host's later mounts still reach us, ours never reach it */
	else if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0)
		step = "mount --make-rslave /";
	else if (mount("ws-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
		step = "mount tmpfs /dev/shm";
	if (step) {
		int rc = -errno;
		snprintf(sb->shm_why, sizeof(sb->shm_why), "%s: %s", step, strerror(errno));
		return rc;
	}
	sb->shm_bytes = size;
	return 0;
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
	ws_cgroup_init(&sb->pids);
	ws_cgroup_init(&sb->mem);
	ws_cgroup_init(&sb->cpu);

	/* 0 keeps the inherited limit; below 3 not even stdio fits */
	if (cfg->limits.nofile && cfg->limits.nofile < 3) {
		snprintf(err, errlen,
			 "--limit-nofile %u: below 3, not even the standard descriptors fit "
			 "(0 keeps the inherited limit)",
			 (unsigned)cfg->limits.nofile);
		rc = -EINVAL;
		goto fail;
	}

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
	if (!sb->limits.nproc)
		snprintf(sb->pids.why, sizeof(sb->pids.why), "no process limit asked for");
	else if (ws_cgroup_open(&sb->pids, "pids") == 0)
		ws_cgroup_set(&sb->pids, "pids.max", sb->limits.nproc, false);
	if (!sb->limits.mem_bytes) {
		snprintf(sb->mem.why, sizeof(sb->mem.why), "no memory limit asked for");
	} else if (ws_cgroup_open(&sb->mem, "memory") == 0) {
		uint64_t m = sb->limits.mem_bytes;
		/* no swap: the limit is memory, not memory plus whatever swap there is */
		if (sb->mem.v2) {
			ws_cgroup_set(&sb->mem, "memory.max", m, false);
			ws_cgroup_set(&sb->mem, "memory.swap.max", 0, true);
			/* an OOM kill ends the whole command, not one process of it */
			ws_cgroup_set(&sb->mem, "memory.oom.group", 1, true);
		} else {
			ws_cgroup_set(&sb->mem, "memory.limit_in_bytes", m, false);
			/* present only with swap accounting; must be >= the limit, so after it */
			ws_cgroup_set(&sb->mem, "memory.memsw.limit_in_bytes", m, true);
		}
	}
	/*
	 * Every command leads a session of its own (setsid), and with the
	 * scheduler's autogroups each session is a scheduling group: commands
	 * started in a stream were each a new group, and one of them could
	 * wait, runnable, for hundreds of ms behind the newer ones. In one cpu
	 * cgroup autogroups do not apply: the commands share one group and
	 * its fairness, and together one share beside the server's.
	 */
	ws_cgroup_open_shared(&sb->cpu, "cpu");
	if (!cfg->shm_bytes)
		snprintf(sb->shm_why, sizeof(sb->shm_why), "--shm-size 0");
	else
		private_shm(sb, cfg->shm_bytes);
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
	ws_cgroup_close(&sb->pids);
	ws_cgroup_close(&sb->mem);
	ws_cgroup_close(&sb->cpu);
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
	if (sb->pids.fd >= 0)
		return sb->pids.path;
	if (why)
		*why = sb->pids.why;
	return NULL;
}

const char *
ws_sandbox_mem_cgroup(const struct ws_sandbox *sb, const char **why)
{
	if (sb->mem.fd >= 0)
		return sb->mem.path;
	if (why)
		*why = sb->mem.why;
	return NULL;
}

uint64_t
ws_sandbox_shm(const struct ws_sandbox *sb, const char **why)
{
	if (!sb->shm_bytes && why)
		*why = sb->shm_why;
	return sb->shm_bytes;
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

bool
ws_sandbox_child_forks(const struct ws_sandbox *sb)
{
	return sb->isolate != 0;
}

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
