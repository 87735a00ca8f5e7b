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
#include <stddef.h>
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
	struct sock_fprog prog; /* libseccomp's */
	struct sock_fprog only; /* build_only()'s; len 0: none */
	struct sock_filter insns[];
};

/* Bounds build_only()'s program; its jumps reach at most 255 ahead. */
#define ONLY_MAX_INSNS 256
#define ONLY_MAX_VALUES 32

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

static struct scmp_arg_cmp
to_cmp(uint8_t cmp, uint8_t arg, uint64_t mask, uint64_t value)
{
	enum scmp_compare op = cmp == WS_POLICY_MASKED_EQ ? SCMP_CMP_MASKED_EQ
			       : cmp == WS_POLICY_NE      ? SCMP_CMP_NE
							  : SCMP_CMP_EQ;
	return (struct scmp_arg_cmp){
		.arg = arg,
		.op = op,
		.datum_a = cmp == WS_POLICY_MASKED_EQ ? mask : value,
		.datum_b = cmp == WS_POLICY_MASKED_EQ ? value : 0,
	};
}

static int
add_rule(scmp_filter_ctx ctx, const struct ws_policy *p, const struct ws_policy_rule *r)
{
	/* a call this architecture does not have: nothing to filter */
	if (r->nr < 0 || r->cmp == WS_POLICY_ONLY)
		return 0;
	uint32_t action = to_scmp(r->action, r->err);
	/* libseccomp refuses rules that repeat the default; they change nothing */
	if (action == to_scmp(p->default_action, p->default_err))
		return 0;
	if (r->cmp == WS_POLICY_ALWAYS)
		return seccomp_rule_add(ctx, action, r->nr, 0);
	struct scmp_arg_cmp cmp[2] = {
		to_cmp(r->cmp, r->arg, r->mask, r->value),
		to_cmp(r->cmp2, r->arg2, r->mask2, r->value2),
	};
	return seccomp_rule_add_array(ctx, action, r->nr, r->cmp2 == WS_POLICY_ALWAYS ? 1 : 2, cmp);
}

static struct sock_filter
stmt(uint16_t code, uint32_t k)
{
	return (struct sock_filter)BPF_STMT(code, k);
}

static struct sock_filter
jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf)
{
	return (struct sock_filter)BPF_JUMP(code, k, jt, jf);
}

/* The offsets of the low and high words of argument i in seccomp_data. */
static uint32_t
arg_word(unsigned i, bool high)
{
	uint32_t at = (uint32_t)(offsetof(struct seccomp_data, args) + 8 * i);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return high ? at + 4 : at;
#else
	return high ? at : at + 4;
#endif
}

/*
 * libseccomp cannot say "allow this call only with these values" under an
 * allow-by-default filter (an allow rule repeats the default, and a rule
 * compares each argument once). This second, hand-written program does it
 * for the WS_POLICY_ONLY rules: the call passes when the argument is one
 * of its values, else gets the rules' action. The kernel runs both
 * programs and keeps the stricter answer; a call of another architecture
 * passes here and is killed by the first. Returns the program's length,
 * 0 when there are no such rules, or -E2BIG.
 */
static int
build_only(const struct ws_policy *p, struct sock_filter *out)
{
	size_t n = 0, groups = 0;
	out[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	out[n++] = jump(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 1, 0);
	out[n++] = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	out[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < p->n; i++) {
		const struct ws_policy_rule *r = &p->rules[i];
		bool first = r->cmp == WS_POLICY_ONLY && r->nr >= 0;
		for (size_t j = 0; first && j < i; j++)
			first = !(p->rules[j].cmp == WS_POLICY_ONLY && p->rules[j].nr == r->nr);
		if (!first)
			continue;
		uint32_t values[ONLY_MAX_VALUES];
		size_t k = 0;
		for (size_t j = i; j < p->n; j++) {
			const struct ws_policy_rule *o = &p->rules[j];
			if (o->cmp != WS_POLICY_ONLY || o->nr != r->nr)
				continue;
			if (k == ONLY_MAX_VALUES || o->value > UINT32_MAX || o->arg != r->arg)
				return -E2BIG;
			values[k++] = (uint32_t)o->value;
		}
		if (n + k + 7 > ONLY_MAX_INSNS)
			return -E2BIG;
		/* not this call: over the group (k + 5 instructions) */
		out[n++] = jump(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)r->nr, 0, (uint8_t)(k + 5));
		out[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, arg_word(r->arg, true));
		/* high bits set: no value matches, to the action */
		out[n++] = jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, (uint8_t)(k + 1));
		out[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, arg_word(r->arg, false));
		for (size_t v = 0; v < k; v++)
			out[n++] = jump(BPF_JMP | BPF_JEQ | BPF_K, values[v], (uint8_t)(k - v), 0);
		out[n++] = stmt(BPF_RET | BPF_K, to_scmp(r->action, r->err));
		out[n++] = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
		/* the next group compares the call's number again */
		out[n++] = stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
		groups++;
	}
	out[n++] = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	return groups ? (int)n : 0;
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
	prog = malloc(sizeof(*prog) + size + ONLY_MAX_INSNS * sizeof(struct sock_filter));
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
	prog->only.filter = prog->insns + prog->prog.len;
	rc = build_only(p, prog->only.filter);
	if (rc < 0) {
		snprintf(err, errlen, "too many values in 'unless' rules");
		goto out;
	}
	prog->only.len = (unsigned short)rc;
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
load(const struct sock_fprog *prog, unsigned flags)
{
	if (flags & WS_SANDBOX_BACKEND_ALL_THREADS) {
		long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
				 prog);
		if (r < 0)
			return -errno;
		/* a positive value names a thread that could not be synchronised */
		return r == 0 ? 0 : -EBUSY;
	}
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog) != 0)
		return -errno;
	return 0;
}

static int
install(const void *state, unsigned flags)
{
	const struct program *prog = state;
	int rc = load(&prog->prog, flags);
	if (rc == 0 && prog->only.len)
		rc = load(&prog->only, flags);
	return rc;
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
