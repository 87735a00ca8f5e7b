/*
 * exec: commands as children of the server, served by its loop. Each child
 * gets its own session (process group) and non-blocking pipes; the engine
 * is a child subreaper, reaps every child through a signalfd, and kills the
 * whole group (and any orphan that escaped it) when the command ends, times
 * out or is abandoned. Nothing here blocks.
 */
#ifndef RPC_EXEC_H
#define RPC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ws_server;
struct rpc_engine;
struct rpc_exec;

enum rpc_stream {
	RPC_STDOUT = 1,
	RPC_STDERR = 2,
};

/* The most arguments a command may have. */
#define RPC_ARGV_MAX 256

struct rpc_exec_spec {
	char *const *argv; /* at most RPC_ARGV_MAX; argv[0] is looked up in the env's PATH */
	const char *path;  /* or NULL; when set, the file run (argv[0] is not looked up) */
	char *const *envp;
	const char *cwd; /* or NULL */
	const uint8_t *stdin_data;
	size_t stdin_len;
	bool stdin_open;     /* keep stdin open after stdin_data, for later writes */
	uint64_t timeout_ms; /* 0: none */
	uint64_t max_output; /* per stream; the rest is read and dropped */
	/*
	 * Run on a pseudo-terminal of cols x rows: the command leads its own
	 * session with the pty as controlling terminal on 0, 1 and 2; its
	 * output is one stream (RPC_STDOUT), and stdin's eof is the terminal's
	 * end-of-file character (^D), not a close.
	 */
	bool pty;
	uint16_t cols, rows;
};

struct rpc_exec_result {
	int exit_code; /* -1 when killed by a signal */
	int signal;    /* 0 when it exited */
	bool timed_out;
	bool truncated;
	uint64_t duration_ms;
};

struct rpc_exec_ops {
	/* Output as it arrives, within the cap. */
	void (*output)(void *arg, enum rpc_stream s, const uint8_t *data, size_t len);
	/* The command is over and its output drained; the exec is freed after this. */
	void (*done)(void *arg, const struct rpc_exec_result *r);
};

/*
 * Runs in the child between fork and exec, after the pipes are in place:
 * the sandbox. Every signal is still blocked and has the server's
 * disposition: it must reset them to the defaults and unblock them. It
 * may share the server's memory (rpc_engine_share_memory): then it must
 * write nothing but its own stack. Returns 0, or writes a one-line reason
 * into err and returns non-zero (the command then does not run). Must not
 * return having done only part of its work silently.
 */
typedef int (*rpc_child_setup_fn)(void *ctx, char *err, size_t errlen);

/*
 * The engine: becomes a child subreaper and starts reaping through a
 * signalfd on srv's loop. grace_ms is the time between SIGTERM and SIGKILL.
 */
struct rpc_engine *rpc_engine_create(struct ws_server *srv, rpc_child_setup_fn setup,
				     void *setup_ctx, uint64_t grace_ms);
/*
 * With on, children share the server's memory until they exec (a clone
 * with CLONE_VM on a stack of the engine's) instead of copying it (fork):
 * most of the cost of starting a command. Only for a setup that writes
 * nothing but its stack and never leaves a process of its own behind
 * running that memory (the sandbox without --isolate); under
 * AddressSanitizer, or where the kernel or valgrind refuses the clone, it
 * stays fork. Returns false (and keeps fork) when the stack cannot be had.
 */
bool rpc_engine_share_memory(struct rpc_engine *e, bool on);
/* Kills every command still running and frees the engine. NULL is a no-op. */
void rpc_engine_destroy(struct rpc_engine *e);
/* Commands running (started and not yet reported done). */
unsigned rpc_engine_running(const struct rpc_engine *e);

/*
 * Starts a command. Returns NULL with a one-line reason in err when it could
 * not start (including a sandbox set-up failure in the child).
 */
struct rpc_exec *rpc_exec_start(struct rpc_engine *e, const struct rpc_exec_spec *spec,
				const struct rpc_exec_ops *ops, void *arg, char *err,
				size_t errlen);

pid_t rpc_exec_pid(const struct rpc_exec *x);
uint64_t rpc_exec_elapsed_ms(const struct rpc_exec *x);

/* Queues bytes for stdin (bounded); eof closes it after them. -EPIPE when closed. */
int rpc_exec_stdin(struct rpc_exec *x, const uint8_t *data, size_t len, bool eof);
/* Sets a pty command's window size (it gets SIGWINCH). -ENOTTY without a pty, -ESRCH when gone. */
int rpc_exec_resize(struct rpc_exec *x, uint16_t cols, uint16_t rows);
/* Signals the command's process group. */
int rpc_exec_kill(struct rpc_exec *x, int sig);
/* Stops (true) or resumes reading its output, for backpressure. */
void rpc_exec_pause(struct rpc_exec *x, bool paused);
/*
 * The caller is gone: no more callbacks. With kill, the group is killed
 * now; without, it runs to its end (or timeout) with output discarded.
 */
void rpc_exec_abandon(struct rpc_exec *x, bool kill);

#endif
