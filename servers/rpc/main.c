/*
 * ws-rpc: ping, info and exec over a WebSocket, in the Sandbox example's
 * `type` dialect and in JSON-RPC 2.0. The protocol and the process engine
 * are rpc/'s; this file is configuration and wiring. It refuses to start
 * without a token unless told --no-auth: it runs commands.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "sandbox.h"
#include "sandbox_child.h"
#include "sandbox_self.h"
#include "server.h"
#include "session.h"
#include "term.h"
#include "xterm_assets.h"

struct options {
	uint32_t exec_timeout_ms;
	uint32_t exec_timeout_max_ms;
	uint32_t kill_grace_ms;
	uint64_t max_output;
	uint32_t max_exec;
	uint32_t max_exec_per_conn;
	bool keep_on_disconnect;
	bool no_auth;
	const char *allow_command;
	const char *deny_command;
	bool allow_command_shell;
	const char *command_path;
	uint64_t max_reply;
	uint64_t max_buffered;
	uint64_t max_buffered_per_conn;
	uint32_t max_batch;
	uint32_t max_id_length;
	uint64_t keep_buffer;
	uint64_t kept_total;
	uint32_t max_kept;
	uint32_t kept_linger_ms;
	const char *terminal_shell;
	struct ws_sandbox_options sandbox; /* the commands' (docs/security.md) */
};

/* A connection is a ws-rpc session or a terminal (by its path). */
struct conn_user {
	struct rpc_session *session;
	struct rpc_term *term;
};

struct rpc_server {
	struct options opt;
	struct rpc_limits limits;
	struct rpc_hub hub;
	regex_t allow, deny;
	struct ws_sandbox *sandbox;
	pid_t pid;
};

static void
rpc_start(void *app, struct ws_server *srv)
{
	struct rpc_server *r = app;
	r->hub.srv = srv;
}

/* In the child, between fork and exec; the engine keeps its error pipe at 3. */
static int
rpc_child_setup(void *ctx, char *err, size_t errlen)
{
	struct rpc_server *r = ctx;
	struct ws_sandbox_failure why;
	if (ws_sandbox_child_apply(r->sandbox, r->pid, 3, &why) == 0)
		return 0;
	ws_sandbox_failure_format(&why, err, errlen);
	return -1;
}

static int
rpc_confine(void *app, const struct ws_config *cfg)
{
	struct rpc_server *r = app;
	/* the engine needs the loop, which exists once listening */
	r->hub.engine = rpc_engine_create(r->hub.srv, rpc_child_setup, r, r->opt.kill_grace_ms);
	if (!r->hub.engine)
		return -1;
	const struct rpc_kept_limits kl = {
		.max = r->opt.max_kept,
		.running = r->opt.max_exec,
		.buffer = (size_t)r->opt.keep_buffer,
		.total = r->opt.kept_total,
		.linger_ms = r->opt.kept_linger_ms,
	};
	r->hub.kept = rpc_kept_table_create(r->hub.srv, r->hub.engine, &kl);
	if (!r->hub.kept)
		return -1;
	/* the sandbox's child steps are system calls on its own stack: no copy of us needed */
	if (!ws_sandbox_child_forks(r->sandbox))
		rpc_engine_share_memory(r->hub.engine, true);
	/*
	 * Commands inherit this filter under their own, so it cannot be an
	 * allowlist: it denies what the `default` profile denies, less what
	 * the commands' sandbox needs (sandbox_self.h).
	 */
	static const enum ws_policy_set sets[] = { WS_POLICY_SET_DANGEROUS };
	static const struct ws_sandbox_self self = {
		.name = "rpc",
		.default_action = WS_POLICY_ALLOW,
		.sets = sets,
		.nsets = sizeof(sets) / sizeof(sets[0]),
	};
	return ws_sandbox_confine_server(&self, r->sandbox, cfg->no_self_sandbox);
}

static void
rpc_stop(void *app)
{
	struct rpc_server *r = app;
	/* kept processes end with the server: hung up, then killed and reaped by the engine */
	rpc_kept_table_destroy(r->hub.kept);
	r->hub.kept = NULL;
	rpc_engine_destroy(r->hub.engine);
	r->hub.engine = NULL;
}

