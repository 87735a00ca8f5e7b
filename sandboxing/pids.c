/*
 * pids: the per-command pids cgroup. The parent finds the hierarchy and
 * makes the sandbox's cgroup; each child makes and joins its own with
 * system calls only, and sweeps away the cgroups of commands that are gone
 * (so that no hook is needed when a command ends).
 */
#define _GNU_SOURCE /* getdents64 */

#include "pids.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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
 * This process's cgroup path in the pids hierarchy: the v1 line naming
 * "pids", else the v2 line ("0::"). *v2 says which.
 */
static bool
own_cgroup(char *out, size_t len, bool *v2)
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
		else if (has_word(c1 + 1, "pids")) {
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
hierarchy(bool v2, char *mnt, size_t mntlen, char *root, size_t rootlen)
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
		       : strcmp(fstype, "cgroup") == 0 && has_word(super, "pids")) {
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

int
ws_pids_open(char *path, size_t pathlen, char *why, size_t whylen)
{
	char own[4096], mnt[1024], root[1024], dir[4096];
	bool v2 = false;
	if (geteuid() != 0) {
		snprintf(why, whylen, "not root");
		return -EPERM;
	}
	if (!own_cgroup(own, sizeof(own), &v2) ||
	    !hierarchy(v2, mnt, sizeof(mnt), root, sizeof(root))) {
		snprintf(why, whylen, "no pids cgroup hierarchy");
		return -ENOENT;
	}
	/* inside a cgroup namespace the root shows as "/" */
	const char *rel = own;
	size_t rl = strlen(root);
	if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0)
		rel = own + rl;
	int len = snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
	if (len < 0 || (size_t)len >= sizeof(dir)) {
		snprintf(why, whylen, "cgroup path too long");
		return -ENAMETOOLONG;
	}

	int parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (parent < 0) {
		snprintf(why, whylen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	int rc = 0;
	if (v2) {
		char ctl[256] = "";
		int fd = openat(parent, "cgroup.controllers", O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, ctl, sizeof(ctl) - 1) : -1;
		if (fd >= 0)
			close(fd);
		ctl[n > 0 ? n : 0] = '\0';
		bool pids = false;
		char *save = NULL;
		for (char *w = strtok_r(ctl, " \n", &save); w && !pids;
		     w = strtok_r(NULL, " \n", &save))
			pids = strcmp(w, "pids") == 0;
		if (!pids) {
			snprintf(why, whylen, "%s: no pids controller", dir);
			close(parent);
			return -ENOENT;
		}
		/* pids, a threaded controller, may be enabled beside processes */
		if ((rc = write_text(parent, "cgroup.subtree_control", "+pids")) != 0) {
			snprintf(why, whylen, "%s/cgroup.subtree_control: %s", dir, strerror(-rc));
			close(parent);
			return rc;
		}
	}
	remove_stale(parent);
	char name[64];
	snprintf(name, sizeof(name), "ws-sandbox.%d", (int)getpid());
	if (mkdirat(parent, name, 0755) != 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(why, whylen, "%s/%s: %s", dir, name, strerror(errno));
		close(parent);
		return rc;
	}
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : 0;
	if (rc == 0 && v2)
		rc = write_text(fd, "cgroup.subtree_control", "+pids");
	if (rc != 0) {
		snprintf(why, whylen, "%s/%s: %s", dir, name, strerror(-rc));
		if (fd >= 0)
			close(fd);
		unlinkat(parent, name, AT_REMOVEDIR);
		close(parent);
		return rc;
	}
	close(parent);
	snprintf(path, pathlen, "%s/%s", dir, name);
	return fd;
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
ws_pids_join(int dirfd, uint32_t max)
{
	sweep(dirfd, false);
	char name[16], file[40], digits[12];
	command_name(name, getpid());
	if (mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
		return -errno;
	int dir = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return -errno;
	size_t n = 0;
	do {
		digits[n++] = (char)('0' + max % 10);
		max /= 10;
	} while (max);
	for (size_t i = 0; i < n; i++)
		file[i] = digits[n - 1 - i];
	int rc = write_raw(dir, "pids.max", file, n);
	if (rc == 0)
		rc = write_raw(dir, "cgroup.procs", "0", 1);
	close(dir);
	return rc;
}

/* --- parent, at the end --------------------------------------------------- */

void
ws_pids_close(int dirfd, const char *path)
{
	if (dirfd < 0)
		return;
	sweep(dirfd, true);
	close(dirfd);
	if (rmdir(path) != 0 && errno != ENOENT)
		ws_log(WS_LOG_WARN, "sandbox cgroup=%s removed=no error=\"%s\"", path,
		       strerror(errno));
}
