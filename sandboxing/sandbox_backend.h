/*
 * sandbox_backend: what the sandbox asks of a filter backend (private to the
 * library). Like OpenSSH's sandbox-*.c files, each backend implements the
 * same few operations: sandbox.c picks one per command sandbox and prepares
 * it, sandbox_child.c installs it; sandbox_self.c uses the seccomp one.
 */
#ifndef WS_SANDBOX_BACKEND_H
#define WS_SANDBOX_BACKEND_H

#include <stddef.h>

#include "policy.h"

/* install() flags */
enum {
	/* filter every thread of the process (a server confining itself) */
	WS_SANDBOX_BACKEND_ALL_THREADS = 1 << 0,
};

struct ws_sandbox_backend {
	const char *name;
	/*
	 * Parent side: turns p into *state, everything install() needs.
	 * Returns 0, or -errno with one line in err.
	 */
	int (*prepare)(const struct ws_policy *p, void **state, char *err, size_t errlen);
	/*
	 * Installs state on the calling process: system calls only, no
	 * allocation (it runs between fork and exec). PR_SET_NO_NEW_PRIVS must
	 * already be set. Returns 0 or -errno.
	 */
	int (*install)(const void *state, unsigned flags);
	/* Frees state; NULL is a no-op. */
	void (*finish)(void *state);
};

extern const struct ws_sandbox_backend ws_sandbox_seccomp_backend;
extern const struct ws_sandbox_backend ws_sandbox_null_backend;

#endif