static void
rpc_open(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct rpc_server *r = app;
	struct conn_user *u = calloc(1, sizeof(*u));
	if (!u) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	ws_conn_set_user(c, u);
	if (rpc_term_path(req->path)) {
		u->term = rpc_term_create(&r->hub, c, req, r->opt.terminal_shell);
		return;
	}
	if (!(u->session = rpc_session_create(&r->hub, c)))
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
}

static void
rpc_message(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct conn_user *u = ws_conn_user(c);
	if (u && u->session)
		rpc_session_message(u->session, op == WS_OP_TEXT, data, len);
	else if (u && u->term)
		rpc_term_message(u->term, op == WS_OP_TEXT, data, len);
}

static void
rpc_rate_limited(void *app, struct ws_conn *c, enum ws_opcode op, const uint8_t *data, size_t len)
{
	struct conn_user *u = ws_conn_user(c);
	if (u && u->session)
		rpc_session_rate_limited(u->session, data, len);
	/*
	 * A terminal's frames are keystrokes and resizes, not requests: typing
	 * and pasting outrun any request rate. Its input is bounded by the
	 * pty's 1 MiB of pending input instead.
	 */
	else if (u && u->term)
		rpc_term_message(u->term, op == WS_OP_TEXT, (uint8_t *)data, len);
}

static void
rpc_drained(void *app, struct ws_conn *c)
{
	struct conn_user *u = ws_conn_user(c);
	if (u && u->session)
		rpc_session_drained(u->session);
	else if (u && u->term)
		rpc_term_drained(u->term);
}

static void
rpc_close(void *app, struct ws_conn *c, uint16_t code)
{
	struct conn_user *u = ws_conn_user(c);
	if (u) {
		rpc_session_destroy(u->session);
		rpc_term_destroy(u->term);
		free(u);
	}
	ws_conn_set_user(c, NULL);
}

/* GET /xterm/...: the terminal's xterm.js, bundled at build time. */
static bool
rpc_http(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	/* by the end of the path: behind the Worker it is /ws/xterm/..., like /ws/terminal */
	for (const struct xterm_asset *a = xterm_assets; a->path; a++) {
		size_t n = strlen(a->path);
		if (req->path.n >= n && memcmp(req->path.p + req->path.n - n, a->path, n) == 0) {
			/* any page may load it (the demo page may come from another port or the Worker) */
			ws_conn_respond(c, 200, a->content_type,
					"Cache-Control: max-age=3600\r\n"
					"Access-Control-Allow-Origin: *\r\n",
					a->data, a->len);
			return true;
		}
	}
	return false;
}

static void
rpc_metrics(void *app, struct ws_buf *out)
{
	struct rpc_server *r = app;
	char s[768];
	unsigned kept_running = 0, kept_held = 0;
	uint64_t kept_bytes = 0;
	if (r->hub.kept)
		rpc_kept_counts(r->hub.kept, &kept_running, &kept_held, &kept_bytes);
	int n = snprintf(
		s, sizeof(s),
		"# HELP ws_rpc_commands_running Commands running now.\n"
		"# TYPE ws_rpc_commands_running gauge\n"
		"ws_rpc_commands_running %u\n"
		"# HELP ws_rpc_kept_processes Kept processes (keep, pty, terminals) held.\n"
		"# TYPE ws_rpc_kept_processes gauge\n"
		"ws_rpc_kept_processes %u\n"
		"# HELP ws_rpc_kept_running Kept processes still running.\n"
		"# TYPE ws_rpc_kept_running gauge\n"
		"ws_rpc_kept_running %u\n"
		"# HELP ws_rpc_kept_buffer_bytes Ring storage of kept processes' output.\n"
		"# TYPE ws_rpc_kept_buffer_bytes gauge\n"
		"ws_rpc_kept_buffer_bytes %llu\n",
		r->hub.engine ? rpc_engine_running(r->hub.engine) : 0, kept_held, kept_running,
		(unsigned long long)kept_bytes);
	if (n > 0 && (size_t)n < sizeof(s))
		ws_buf_append(out, s, (size_t)n);
}

