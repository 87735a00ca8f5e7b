/*
 * Fails when the tests are built with NDEBUG: assert() must stay on in
 * test builds (configure without -Db_ndebug=true).
 */
#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(void)
{
#ifdef NDEBUG
	fprintf(stderr, "NDEBUG is defined: tests and common/ must keep assert() on\n");
	return 1;
#else
	/* and prove it: a false assert must abort */
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		fclose(stderr); /* the abort message is expected, keep the log clean */
		assert(pid != 0);
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 1;
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
		fprintf(stderr, "a false assert() did not abort\n");
		return 1;
	}
	return 0;
#endif
}
