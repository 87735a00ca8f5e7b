/*
 * cgroup: a cgroup per command in one controller's hierarchy (private to
 * the library): "pids" bounds a command's process tree whoever runs it
 * (root is exempt from RLIMIT_NPROC), "memory" bounds the memory the whole
 * tree uses (RLIMIT_AS is per process). Each controller is one struct
 * ws_cgroup; v1 (a hierarchy per controller) and v2 (one hierarchy) both.
 *
 *   parent:  ws_cgroup_open()    finds the controller's hierarchy, makes
 *                                the sandbox's own cgroup ws-sandbox.PID
 *            ws_cgroup_set()     what each command's cgroup gets written
 *   child:   ws_cgroup_join()    makes cPID under it, writes those files,
 *                                joins
 *   parent:  ws_cgroup_close()   removes what is left when no more commands
 *                                will start
 */
#ifndef WS_CGROUP_H
#define WS_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_CGROUP_SETTINGS 4

/* Filled by the parent, read-only afterwards (the child only reads it). */
struct ws_cgroup {
	int fd;          /* the sandbox's cgroup directory, or -1 */
	bool v2;         /* the unified hierarchy */
	bool shared;     /* commands join the sandbox's cgroup itself, not one of their own */
	char path[4096]; /* that directory */
	char why[256];   /* when fd is -1: why there is none */
	size_t nset;
	struct ws_cgroup_setting {
		const char *file; /* "pids.max", "memory.limit_in_bytes", ... */
		char value[24];   /* decimal */
		bool optional;    /* a missing file (ENOENT) is skipped */
	} set[WS_CGROUP_SETTINGS];
};

/* An unopened cgroup: fd -1, why "" (ws_cgroup_close() is then a no-op). */
void ws_cgroup_init(struct ws_cgroup *cg);

/*
 * Finds a hierarchy with `controller` ("pids", "memory") that this
 * process's cgroup is under and can write (cgroup v1 with that controller,
 * or v2 with it in cgroup.controllers, enabled for the children), removes
 * the cgroups of servers that died without cleaning up, and makes a cgroup
 * for this sandbox in it. Returns 0 with cg->fd (close-on-exec) and
 * cg->path, or -errno with the reason in cg->why (no hierarchy, read-only,
 * not root...): the caller then runs without one.
 */
int ws_cgroup_open(struct ws_cgroup *cg, const char *controller);

/*
 * Adds a file each command's cgroup gets (at most WS_CGROUP_SETTINGS), in
 * the order they are written. Returns false when full.
 */
bool ws_cgroup_set(struct ws_cgroup *cg, const char *file, uint64_t value, bool optional);

/*
 * Like ws_cgroup_open(), for a cgroup all commands share (cg->shared): on
 * cgroup v1 only (on v2 a process cannot sit beside the per-command
 * cgroups of another controller: -ENOTSUP with the reason in cg->why).
 */
int ws_cgroup_open_shared(struct ws_cgroup *cg, const char *controller);

/*
 * In a child before exec (system calls only): removes the empty cgroups
 * of commands that are gone, makes its own (cPID), writes the settings and
 * moves the calling process into it; for a shared cgroup, only the move.
 * Returns 0 or -errno. A no-op (0) when cg has no directory.
 */
int ws_cgroup_join(const struct ws_cgroup *cg);

/* Removes every empty command cgroup, then the sandbox's; closes the directory. */
void ws_cgroup_close(struct ws_cgroup *cg);

#endif