static const char *const subprotocols[] = { "jsonrpc", "json", NULL };

#define OPT(field) offsetof(struct options, field)

static bool
check_absolute(const char *v)
{
	return v[0] == '/';
}

/* Where argv[0] is looked up under a command policy: absolute directories only. */
static bool
check_command_path(const char *v)
{
	if (!*v)
		return false;
	for (const char *p = v; *p;) {
		size_t n = strcspn(p, ":");
		if (n == 0 || *p != '/')
			return false;
		p += n;
		if (*p == ':' && !*++p)
			return false;
	}
	return true;
}

static const struct ws_option rpc_opts[] = {
	{ "exec-timeout", "WS_EXEC_TIMEOUT", "SECONDS", WS_OPT_SECONDS, OPT(exec_timeout_ms), 1,
	  3600u * 1000u * 24u, "a command's time unless it asks for less or more", NULL },
	{ "exec-timeout-max", "WS_EXEC_TIMEOUT_MAX", "SECONDS", WS_OPT_SECONDS,
	  OPT(exec_timeout_max_ms), 1, 3600u * 1000u * 24u,
	  "the most a command may ask for (timeout_ms)", NULL },
	{ "kill-grace", "WS_KILL_GRACE", "SECONDS", WS_OPT_SECONDS, OPT(kill_grace_ms), 0,
	  60u * 1000u, "after a timeout, from SIGTERM to SIGKILL", NULL },
	{ "max-output", "WS_MAX_OUTPUT", "BYTES", WS_OPT_SIZE, OPT(max_output), 1, 1ull << 32,
	  "output kept per stream and command; the rest is dropped (truncated)", NULL },
	{ "max-exec", "WS_MAX_EXEC", "N", WS_OPT_UINT, OPT(max_exec), 1, 100000,
	  "commands running at once, server-wide", NULL },
	{ "max-exec-per-conn", "WS_MAX_EXEC_PER_CONN", "N", WS_OPT_UINT, OPT(max_exec_per_conn), 1,
	  100000, "commands running at once per connection", NULL },
	{ "keep-on-disconnect", "WS_KEEP_ON_DISCONNECT", NULL, WS_OPT_FLAG, OPT(keep_on_disconnect),
	  0, 0, "let commands finish when their client leaves", NULL },
	{ "no-auth", "WS_NO_AUTH", NULL, WS_OPT_FLAG, OPT(no_auth), 0, 0,
	  "serve without a token (anyone who reaches the port runs commands)", NULL },
	{ "allow-command", "WS_ALLOW_COMMAND", "REGEX", WS_OPT_STRING, OPT(allow_command), 0, 0,
	  "run only argv commands whose resolved absolute path matches this POSIX extended "
	  "regex (shell lines are refused)",
	  NULL },
	{ "deny-command", "WS_DENY_COMMAND", "REGEX", WS_OPT_STRING, OPT(deny_command), 0, 0,
	  "refuse commands whose path, argv[0] or shell line matches this regex (a tripwire, "
	  "not a boundary)",
	  NULL },
	{ "allow-command-shell", "WS_ALLOW_COMMAND_SHELL", NULL, WS_OPT_FLAG,
	  OPT(allow_command_shell), 0, 0,
	  "with --allow-command, still run shell lines that match it (a regex over a shell line "
	  "is not a boundary)",
	  NULL },
	{ "command-path", "WS_COMMAND_PATH", "DIRS", WS_OPT_STRING, OPT(command_path), 0, 0,
	  "under --allow/--deny-command, where argv[0] is looked up (not the client's PATH)",
	  check_command_path },
	{ "max-reply", "WS_MAX_REPLY", "BYTES", WS_OPT_SIZE, OPT(max_reply), 1024, 1ull << 30,
	  "output one result (or one batch) carries, as encoded in the reply; the rest is cut",
	  NULL },
	{ "max-buffered", "WS_MAX_BUFFERED", "BYTES", WS_OPT_SIZE, OPT(max_buffered), 1024,
	  1ull << 40, "results' output held in memory (unsent or unread), server-wide", NULL },
	{ "max-buffered-per-conn", "WS_MAX_BUFFERED_PER_CONN", "BYTES", WS_OPT_SIZE,
	  OPT(max_buffered_per_conn), 1024, 1ull << 40,
	  "results' output held in memory for one connection", NULL },
	{ "max-batch", "WS_MAX_BATCH", "N", WS_OPT_UINT, OPT(max_batch), 1, 100000,
	  "requests in one JSON-RPC batch", NULL },
	{ "max-id-length", "WS_MAX_ID_LENGTH", "BYTES", WS_OPT_UINT, OPT(max_id_length), 1,
	  1u << 20, "longest string id a request may have", NULL },
	{ "keep-buffer", "WS_KEEP_BUFFER", "BYTES", WS_OPT_SIZE, OPT(keep_buffer), 4096, 1ull << 30,
	  "recent output a kept process (keep, pty, terminal) holds per stream for attach", NULL },
	{ "kept-total", "WS_KEPT_TOTAL", "BYTES", WS_OPT_SIZE, OPT(kept_total), 4096, 1ull << 40,
	  "output all kept processes hold together; past it the oldest exited go first", NULL },
	{ "max-kept", "WS_MAX_KEPT", "N", WS_OPT_UINT, OPT(max_kept), 1, 100000,
	  "kept processes, running or exited; past it the oldest exited one goes", NULL },
	{ "kept-linger", "WS_KEPT_LINGER", "SECONDS", WS_OPT_SECONDS, OPT(kept_linger_ms), 0,
	  86400u * 1000u, "how long an exited kept process stays listable and attachable", NULL },
	{ "terminal-shell", "WS_TERMINAL_SHELL", "PATH", WS_OPT_STRING, OPT(terminal_shell), 0, 0,
	  "what a new terminal runs, login style", check_absolute },
	/* the commands' sandbox: ws_sandbox_options_rows() in main() */
};

