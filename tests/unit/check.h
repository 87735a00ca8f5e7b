/*
 * check: the unit tests' assertions and case runner.
 *
 * A failed CHECK prints file:line, the expression and the values, and the
 * case carries on so one run shows every failure; the case then exits 1.
 * The checks never depend on NDEBUG (check_ndebug.c guards assert()).
 *
 * Each test executable lists its cases in a table and ends with
 * CHECK_MAIN(cases); `test_x CASE` runs one case (how meson registers them),
 * `test_x` alone runs them all, and `test_x --registered NAME...` fails
 * unless the names are exactly the table's, so meson.build cannot drift.
 */
#ifndef WS_TEST_CHECK_H
#define WS_TEST_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct check_case {
	const char *name;
	void (*run)(void);
};

/* Record a failure unless the check holds; each returns whether it held. */
bool check_true(bool ok, const char *file, int line, const char *expr);
bool check_uint(uintmax_t a, uintmax_t b, const char *file, int line, const char *ea,
		const char *eb);
bool check_int(intmax_t a, intmax_t b, const char *file, int line, const char *ea, const char *eb);
bool check_str(const char *a, const char *b, const char *file, int line, const char *ea,
	       const char *eb);
bool check_mem(const void *a, size_t an, const void *b, size_t bn, const char *file, int line,
	       const char *ea, const char *eb);

#define CHECK(cond) check_true((cond), __FILE__, __LINE__, #cond)
#define CHECK_UINT(a, b) check_uint((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_INT(a, b) check_int((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_STR(a, b) check_str((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_MEM(a, an, b, bn) check_mem((a), (an), (b), (bn), __FILE__, __LINE__, #a, #b)

/* Failures recorded so far in this process. */
unsigned check_failures(void);

/*
 * Runs fn(arg) in a child process, for code that may only run once per
 * process (getopt) or may crash. The child's failures, a non-zero exit or a
 * signal count as one failure here, reported with `what`.
 */
void check_fork(void (*fn)(const void *arg), const void *arg, const char *what);

/* main() of a test executable; see the top of this file. */
int check_main(const struct check_case *cases, size_t n, int argc, char **argv);

#define CHECK_MAIN(cases)                                                               \
	int main(int argc, char **argv)                                                 \
	{                                                                               \
		return check_main(cases, sizeof(cases) / sizeof(cases[0]), argc, argv); \
	}

#endif
