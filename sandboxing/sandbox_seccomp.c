/*
 * The seccomp backend. libseccomp compiles the policy in the parent and
 * exports the BPF program into memory; the child loads that program with
 * one prctl(), so nothing between fork and exec allocates or reads files.
 */
#define _GNU_SOURCE /* memfd_create */

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_backend.h"

struct program {
	struct sock_fprog prog;
	struct sock_filter insns[];
};

static uint32_t
to_scmp(uint8_t action, uint16_t err)
{
	switch (action) {
	case WS_POLICY_ALLOW:
		return SCMP_ACT_ALLOW;
	case WS_POLICY_ERRNO:
		return SCMP_ACT_ERRNO(err);
	default:
		return SCMP_ACT_KILL_PROCESS;
	}
}

static int
add_rule(scmp_filter_ctx ctx, const struct ws_policy *p, const struct ws_policy_rule *r)
{
	/* a call this architecture does not have: nothing to filter */
	if (r->nr < 0)
		return 0;
	uint32_t action = to_scmp(r->action, r->err);
	/* libseccomp refuses rules that repeat the default; they change nothing */
	if (action == to_scmp(p->default_action, p->default_err))
		return 0;
	if (r->cmp == WS_POLICY_ALWAYS)
		return seccomp_rule_add(ctx, action, r->nr, 0);

	enum scmp_compare op = r->cmp == WS_POLICY_MASKED_EQ ? SCMP_CMP_MASKED_EQ
			       : r->cmp == WS_POLICY_NE      ? SCMP_CMP_NE
							     : SCMP_CMP_EQ;
	struct scmp_arg_cmp cmp = {
		.arg = r->arg,
		.op = op,
		.datum_a = r->cmp == WS_POLICY_MASKED_EQ ? r->mask : r->value,
		.datum_b = r->cmp == WS_POLICY_MASKED_EQ ? r->value : 0,
	};
	return seccomp_rule_add_array(ctx, action, r->nr, 1, &cmp);
}

static int
compile(const struct ws_policy *p, void **state, char *err, size_t errlen)
{
	int rc = 0, fd = -1;
	struct program *prog = NULL;
	scmp_filter_ctx ctx = seccomp_init(to_scmp(p->default_action, p->default_err));
	if (!ctx) {
		/* valgrind, for one, has no seccomp(2) */
		snprintf(err, errlen, "seccomp_init failed: no seccomp(2) here?");
		return -ENOMEM;
	}
	/*
	 * Only the native architecture is in the filter: a 32-bit int 0x80 (or
	 * an x32 call) on x86_64 kills the process instead of slipping past
	 * rules written for 64-bit numbers.
	 */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_attr_set: %s", strerror(-rc));
		goto out;
	}
	/* a binary tree of call numbers: the hot send/recv cost a few jumps, not ~70 */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_attr_set(optimize): %s", strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < p->n; i++) {
		rc = add_rule(ctx, p, &p->rules[i]);
		if (rc < 0) {
			char rule[160];
			snprintf(err, errlen, "seccomp rule '%s': %s",
				 ws_policy_rule_format(&p->rules[i], rule, sizeof(rule)),
				 strerror(-rc));
			goto out;
		}
	}

	/* libseccomp 2.5 exports only to a descriptor */
	fd = memfd_create("ws-sandbox-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "memfd_create: %s", strerror(errno));
		goto out;
	}
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_export_bpf: %s", strerror(-rc));
		goto out;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "fstat: %s", strerror(errno));
		goto out;
	}
	size_t size = (size_t)st.st_size;
	if (size == 0 || size % sizeof(struct sock_filter) != 0 ||
	    size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		rc = -E2BIG;
		snprintf(err, errlen, "seccomp program of %zu bytes", size);
		goto out;
	}
	prog = malloc(sizeof(*prog) + size);
	if (!prog) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t got = 0; got < size;) {
		ssize_t n = pread(fd, (char *)prog->insns + got, size - got, (off_t)got);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "reading the seccomp program: %s", strerror(-rc));
			goto out;
		}
		got += (size_t)n;
	}
	prog->prog.len = (unsigned short)(size / sizeof(struct sock_filter));
	prog->prog.filter = prog->insns;
	*state = prog;
	prog = NULL;
	rc = 0;
out:
	free(prog);
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return rc;
}

static int
install(const void *state, unsigned flags)
{
	const struct program *prog = state;
	if (flags & WS_SANDBOX_BACKEND_ALL_THREADS) {
		long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
				 &prog->prog);
		if (r < 0)
			return -errno;
		/* a positive value names a thread that could not be synchronised */
		return r == 0 ? 0 : -EBUSY;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog->prog) != 0)
		return -errno;
	return 0;
}

static void
finish(void *state)
{
	free(state);
}

const struct ws_sandbox_backend ws_sandbox_seccomp_backend = {
	.name = "seccomp",
	.prepare = compile,
	.install = install,
	.finish = finish,
};