#define NOPTS (sizeof(rpc_opts) / sizeof(rpc_opts[0]))

/*
 * Says who the commands run as, warns when that is this server's own user
 * (root, or the unprivileged user it runs as) or when a bound falls back
 * (no pids or memory cgroup, the host's /dev/shm), and refuses a token file
 * the commands' user could read. Returns 0, or the exit status.
 */
static int
check_commands_user(const struct ws_sandbox *sb, const struct ws_config *cfg, uint64_t mem_bytes)
{
	const char *user = ws_sandbox_user(sb);
	const char *why = NULL;
	const char *cgroup = ws_sandbox_pids_cgroup(sb, &why);
	if (user && cfg->token_file && ws_sandbox_user_may_read(sb, cfg->token_file)) {
		fprintf(stderr,
			"error: --token-file %s is readable by %s, the commands' user: make it "
			"readable by this server's user only (chmod 600)\n",
			cfg->token_file, user);
		return WS_EXIT_USAGE;
	}
	const char *mem_why = NULL, *shm_why = NULL;
	const char *mem = ws_sandbox_mem_cgroup(sb, &mem_why);
	uint64_t shm = ws_sandbox_shm(sb, &shm_why);
	if (user)
		ws_log(WS_LOG_INFO,
		       "sandbox user=%s pids_cgroup=%s memory_cgroup=%s shm_bytes=%llu", user,
		       cgroup ? cgroup : "none", mem ? mem : "none", (unsigned long long)shm);
	else if (ws_sandbox_runs_as_root(sb))
		ws_log(WS_LOG_WARN,
		       "sandbox user=root text=\"--run-as-self: commands run as root and can read "
		       "this server's files, signal it and read other processes' memory\"");
	else
		ws_log(WS_LOG_WARN,
		       "sandbox user=self uid=%u text=\"not root, so commands run as this server's "
		       "own user: they can signal it and open its files; run it as root (commands "
		       "then run as " WS_SANDBOX_DEFAULT_USER ") or give it a user of its own\"",
		       (unsigned)geteuid());
	if (!cgroup && ws_sandbox_runs_as_root(sb))
		ws_log(WS_LOG_WARN,
		       "sandbox pids_cgroup=none reason=\"%s\" text=\"root is exempt "
		       "from RLIMIT_NPROC: commands' processes are not bounded\"",
		       why);
	if (!mem && mem_bytes)
		ws_log(WS_LOG_WARN,
		       "sandbox memory_cgroup=none reason=\"%s\" text=\"memory is bounded per "
		       "process only (--limit-as), not per command\"",
		       mem_why);
	if (!shm && strcmp(shm_why, "--shm-size 0") != 0)
		ws_log(WS_LOG_WARN,
		       "sandbox shm=host reason=\"%s\" text=\"commands share the host's /dev/shm: "
		       "what they leave there stays, bounded only by its size\"",
		       shm_why);
	return 0;
}

