#include "check.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned failures;

static void
failed(const char *file, int line)
{
	fflush(stdout);
	fprintf(stderr, "%s:%d: check failed: ", file, line);
	failures++;
}

unsigned
check_failures(void)
{
	return failures;
}

bool
check_true(bool ok, const char *file, int line, const char *expr)
{
	if (!ok) {
		failed(file, line);
		fprintf(stderr, "%s\n", expr);
	}
	return ok;
}

bool
check_uint(uintmax_t a, uintmax_t b, const char *file, int line, const char *ea, const char *eb)
{
	if (a != b) {
		failed(file, line);
		fprintf(stderr, "%s == %s (%" PRIuMAX " != %" PRIuMAX ")\n", ea, eb, a, b);
	}
	return a == b;
}

bool
check_int(intmax_t a, intmax_t b, const char *file, int line, const char *ea, const char *eb)
{
	if (a != b) {
		failed(file, line);
		fprintf(stderr, "%s == %s (%" PRIdMAX " != %" PRIdMAX ")\n", ea, eb, a, b);
	}
	return a == b;
}

bool
check_str(const char *a, const char *b, const char *file, int line, const char *ea, const char *eb)
{
	bool ok = a && b ? strcmp(a, b) == 0 : a == b;
	if (!ok) {
		failed(file, line);
		fprintf(stderr, "%s == %s (\"%s\" != \"%s\")\n", ea, eb, a ? a : "(null)",
			b ? b : "(null)");
	}
	return ok;
}

static void
dump(const char *label, const void *p, size_t n)
{
	const uint8_t *b = p;
	fprintf(stderr, "  %s (%zu bytes):", label, n);
	for (size_t i = 0; i < n && i < 64; i++)
		fprintf(stderr, " %02x", b[i]);
	fprintf(stderr, "%s\n", n > 64 ? " ..." : "");
}

bool
check_mem(const void *a, size_t an, const void *b, size_t bn, const char *file, int line,
	  const char *ea, const char *eb)
{
	bool ok = an == bn && (an == 0 || memcmp(a, b, an) == 0);
	if (!ok) {
		failed(file, line);
		fprintf(stderr, "%s == %s (bytes differ)\n", ea, eb);
		dump(ea, a, an);
		dump(eb, b, bn);
	}
	return ok;
}

void
check_fork(void (*fn)(const void *arg), const void *arg, const char *what)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		failed(__FILE__, __LINE__);
		fprintf(stderr, "%s: fork failed\n", what);
		return;
	}
	if (pid == 0) {
		fn(arg);
		fflush(stdout);
		fflush(stderr);
		/* _exit: the parent reports, and leak checks belong to the parent */
		_exit(failures ? 1 : 0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return;
	failed(__FILE__, __LINE__);
	if (WIFSIGNALED(st))
		fprintf(stderr, "%s: child killed by signal %d\n", what, WTERMSIG(st));
	else
		fprintf(stderr, "%s: child failed\n", what);
}

static const struct check_case *
find(const struct check_case *cases, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(cases[i].name, name) == 0)
			return &cases[i];
	}
	return NULL;
}

/* Whether names[] (from meson.build) is exactly the case table. */
static int
registered(const struct check_case *cases, size_t n, int argc, char **argv)
{
	int bad = 0;
	for (int i = 0; i < argc; i++) {
		if (!find(cases, n, argv[i])) {
			fprintf(stderr, "meson.build registers '%s', which is no case\n", argv[i]);
			bad = 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		int seen = 0;
		for (int j = 0; j < argc; j++)
			seen += strcmp(cases[i].name, argv[j]) == 0;
		if (seen != 1) {
			fprintf(stderr, "case '%s' is registered %d times in meson.build\n",
				cases[i].name, seen);
			bad = 1;
		}
	}
	return bad;
}

int
check_main(const struct check_case *cases, size_t n, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--registered") == 0)
		return registered(cases, n, argc - 2, argv + 2);
	if (argc > 2) {
		fprintf(stderr, "usage: %s [CASE | --registered CASE...]\n", argv[0]);
		return 2;
	}
	if (argc == 2) {
		const struct check_case *c = find(cases, n, argv[1]);
		if (!c) {
			fprintf(stderr, "%s: no case '%s'\n", argv[0], argv[1]);
			return 2;
		}
		c->run();
		return failures ? 1 : 0;
	}
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned before = failures;
		cases[i].run();
		printf("%s %s\n", failures == before ? "ok  " : "FAIL", cases[i].name);
		bad |= failures != before;
	}
	return bad;
}
