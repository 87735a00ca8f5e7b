/*
 * Servers' self-confinement: the filter a server's main.c describes
 * (struct ws_sandbox_self), built on the loop thread once it listens and
 * installed on every thread. Nothing here knows which server is calling.
 */
#define _GNU_SOURCE /* CLONE_NEW* */

#include "sandbox_self.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "log.h"
#include "sandbox_backend.h"
#include "sandbox_private.h"

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

/*
 * Builds self's policy into p. Returns 0, or -errno with one line in err.
 */
static int
build(struct ws_policy *p, const struct ws_sandbox_self *self, const struct ws_sandbox *children,
      char *err, size_t errlen)
{
	bool allowlist = self->default_action == WS_POLICY_KILL;
	if (!allowlist && self->default_action != WS_POLICY_ALLOW) {
		snprintf(err, errlen, "%s: a server's filter is an allowlist or a denylist",
			 self->name);
		return -EINVAL;
	}
	/* an allowlist kills fork and exec: there are no commands to make room for */
	if (allowlist && children) {
		snprintf(err, errlen, "%s: an allowlist cannot start commands", self->name);
		return -EINVAL;
	}
	ws_policy_init(p, self->default_action, 0);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < self->nsets; i++)
		rc = ws_policy_add_set(p, self->sets[i], err, errlen);
	if (rc != 0)
		return rc;
	if (allowlist)
		return SANITIZED ? ws_policy_add_set(p, WS_POLICY_SET_SANITIZER, err, errlen) : 0;
	/*
	 * Commands inherit a denylist under their own filter: it lets through
	 * what the children's isolation needs before their own filter goes on,
	 * and what their policy file allows.
	 */
	if (children && children->isolate)
		rc = allow_isolation(p, children->isolate);
	if (rc == 0 && children && children->policy)
		allow_policy_file(p, children->policy);
	/* the leak check ptraces the threads; commands keep their own filter */
	if (rc == 0 && SANITIZED)
		rc = ws_policy_drop_call(p, "ptrace");
	if (rc != 0)
		snprintf(err, errlen, "building the %s policy: %s", self->name, strerror(-rc));
	return rc;
}

int
ws_sandbox_confine_self(const struct ws_sandbox_self *self, const struct ws_sandbox *children,
			char *err, size_t errlen)
{
	void *state = NULL;
	struct ws_policy *p = malloc(sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = build(p, self, children, err, errlen);
	if (rc != 0)
		goto out;
	rc = ws_sandbox_seccomp_backend.prepare(p, &state, err, errlen);
	if (rc != 0)
		goto out;

	ws_log(WS_LOG_INFO, "sandbox self=%s backend=seccomp rules=%zu default=%s sanitizer=%s",
	       self->name, p->n, p->default_action == WS_POLICY_KILL ? "kill" : "allow",
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

int
ws_sandbox_confine_server(const struct ws_sandbox_self *self, const struct ws_sandbox *children,
			  bool disabled)
{
	if (disabled) {
		ws_log(WS_LOG_WARN, "sandbox self=off hint=\"--no-self-sandbox was given\"");
		return 0;
	}
	char err[256];
	int rc = ws_sandbox_confine_self(self, children, err, sizeof(err));
	if (rc != 0)
		ws_log(WS_LOG_ERROR, "sandbox self=%s failed=yes error=\"%s\"", self->name, err);
	return rc;
}
