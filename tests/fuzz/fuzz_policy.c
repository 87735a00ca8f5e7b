/*
 * fuzz_policy: arbitrary bytes as a seccomp policy file, layered over the
 * `default` profile as ws-sandbox-run and ws-rpc do. Checks that a refused
 * file leaves the policy exactly as it was with a "fuzz:LINE: " message,
 * that an accepted one stays within the bounds, names each call once and
 * replaces the profile's rules for it, and that every accepted policy also
 * compiles to a BPF program (what ws_sandbox_create does next).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "sandbox_backend.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_policy: invariant broken: %s\n", what);
		abort();
	}
}

static struct ws_policy base;
static bool have_base;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!have_base) {
		ws_policy_init(&base, WS_POLICY_ALLOW, 0);
		require(ws_policy_add_set(&base, WS_POLICY_SET_DANGEROUS, NULL, 0) == 0,
			"the default profile builds");
		have_base = true;
	}
	/* an exact-size copy, so AddressSanitizer sees a read past the end */
	char *text = malloc(size ? size : 1);
	struct ws_policy *p = malloc(sizeof(*p));
	require(text && p, "memory");
	memcpy(text, data, size);
	memcpy(p, &base, sizeof(base));

	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = ws_policy_parse(p, text, size, "fuzz", err, sizeof(err));
	if (rc != 0) {
		require(rc == -EINVAL || rc == -ENOMEM, "errors are -EINVAL or -ENOMEM");
		require(memchr(err, '\0', sizeof(err)) != NULL, "the message is terminated");
		require(strncmp(err, "fuzz:", 5) == 0, "the message names the source");
		require(memcmp(p, &base, sizeof(base)) == 0, "a refused file changes nothing");
		goto out;
	}
	require(p->n <= WS_POLICY_MAX_RULES, "within the rule bound");
	require(p->files == 1, "one file counted");
	for (size_t i = 0; i < p->n; i++) {
		const struct ws_policy_rule *r = &p->rules[i];
		require(r->action <= WS_POLICY_KILL, "a known action");
		require(r->action != WS_POLICY_ERRNO ||
				(r->err >= 1 && r->err <= WS_POLICY_MAX_ERRNO),
			"deny carries an errno");
		if (r->origin == 0)
			continue;
		require(r->origin == 1 && r->line >= 1 && r->cmp == WS_POLICY_ALWAYS,
			"file rules are unconditional and located");
		for (size_t j = 0; j < p->n; j++)
			require(j == i || p->rules[j].nr != r->nr,
				"a file's call has no other rule left");
		char line[200];
		ws_policy_rule_format(r, line, sizeof(line));
		require(strlen(line) < sizeof(line), "formats");
	}

	void *state = NULL;
	rc = ws_sandbox_seccomp_backend.prepare(p, &state, err, sizeof(err));
	require(rc == 0, "an accepted policy compiles");
	ws_sandbox_seccomp_backend.finish(state);
out:
	free(p);
	free(text);
	return 0;
}
