/*
 * The null backend: profile `none` without a policy file. The other layers
 * (rlimits, run-as, no_new_privs, isolation) still apply; the operator asked
 * for no filter, and the caller logs that as a warning.
 */
#include "sandbox_backend.h"

static int
null_prepare(const struct ws_policy *p, void **state, char *err, size_t errlen)
{
	*state = NULL;
	return 0;
}

static int
null_install(const void *state, unsigned flags)
{
	return 0;
}

static void
null_finish(void *state)
{
}

const struct ws_sandbox_backend ws_sandbox_null_backend = {
	.name = "null",
	.prepare = null_prepare,
	.install = null_install,
	.finish = null_finish,
};