/* Where the commands' HOME is made: a fresh directory under /tmp per server run. */
#define HOME_TEMPLATE "/tmp/ws-rpc-home.XXXXXX"
/* How deep rpc_home_remove() descends into what the commands left in it. */
#define HOME_DEPTH_MAX 64

/*
 * The commands' HOME (and a terminal's): a directory of their own, made
 * at start-up, owned by the user they run as, mode 0700. HOME=/tmp was
 * every local user's: a .bash_profile (or ~/.local site-packages,
 * ~/.gitconfig) planted there by anyone ran in every later terminal.
 * Made before the server confines itself, removed when it stops. 0 or -1
 * with the reason in err.
 */
static int
home_create(const struct ws_sandbox *sb, char *dir, size_t cap, char *err, size_t errlen)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();
	const char *user = ws_sandbox_user(sb);
	if (user) {
		const struct passwd *pw = getpwnam(user);
		if (!pw) {
			snprintf(err, errlen, "commands' HOME: no such user '%s'", user);
			return -1;
		}
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	snprintf(dir, cap, "%s", HOME_TEMPLATE);
	if (!mkdtemp(dir)) {
		snprintf(err, errlen, "commands' HOME: mkdtemp %s: %s", HOME_TEMPLATE,
			 strerror(errno));
		return -1;
	}
	/* /tmp is sticky: no one else can swap the name, but check what we hold anyway */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || (uid != geteuid() && fchown(fd, uid, gid) != 0) || fchmod(fd, 0700) != 0 ||
	    fstat(fd, &st) != 0 || st.st_uid != uid || (st.st_mode & 07777) != 0700) {
		snprintf(err, errlen, "commands' HOME %s: %s", dir,
			 errno ? strerror(errno) : "not ours");
		if (fd >= 0)
			close(fd);
		rmdir(dir);
		return -1;
	}
	close(fd);
	return 0;
}

