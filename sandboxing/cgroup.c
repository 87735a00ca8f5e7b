/*
 * cgroup: the per-command cgroups (pids, memory). The parent finds a
 * controller's hierarchy and makes the sandbox's cgroup; each child makes
 * and joins its own with system calls only, and sweeps away the cgroups of
 * commands that are gone (so that no hook is needed when a command ends).
 */
#define _GNU_SOURCE /* getdents64 */

#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"

/* --- parent --------------------------------------------------------------- */

/* True when the comma-separated list holds word. */
static bool
has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",\n");
		if (len == n && memcmp(p, word, n) == 0)
			return true;
		p += len;
		p += *p == ',';
		if (*p == '\n')
			break;
	}
	return false;
}

/*
 * This process's cgroup path in the controller's hierarchy: the v1 line
 * naming it, else the v2 line ("0::"). *v2 says which.
 */
static bool
own_cgroup(const char *controller, char *out, size_t len, bool *v2)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return false;
	char line[4096], unified[4096] = "";
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		char *path = c2 + 1;
		path[strcspn(path, "\n")] = '\0';
		if (c1[1] == '\0' && line[0] == '0')
			snprintf(unified, sizeof(unified), "%s", path);
		else if (has_word(c1 + 1, controller)) {
			snprintf(out, len, "%s", path);
			*v2 = false;
			found = true;
		}
	}
	fclose(f);
	if (!found && unified[0]) {
		snprintf(out, len, "%s", unified);
		*v2 = true;
		found = true;
	}
	return found;
}

/* The mount point of that hierarchy, and the cgroup path its root shows. */
static bool
hierarchy(const char *controller, bool v2, char *mnt, size_t mntlen, char *root, size_t rootlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
		char *dash = strstr(line, " - ");
		if (!dash)
			continue;
		char fstype[32], source[256], super[1024] = "", r[1024], m[1024];
		if (sscanf(dash + 3, "%31s %255s %1023s", fstype, source, super) < 2 ||
		    sscanf(line, "%*s %*s %*s %1023s %1023s", r, m) != 2)
			continue;
		if (v2 ? strcmp(fstype, "cgroup2") == 0
		       : strcmp(fstype, "cgroup") == 0 && has_word(super, controller)) {
			snprintf(mnt, mntlen, "%s", m);
			snprintf(root, rootlen, "%s", r);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static int
write_text(int dirfd, const char *file, const char *text)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -errno;
	close(fd);
	return rc;
}

static void sweep(int dirfd, bool all);

/*
 * Removes what servers that died without cleaning up left: ws-sandbox.PID
 * whose PID is gone, with their empty command cgroups.
 */
static void
remove_stale(int parent)
{
	int fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, "ws-sandbox.", 11) != 0)
			continue;
		long pid = strtol(e->d_name + 11, &end, 10);
		if (*end != '\0' || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		int stale = openat(parent, e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (stale >= 0) {
			sweep(stale, true);
			close(stale);
		}
		unlinkat(parent, e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void
ws_cgroup_init(struct ws_cgroup *cg)
{
	*cg = (struct ws_cgroup){ .fd = -1 };
}

bool
ws_cgroup_set(struct ws_cgroup *cg, const char *file, uint64_t value, bool optional)
{
	if (cg->nset >= WS_CGROUP_SETTINGS)
		return false;
	struct ws_cgroup_setting *s = &cg->set[cg->nset++];
	s->file = file;
	snprintf(s->value, sizeof(s->value), "%llu", (unsigned long long)value);
	s->optional = optional;
	return true;
}

/* The reason there is no cgroup, in cg->why (cut to fit). */
__attribute__((format(printf, 2, 3))) static void
explain(struct ws_cgroup *cg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cg->why, sizeof(cg->why), fmt, ap);
	va_end(ap);
}

int
ws_cgroup_open(struct ws_cgroup *cg, const char *controller)
{
	char own[4096], mnt[1024], root[1024], dir[4096], want[64];
	bool v2 = false;
	if (geteuid() != 0) {
		explain(cg, "not root");
		return -EPERM;
	}
	if (!own_cgroup(controller, own, sizeof(own), &v2) ||
	    !hierarchy(controller, v2, mnt, sizeof(mnt), root, sizeof(root))) {
		explain(cg, "no %s cgroup hierarchy", controller);
		return -ENOENT;
	}
	/* inside a cgroup namespace the root shows as "/" */
	const char *rel = own;
	size_t rl = strlen(root);
	if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0)
		rel = own + rl;
	int len = snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
	if (len < 0 || (size_t)len >= sizeof(dir)) {
		explain(cg, "cgroup path too long");
		return -ENAMETOOLONG;
	}
	snprintf(want, sizeof(want), "+%s", controller);

	int rc = 0;
	int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0) {
		rc = -errno;
		explain(cg, "%s: %s", dir, strerror(errno));
		return rc;
	}
	if (v2) {
		char ctl[256] = "";
		int fd = openat(parent, "cgroup.controllers", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, ctl, sizeof(ctl) - 1) : -1;
		if (fd >= 0)
			close(fd);
		ctl[n > 0 ? n : 0] = '\0';
		bool found = false;
		char *save = NULL;
		for (char *w = strtok_r(ctl, " \n", &save); w && !found;
		     w = strtok_r(NULL, " \n", &save))
			found = strcmp(w, controller) == 0;
		if (!found) {
			close(parent);
			explain(cg, "%s: no %s controller", dir, controller);
			return -ENOENT;
		}
		/*
		 * pids, a threaded controller, may be enabled beside processes;
		 * memory only where the server's own cgroup holds none (EBUSY)
		 */
		if ((rc = write_text(parent, "cgroup.subtree_control", want)) != 0) {
			close(parent);
			explain(cg, "%s/cgroup.subtree_control: %s", dir, strerror(-rc));
			return rc;
		}
	}
	remove_stale(parent);
	char name[64];
	snprintf(name, sizeof(name), "ws-sandbox.%d", (int)getpid());
	if (mkdirat(parent, name, 0755) != 0 && errno != EEXIST) {
		rc = -errno;
		explain(cg, "%s/%s: %s", dir, name, strerror(errno));
		close(parent);
		return rc;
	}
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : 0;
	if (rc == 0 && v2)
		rc = write_text(fd, "cgroup.subtree_control", want);
	if (rc != 0) {
		explain(cg, "%s/%s: %s", dir, name, strerror(-rc));
		if (fd >= 0)
			close(fd);
		unlinkat(parent, name, AT_REMOVEDIR);
		close(parent);
		return rc;
	}
	if (snprintf(cg->path, sizeof(cg->path), "%s/%s", dir, name) >= (int)sizeof(cg->path)) {
		explain(cg, "cgroup path too long");
		close(fd);
		unlinkat(parent, name, AT_REMOVEDIR);
		close(parent);
		return -ENAMETOOLONG;
	}
	close(parent);
	cg->fd = fd;
	cg->v2 = v2;
	return 0;
}

