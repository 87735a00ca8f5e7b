/*
 * sandbox_self: a server confining itself once it listens (the ws_app.confine
 * hook). The server's main.c says what its filter holds; this module builds
 * and installs it and knows nothing of the servers. It allocates and logs,
 * and runs once on the loop thread.
 */
#ifndef WS_SANDBOX_SELF_H
#define WS_SANDBOX_SELF_H

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"
#include "sandbox.h"

/*
 * A server's own filter. With default_action WS_POLICY_KILL it is an
 * allowlist: the sets name every call the server may make, anything else
 * kills the process (SIGSYS). With WS_POLICY_ALLOW it is a denylist: the
 * sets name what fails, the rest is allowed (a server that starts commands
 * needs fork and exec, and its commands inherit the filter).
 */
struct ws_sandbox_self {
	const char *name;                     /* "sandbox self=NAME" in the log */
	enum ws_policy_action default_action; /* WS_POLICY_KILL or WS_POLICY_ALLOW */
	const enum ws_policy_set *sets;       /* added in order; a later set wins */
	size_t nsets;
};

/*
 * Installs self's filter on every thread of the calling process, after
 * PR_SET_NO_NEW_PRIVS, and logs one line first. In sanitizer builds the
 * leak check's calls are let through (added to an allowlist; ptrace taken
 * out of a denylist). `children`, the sandbox the server's commands will
 * apply (NULL: it starts none; a denylist only), says which calls they
 * still need before their own filter (unshare and mount for --isolate)
 * and which calls its policy file allows (commands inherit this filter,
 * so it must not deny what their policy lets through).
 * Returns 0, or -errno with one line in err: then the server must not
 * start.
 */
int ws_sandbox_confine_self(const struct ws_sandbox_self *self, const struct ws_sandbox *children,
			    char *err, size_t errlen);

/*
 * A server's ws_app.confine: its own filter (logging why it failed), or
 * with --no-self-sandbox (`disabled`) a warning and nothing. Returns 0 or
 * -errno.
 */
int ws_sandbox_confine_server(const struct ws_sandbox_self *self, const struct ws_sandbox *children,
			      bool disabled);

#endif
