/*
 * sandbox_private: the command sandbox as sandbox.c prepares it, read by
 * sandbox_child.c between fork and exec and by sandbox_self.c when a server
 * that starts commands confines itself (private to the library).
 */
#ifndef WS_SANDBOX_PRIVATE_H
#define WS_SANDBOX_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cgroup.h"
#include "policy.h"
#include "sandbox.h"
#include "sandbox_backend.h"

/*
 * Written by ws_sandbox_create() only; afterwards read-only, so that the
 * child side needs nothing but what is already in memory.
 */
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
	char *user;            /* the name of the user switched to */
	struct ws_cgroup pids; /* pids.max = limits.nproc */
	struct ws_cgroup mem;  /* the memory limit = limits.mem_bytes */
	struct ws_cgroup cpu;  /* one CPU group for all commands (shared) */
	uint64_t shm_bytes;    /* the private /dev/shm's size; 0: the caller's */
	char shm_why[256];     /* why there is none */
};

#endif