int
ws_cgroup_open_shared(struct ws_cgroup *cg, const char *controller)
{
	char own[4096];
	bool v2 = false;
	if (geteuid() != 0) {
		explain(cg, "not root");
		return -EPERM;
	}
	if (own_cgroup(controller, own, sizeof(own), &v2) && v2) {
		explain(cg, "cgroup v2: not done (commands' own cgroups are the leaves)");
		return -ENOTSUP;
	}
	int rc = ws_cgroup_open(cg, controller);
	cg->shared = rc == 0;
	return rc;
}

/* --- child (system calls only) ------------------------------------------- */

/* "c" and the decimal pid: the command cgroup's name. */
static void
command_name(char *out, pid_t pid)
{
	char digits[12];
	size_t n = 0, o = 0;
	unsigned v = (unsigned)pid;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	out[o++] = 'c';
	while (n)
		out[o++] = digits[--n];
	out[o] = '\0';
}

static int
write_raw(int dirfd, const char *file, const char *text, size_t n)
{
	int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -errno;
	close(fd);
	return rc;
}

/*
 * Removes the cgroups of commands whose process is gone. Their trees were
 * killed and reaped by then (the subreaper sees to it); a busy one stays.
 * all: every empty one (the sandbox is being destroyed).
 */
static void
sweep(int dirfd, bool all)
{
	/* a description of our own: the offset of dirfd is shared with the parent */
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[4096];
	long n;
	while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_type != DT_DIR || d->d_name[0] != 'c')
				continue;
			long pid = 0;
			const char *p = d->d_name + 1;
			for (; *p >= '0' && *p <= '9' && pid < (1L << 30); p++)
				pid = pid * 10 + (*p - '0');
			if (*p != '\0' || pid <= 0)
				continue;
			if (!all && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
				continue;
			unlinkat(dirfd, d->d_name, AT_REMOVEDIR);
		}
	}
	close(fd);
}

int
ws_cgroup_join(const struct ws_cgroup *cg)
{
	if (cg->fd < 0)
		return 0;
	if (cg->shared)
		return write_raw(cg->fd, "cgroup.procs", "0", 1);
	sweep(cg->fd, false);
	char name[16];
	command_name(name, getpid());
	/* EEXIST: v2, where the pids and memory cgroups are one directory */
	if (mkdirat(cg->fd, name, 0755) != 0 && errno != EEXIST)
		return -errno;
	int dir = openat(cg->fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < cg->nset; i++) {
		const struct ws_cgroup_setting *s = &cg->set[i];
		rc = write_raw(dir, s->file, s->value, strlen(s->value));
		if (rc == -ENOENT && s->optional)
			rc = 0;
	}
	if (rc == 0)
		rc = write_raw(dir, "cgroup.procs", "0", 1);
	close(dir);
	return rc;
}

/* --- parent, at the end --------------------------------------------------- */

void
ws_cgroup_close(struct ws_cgroup *cg)
{
	if (cg->fd < 0)
		return;
	sweep(cg->fd, true);
	close(cg->fd);
	cg->fd = -1;
	/* ENOENT: v2, the same directory as another controller's, already gone */
	if (rmdir(cg->path) != 0 && errno != ENOENT)
		ws_log(WS_LOG_WARN, "sandbox cgroup=%s removed=no error=\"%s\"", cg->path,
		       strerror(errno));
}