/* Removes what is under fd (which it closes), never following a link. */
static void
home_remove_at(int fd, unsigned depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	const struct dirent *e;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0 || errno != EISDIR)
			continue;
		int sub = depth ? openat(dirfd(d), e->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
				: -1;
		if (sub >= 0)
			home_remove_at(sub, depth - 1);
		unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static void
home_remove(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		home_remove_at(fd, HOME_DEPTH_MAX);
	if (rmdir(dir) != 0 && errno != ENOENT)
		ws_log(WS_LOG_WARN, "home remove=failed dir=%s error=\"%s\"", dir, strerror(errno));
}

static bool
compile(const char *flag, const char *src, regex_t *re)
{
	int rc = regcomp(re, src, REG_EXTENDED | REG_NOSUB);
	if (rc == 0)
		return true;
	char msg[128];
	regerror(rc, re, msg, sizeof(msg));
	fprintf(stderr, "error: --%s: invalid regex '%s': %s\n", flag, src, msg);
	return false;
}

int
main(int argc, char **argv)
{
	static struct rpc_server r = {
		.opt = {
			.exec_timeout_ms = 30 * 1000,
			.exec_timeout_max_ms = 10 * 60 * 1000,
			.kill_grace_ms = 2000,
			.max_output = 10u << 20,
			.max_exec = 32,
			.max_exec_per_conn = 4,
			.command_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			.max_reply = 16u << 20,
			.max_buffered = 128u << 20,
			.max_buffered_per_conn = 32u << 20,
			.max_batch = 100,
			.max_id_length = 256,
			.keep_buffer = 256u << 10,
			.kept_total = 64u << 20,
			.max_kept = 16,
			.kept_linger_ms = 600u * 1000u,
			.terminal_shell = "/bin/bash",
		},
	};
	ws_sandbox_options_defaults(&r.opt.sandbox);
	/* the sandbox's rows, the same in ws-sandbox-run, after ws-rpc's own */
	static struct ws_option opts[NOPTS + WS_SANDBOX_OPTIONS];
	memcpy(opts, rpc_opts, sizeof(rpc_opts));
	ws_sandbox_options_rows(opts + NOPTS, WS_SANDBOX_OPTIONS, OPT(sandbox));
	struct ws_config cfg;
	ws_config_defaults(&cfg, 8082);
	cfg.rate_limit = 10;
	cfg.rate_burst = 20;
	struct ws_option_table extra = { opts, sizeof(opts) / sizeof(opts[0]), &r.opt };
	enum ws_config_result parsed =
		ws_config_parse(&cfg, &extra, "ws-rpc",
				"Runs ping, info and exec requests (Sandbox `type` messages and "
				"JSON-RPC 2.0).",
				argc, argv);
	if (parsed != WS_CONFIG_RUN)
		return ws_config_exit_status(parsed);
	if (!cfg.token && !r.opt.no_auth) {
		fprintf(stderr, "error: ws-rpc runs commands: give --token-file (or WS_TOKEN), "
				"or --no-auth to serve anyone\n");
		return WS_EXIT_USAGE;
	}
	if (r.opt.exec_timeout_ms > r.opt.exec_timeout_max_ms) {
		fprintf(stderr, "error: --exec-timeout is longer than --exec-timeout-max\n");
		return WS_EXIT_USAGE;
	}
	if ((r.opt.allow_command && !compile("allow-command", r.opt.allow_command, &r.allow)) ||
	    (r.opt.deny_command && !compile("deny-command", r.opt.deny_command, &r.deny)))
		return WS_EXIT_USAGE;
	ws_log_init(cfg.level, cfg.format);
	struct ws_sandbox_config sandbox;
	char err[512];
	int rc = ws_sandbox_options_config(&r.opt.sandbox, &sandbox, err, sizeof(err));
	if (rc == 0)
		rc = ws_sandbox_create(&r.sandbox, &sandbox, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "error: %s\n", err);
		return ws_sandbox_exit_status(rc);
	}
	r.pid = getpid();
	if ((rc = check_commands_user(r.sandbox, &cfg, sandbox.limits.mem_bytes)) != 0) {
		ws_sandbox_destroy(r.sandbox);
		return rc;
	}
	static char home[sizeof(HOME_TEMPLATE)], home_env[sizeof(HOME_TEMPLATE) + 5];
	if (home_create(r.sandbox, home, sizeof(home), err, sizeof(err)) != 0) {
		fprintf(stderr, "error: %s\n", err);
		ws_sandbox_destroy(r.sandbox);
		return WS_EXIT_SYSTEM;
	}
	snprintf(home_env, sizeof(home_env), "HOME=%s", home);
	ws_log(WS_LOG_INFO, "home dir=%s", home);
	if (!ws_sandbox_policy(r.sandbox))
		ws_log(WS_LOG_WARN, "sandbox profile=none text=\"commands run without a seccomp "
				    "filter\"");
	if (r.opt.no_auth)
		ws_log(WS_LOG_WARN, "auth disabled=yes text=\"--no-auth: anyone who reaches this "
				    "port can run commands\"");

	r.limits = (struct rpc_limits){
		.exec_timeout_ms = r.opt.exec_timeout_ms,
		.exec_timeout_max_ms = r.opt.exec_timeout_max_ms,
		.max_output = r.opt.max_output,
		.max_exec = r.opt.max_exec,
		.max_exec_per_conn = r.opt.max_exec_per_conn,
		.keep_on_disconnect = r.opt.keep_on_disconnect,
		.max_reply = r.opt.max_reply,
		.max_buffered = r.opt.max_buffered,
		.max_buffered_per_conn = r.opt.max_buffered_per_conn,
		.max_batch = r.opt.max_batch,
		.max_id = r.opt.max_id_length,
		.rate = { cfg.rate_limit, cfg.rate_burst },
		.allow = r.opt.allow_command ? &r.allow : NULL,
		.deny = r.opt.deny_command ? &r.deny : NULL,
		.allow_shell = r.opt.allow_command_shell,
		.command_path = r.opt.command_path,
		.home_env = home_env,
	};
	r.limits.described = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:i, s:b, s:i, s:i}",
		"exec_timeout_ms", (json_int_t)r.opt.exec_timeout_ms, "exec_timeout_max_ms",
		(json_int_t)r.opt.exec_timeout_max_ms, "max_output", (json_int_t)r.opt.max_output,
		"max_reply", (json_int_t)r.opt.max_reply, "max_buffered",
		(json_int_t)r.opt.max_buffered, "max_buffered_per_conn",
		(json_int_t)r.opt.max_buffered_per_conn, "max_batch", (int)r.opt.max_batch,
		"max_id_length", (int)r.opt.max_id_length, "max_exec", (int)r.opt.max_exec,
		"max_exec_per_conn", (int)r.opt.max_exec_per_conn, "keep_on_disconnect",
		r.opt.keep_on_disconnect, "rate_limit", (int)cfg.rate_limit, "rate_burst",
		(int)cfg.rate_burst);
	/*
	 * Whether a policy applies, not its regexes: a bearer token leaks with
	 * the URLs that carry it, and the text of an allowlist is a map of what
	 * to try next. The operator has the flags.
	 */
	json_object_set_new(r.limits.described, "kept",
			    json_pack("{s:I, s:I, s:i, s:I}", "keep_buffer",
				      (json_int_t)r.opt.keep_buffer, "kept_total",
				      (json_int_t)r.opt.kept_total, "max_kept", (int)r.opt.max_kept,
				      "kept_linger_ms", (json_int_t)r.opt.kept_linger_ms));
	json_object_set_new(r.limits.described, "command_policy",
			    json_pack("{s:b, s:b, s:b}", "allowlist", r.opt.allow_command != NULL,
				      "denylist", r.opt.deny_command != NULL, "shell",
				      !r.opt.allow_command || r.opt.allow_command_shell));
	/* what confines each command, as info reports it */
	json_object_set_new(
		r.limits.described, "sandbox",
		json_pack("{s:s, s:s?, s:s?, s:s?, s:{s:I, s:I, s:I, s:I, s:I}, s:I, s:I}",
			  "seccomp_profile", ws_sandbox_profile_name(sandbox.profile),
			  "seccomp_policy", sandbox.policy_file, "run_as",
			  ws_sandbox_user(r.sandbox) ? ws_sandbox_user(r.sandbox) : "self",
			  "isolate", r.opt.sandbox.isolate, "rlimits", "cpu_s",
			  (json_int_t)sandbox.limits.cpu_s, "as_bytes",
			  (json_int_t)sandbox.limits.as_bytes, "nproc",
			  (json_int_t)sandbox.limits.nproc, "fsize_bytes",
			  (json_int_t)sandbox.limits.fsize_bytes, "nofile",
			  (json_int_t)sandbox.limits.nofile, "mem_bytes",
			  ws_sandbox_mem_cgroup(r.sandbox, NULL)
				  ? (json_int_t)sandbox.limits.mem_bytes
				  : (json_int_t)0,
			  "shm_bytes", (json_int_t)ws_sandbox_shm(r.sandbox, NULL)));
	r.hub = (struct rpc_hub){ .limits = &r.limits, .server_name = "ws-rpc" };

	static const struct ws_app app = {
		.name = "ws-rpc",
		.start = rpc_start,
		.confine = rpc_confine,
		.stop = rpc_stop,
		.open = rpc_open,
		.message = rpc_message,
		.rate_limited = rpc_rate_limited,
		.drained = rpc_drained,
		.close = rpc_close,
		.metrics = rpc_metrics,
		.http = rpc_http,
		.subprotocols = subprotocols,
	};
	int status = ws_server_run(&app, &r, &cfg);
	home_remove(home);
	ws_sandbox_destroy(r.sandbox);
	ws_config_finish(&cfg);
	json_decref(r.limits.described);
	if (r.opt.allow_command)
		regfree(&r.allow);
	if (r.opt.deny_command)
		regfree(&r.deny);
	return status;
}
