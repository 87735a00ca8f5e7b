#define _GNU_SOURCE /* explicit_bzero, usleep */
#include "engine_redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "event.h"
#include "http.h"
#include "ident.h"
#include "log.h"
#include "timer.h"
#include "watch.h"

#define ROOM_MAX 64
#define KEY_MAX (ROOM_MAX + 32)
#define NODE_LEN BC_IDENT_HEX_LEN
#define ROOM_BUCKETS 1024
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* Leaves kept while Redis is down, to announce once it is back (then dropped: TTL reaps). */
#define OWED_MAX 100000
/* What bc_redis_destroy() waits for the last commands to leave, at most. */
#define FLUSH_MS 500

/* clang-format off */
static const char lua_msg[] =
	"if redis.call('EXISTS',KEYS[4])==0 then redis.call('SET',KEYS[4],ARGV[7]) end\n"
	"local seq=string.format('%d',redis.call('INCR',KEYS[1]))\n"
	"local ev=string.format('%d',redis.call('INCR',KEYS[2]))\n"
	"local info=''\n"
	"if ARGV[8]~='' then info=',\"info\":'..ARGV[8] end\n"
	"local m='{\"type\":\"message\",\"from\":'..ARGV[2]..',\"room\":'..ARGV[3]..',\"text\":'..ARGV[4]..',\"seq\":'..seq..',\"ts\":'..ARGV[5]..info..'}'\n"
	"local cap=tonumber(ARGV[6])\n"
	"if cap>0 then redis.call('XADD',KEYS[3],'MAXLEN',cap,seq..'-0','m',m) end\n"
	"redis.call('PUBLISH',ARGV[1],ev..' '..seq..' '..m)\n"
	"return seq\n";

static const char lua_join[] =
	"local epoch=redis.call('GET',KEYS[4])\n"
	"if not epoch then epoch=ARGV[7]; redis.call('SET',KEYS[4],epoch) end\n"
	"redis.call('HSET',KEYS[5],ARGV[2],ARGV[3])\n"
	"local info=''\n"
	"if ARGV[9]~='' then redis.call('HSET',KEYS[6],ARGV[2],ARGV[9]); info=',\"info\":'..ARGV[9] end\n"
	"local count=redis.call('HLEN',KEYS[5])\n"
	"local ev=string.format('%d',redis.call('INCR',KEYS[2]))\n"
	"redis.call('PUBLISH',ARGV[1],ev..' 0 {\"type\":\"join\",\"id\":'..ARGV[3]..',\"room\":'..ARGV[4]..',\"count\":'..count..info..'}')\n"
	"local last=tonumber(redis.call('GET',KEYS[1]) or '0')\n"
	"local since=tonumber(ARGV[5]); local limit=tonumber(ARGV[6])\n"
	"if since<0 then since=last-limit; if since<0 then since=0 end end\n"
	"local hist={}\n"
	"if limit>0 then for i,e in ipairs(redis.call('XRANGE',KEYS[3],'('..string.format('%d',since)..'-0','+','COUNT',limit)) do hist[i]=e[2][2] end end\n"
	"local first=0\n"
	"local f=redis.call('XRANGE',KEYS[3],'-','+','COUNT',1)\n"
	"if f[1] then first=tonumber(string.match(f[1][1],'^(%d+)')) end\n"
	"local mem={}; local infos={}\n"
	"local max=tonumber(ARGV[8])\n"
	"if max>0 then\n"
	" local all=redis.call('HGETALL',KEYS[5])\n"
	" for i=1,#all,2 do\n"
	"  if #mem>=max then break end\n"
	"  mem[#mem+1]=all[i+1]; infos[#infos+1]=redis.call('HGET',KEYS[6],all[i]) or ''\n"
	" end\n"
	"end\n"
	"return {ev,last,epoch,count,mem,hist,first,infos}\n";

static const char lua_leave[] =
	"local name=redis.call('HGET',KEYS[1],ARGV[2])\n"
	"if not name then return 0 end\n"
	"redis.call('HDEL',KEYS[1],ARGV[2])\n"
	"redis.call('HDEL',KEYS[3],ARGV[2])\n"
	"local count=redis.call('HLEN',KEYS[1])\n"
	"local ev=string.format('%d',redis.call('INCR',KEYS[2]))\n"
	"redis.call('PUBLISH',ARGV[1],ev..' 0 {\"type\":\"leave\",\"id\":'..name..',\"room\":'..ARGV[3]..',\"count\":'..count..'}')\n"
	"return 1\n";

static const char lua_reap[] =
	"local all=redis.call('HGETALL',KEYS[1]); local alive={}; local n=0\n"
	"for i=1,#all,2 do\n"
	" local node=string.match(all[i],'^([^:]+):')\n"
	" if node then\n"
	"  local a=alive[node]\n"
	"  if a==nil then a=(redis.call('EXISTS',ARGV[3]..node)==1); alive[node]=a end\n"
	"  if not a then\n"
	"   redis.call('HDEL',KEYS[1],all[i]); redis.call('HDEL',KEYS[3],all[i])\n"
	"   local count=redis.call('HLEN',KEYS[1]); local ev=string.format('%d',redis.call('INCR',KEYS[2]))\n"
	"   redis.call('PUBLISH',ARGV[1],ev..' 0 {\"type\":\"leave\",\"id\":'..all[i+1]..',\"room\":'..ARGV[2]..',\"count\":'..count..'}')\n"
	"   n=n+1\n"
	"  end\n"
	" end\n"
	"end\n"
	"return n\n";
/* where the room is now (ev), and the messages after a seq: a resubscribed room catches up */
static const char lua_catchup[] =
	"local ev=string.format('%d',tonumber(redis.call('GET',KEYS[2]) or '0'))\n"
	"local seq=string.format('%d',tonumber(redis.call('GET',KEYS[3]) or '0'))\n"
	"return {ev,redis.call('XRANGE',KEYS[1],'('..ARGV[1]..'-0','+','COUNT',ARGV[2]),seq}\n";
/* clang-format on */

enum script { SC_MSG, SC_JOIN, SC_LEAVE, SC_REAP, SC_CATCHUP, SC_COUNT };
static const char *const scripts[SC_COUNT] = { lua_msg, lua_join, lua_leave, lua_reap,
					       lua_catchup };

struct link {
	struct bc_redis *r;
	redisAsyncContext *ac;
	struct ws_watch *w;
	bool writing;   /* hiredis wants to write */
	bool armed;     /* a writable event is asked for */
	bool connected; /* the connect completed, and AUTH and SELECT succeeded */
	bool tcp;       /* the connect completed */
	int setup;      /* AUTH and SELECT replies still to come */
	bool sub;       /* the subscriber link */
};

struct lmember {
	struct lmember *next;
	uint64_t id;
	char *name_json;
	char *info_json; /* or NULL */
};

struct join {
	struct join *next;
	struct bc_redis *r;
	char room[ROOM_MAX + 1];
	uint64_t member;
	char *name_json;
	char *info_json; /* or NULL */
	int64_t since;
	uint32_t limit;
	bc_redis_welcome_fn fn;
	void *ctx;
};

enum sub_state { SUB_NONE, SUB_PENDING, SUB_ACTIVE, SUB_LEAVING };

struct eroom {
	struct eroom *hnext;
	struct lmember *members; /* this node's, for re-registering after Redis comes back */
	struct join *waiting;    /* joins waiting for the subscription, oldest first */
	struct join **waiting_tail;
	uint32_t nmembers;
	enum sub_state sub;
	bool resync; /* its subscription was lost: events may have been missed */
	char name[ROOM_MAX + 1];
};

struct owed {
	struct owed *next;
	char room[ROOM_MAX + 1];
	uint64_t member;
};

struct bc_redis {
	struct ws_server *srv;
	struct bc_redis_config cfg;
	struct bc_redis_events ev;
	void *app;
	char host[INET6_ADDRSTRLEN];
	int port;
	char *user, *pass;
	unsigned db;
	char node[NODE_LEN + 1];
	char node_key[32];
	char sha[SC_COUNT][SHA1_DIGEST_STRING_LENGTH];
	bool reloading; /* SCRIPT LOADs sent after a NOSCRIPT, not all answered yet */
	struct link cmd, sub;
	struct ws_timer *retry, *tick;
	uint32_t backoff_ms;
	bool was_up;
	bool closing;
	struct eroom *rooms[ROOM_BUCKETS];
	struct owed *owed;
	size_t nowed;
	struct bc_redis_stats st;
	uint32_t pending; /* joins, messages and history reads awaiting Redis */
};

/* ---- url ---- */

struct url {
	char host[256];
	int port;
	char user[128], pass[256];
	bool has_user, has_pass;
	unsigned db;
};

/* Where the password is in url ([user:]pass@): false when it has none. */
static bool
pass_span(const char *url, size_t *off, size_t *len)
{
	/* any scheme: a mistyped one (REDIS://) is echoed in an error too */
	const char *p = strstr(url, "://");
	if (!p)
		return false;
	p += 3;
	const char *at = strrchr(p, '@');
	if (!at)
		return false;
	const char *colon = memchr(p, ':', (size_t)(at - p));
	const char *pw = colon ? colon + 1 : p;
	*off = (size_t)(pw - url);
	*len = (size_t)(at - pw);
	return *len > 0;
}

void
bc_redis_url_redact(const char *url, char *out, size_t outlen)
{
	size_t off, len;
	if (!pass_span(url, &off, &len)) {
		snprintf(out, outlen, "%s", url);
		return;
	}
	snprintf(out, outlen, "%.*s***%s", (int)off, url, url + off + len);
}

bool
bc_redis_url_scrub(char *url)
{
	size_t off, len;
	if (!pass_span(url, &off, &len))
		return false;
	memset(url + off, '*', len);
	return true;
}

/* %XX-decodes n bytes of in into out (size outsz, NUL-terminated); false if malformed or long. */
static bool
pct_decode(const char *in, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		if (c == '%') {
			int hi = i + 2 < n ? ws_http_hexval(in[i + 1]) : -1;
			int lo = i + 2 < n ? ws_http_hexval(in[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			if (!c)
				return false; /* a NUL would cut the word short */
			i += 2;
		}
		if (o + 1 >= outsz)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* Decimal digits only (no sign, no space), at most max: strtol alone takes " +12". */
static bool
digits(const char *s, const char *end, unsigned long max, unsigned long *out)
{
	if (s == end || end - s > 10)
		return false;
	unsigned long v = 0;
	for (const char *p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* Errors show the URL with its password as *** (they end up in logs and terminals). */
static bool
url_parse(const char *url, struct url *u, char *err, size_t errlen)
{
	*u = (struct url){ .port = 6379 };
	char shown[200];
	bc_redis_url_redact(url, shown, sizeof(shown));
	if (strncmp(url, "rediss://", 9) == 0) {
		snprintf(err, errlen, "rediss:// needs hiredis with TLS (this build's has none)");
		return false;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		snprintf(err, errlen, "'%s': expected redis://[user:pass@]host:port[/db]", shown);
		return false;
	}
	const char *p = url + 8;
	const char *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ul = colon ? (size_t)(colon - p) : 0;
		const char *pw = colon ? colon + 1 : p;
		size_t pl = (size_t)(at - pw);
		if (!pct_decode(p, ul, u->user, sizeof(u->user)) ||
		    !pct_decode(pw, pl, u->pass, sizeof(u->pass))) {
			snprintf(err, errlen,
				 "'%s': user or password too long or badly %%-encoded "
				 "(%%XX, no %%00)",
				 shown);
			return false;
		}
		u->has_user = ul > 0;
		u->has_pass = pl > 0;
		p = at + 1;
	}
	const char *end = p + strcspn(p, "/");
	const char *hs = p, *he;
	const char *port = NULL;
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(end - hs));
		if (!he) {
			snprintf(err, errlen, "'%s': unterminated [IPv6 address]", shown);
			return false;
		}
		if (he + 1 < end && he[1] != ':') {
			snprintf(err, errlen, "'%s': expected :port or the end after ']'", shown);
			return false;
		}
		if (he + 1 < end)
			port = he + 2;
	} else {
		he = memchr(p, ':', (size_t)(end - p));
		if (he)
			port = he + 1;
		else
			he = end;
	}
	if (he == hs || (size_t)(he - hs) >= sizeof(u->host)) {
		snprintf(err, errlen, "'%s': no host (or longer than 255 bytes)", shown);
		return false;
	}
	memcpy(u->host, hs, (size_t)(he - hs));
	if (port) {
		unsigned long v;
		if (!digits(port, end, 65535, &v) || v < 1) {
			snprintf(err, errlen, "'%s': invalid port (digits, 1 to 65535)", shown);
			return false;
		}
		u->port = (int)v;
	}
	if (*end == '/' && end[1]) {
		unsigned long v;
		if (!digits(end + 1, end + strlen(end), 1000000, &v)) {
			snprintf(err, errlen,
				 "'%s': invalid database number (digits, 0 to 1000000)", shown);
			return false;
		}
		u->db = (unsigned)v;
	}
	return true;
}

bool
bc_redis_url_has(const char *url, bool *user, bool *pass)
{
	struct url u;
	char err[8];
	bool ok = url_parse(url, &u, err, sizeof(err));
	*user = ok && u.has_user;
	*pass = ok && u.has_pass;
	explicit_bzero(&u, sizeof(u));
	return ok;
}

bool
bc_redis_url_ok(const char *url, char *err, size_t errlen)
{
	struct url u;
	bool ok = url_parse(url, &u, err, errlen);
	explicit_bzero(&u, sizeof(u));
	return ok;
}

/* ---- keys ---- */

static void
key(char *out, const char *room, const char *suffix)
{
	snprintf(out, KEY_MAX, "wsb:{%s}:%s", room, suffix);
}

static void
chan(char *out, const char *room)
{
	snprintf(out, KEY_MAX, "wsb:{%s}", room);
}

/* "ROOM" as a JSON string: names are of a JSON-safe alphabet (checked by the server). */
static void
room_json(char *out, const char *room)
{
	snprintf(out, KEY_MAX, "\"%s\"", room);
}

static struct eroom **
room_slot(struct bc_redis *r, const char *name)
{
	struct eroom **e = &r->rooms[bc_ident_hash(name) % ROOM_BUCKETS];
	while (*e && strcmp((*e)->name, name) != 0)
		e = &(*e)->hnext;
	return e;
}

/* ---- hiredis on ws_watch ---- */

static bool
on_watch(void *arg, struct ws_watch *w, int fd, enum ws_watch_event ev)
{
	struct link *l = arg;
	switch (ev) {
	case WS_WATCH_READABLE:
		if (l->ac)
			redisAsyncHandleRead(l->ac);
		return true;
	case WS_WATCH_WRITABLE:
		l->armed = false;
		if (l->ac)
			redisAsyncHandleWrite(l->ac);
		if (l->ac && l->w && l->writing && !l->armed) {
			l->armed = true;
			ws_watch_want_write(l->w);
		}
		return true;
	case WS_WATCH_CLOSED:
		l->w = NULL;
		/* hiredis reads the hang-up itself and disconnects */
		if (l->ac)
			redisAsyncHandleRead(l->ac);
		return false;
	}
	return true;
}

static void
ev_add_read(void *p)
{
	struct link *l = p;
	if (l->w)
		ws_watch_read(l->w, true);
}

static void
ev_del_read(void *p)
{
	struct link *l = p;
	if (l->w)
		ws_watch_read(l->w, false);
}

static void
ev_add_write(void *p)
{
	struct link *l = p;
	l->writing = true;
	if (l->w && !l->armed) {
		l->armed = true;
		ws_watch_want_write(l->w);
	}
}

static void
ev_del_write(void *p)
{
	struct link *l = p;
	l->writing = false;
}

static void
ev_cleanup(void *p)
{
	struct link *l = p;
	ws_watch_close(l->w);
	l->w = NULL;
	l->armed = l->writing = false;
}

/* ---- links ---- */

static void link_lost(struct link *l);
static void eroom_maybe_free(struct bc_redis *r, struct eroom *e);
static void link_ready(struct link *l);
static void sub_subscribe(struct bc_redis *r, struct eroom *e);
static void run_join(struct bc_redis *r, struct join *j);
static void fail_join(struct join *j);

static bool
is_up(const struct bc_redis *r)
{
	return r->cmd.connected && r->sub.connected;
}

static void
report_link(struct bc_redis *r)
{
	bool up = is_up(r);
	if (up == r->was_up || r->closing)
		return;
	r->was_up = up;
	ws_log(up ? WS_LOG_INFO : WS_LOG_WARN, "redis up=%s host=%s port=%d node=%s",
	       up ? "yes" : "no", r->host, r->port, r->node);
	if (r->ev.link)
		r->ev.link(r->app, up);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;
	if (status != REDIS_OK) {
		ws_log(WS_LOG_DEBUG, "redis-connect failed=yes link=%s error=\"%s\"",
		       l->sub ? "sub" : "cmd", ac->errstr);
		/* hiredis frees the context after this */
		l->ac = NULL;
		link_lost(l);
		return;
	}
	l->tcp = true;
	l->r->st.connects++;
	if (!l->setup) {
		l->connected = true;
		link_ready(l);
	}
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	struct link *l = ac->data;
	if (l->r->closing)
		return;
	ws_log(WS_LOG_WARN, "redis-disconnect link=%s error=\"%s\"", l->sub ? "sub" : "cmd",
	       status == REDIS_OK ? "closed" : ac->errstr);
	l->r->st.disconnects++;
	l->ac = NULL;
	link_lost(l);
}

static void
arm_retry(struct bc_redis *r)
{
	if (r->closing)
		return;
	ws_timer_arm(r->retry, r->backoff_ms);
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

static void
link_lost(struct link *l)
{
	struct bc_redis *r = l->r;
	bool was = l->connected;
	l->connected = l->tcp = false;
	l->setup = 0;
	if (l->sub && was) {
		/* every subscription is gone with it; joins waiting on one fail */
		r->st.rooms_subscribed = 0;
		for (size_t i = 0; i < ROOM_BUCKETS; i++) {
			struct eroom *e = r->rooms[i];
			while (e) {
				struct eroom *enext = e->hnext;
				e->sub = SUB_NONE;
				e->resync = e->nmembers > 0;
				struct join *j = e->waiting;
				e->waiting = NULL;
				e->waiting_tail = &e->waiting;
				while (j) {
					struct join *next = j->next;
					fail_join(j);
					j = next;
				}
				eroom_maybe_free(r, e);
				e = enext;
			}
		}
	}
	report_link(r);
	arm_retry(r);
}

static void
discard_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	redisReply *rp = reply;
	if (rp && rp->type == REDIS_REPLY_ERROR)
		ws_log(WS_LOG_WARN, "redis-error op=\"%s\" error=\"%s\"", (const char *)priv,
		       rp->str);
}

/*
 * AUTH's or SELECT's reply. A refusal (a wrong password, a database past
 * the server's `databases`) leaves the link not ready: logged with Redis's
 * reason, closed, retried with backoff; serving db 0 instead would mix
 * tenants, and serving without AUTH fails every command.
 */
static void
on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct link *l = ac->data;
	redisReply *rp = reply;
	if (!rp || l->r->closing || l->ac != ac)
		return;
	if (rp->type == REDIS_REPLY_ERROR) {
		ws_log(WS_LOG_ERROR, "redis-setup failed=yes op=%s link=%s error=\"%s\"",
		       (const char *)priv, l->sub ? "sub" : "cmd", rp->str);
		redisAsyncDisconnect(ac);
		return;
	}
	if (l->setup > 0 && --l->setup == 0 && l->tcp) {
		l->connected = true;
		link_ready(l);
	}
}

/* Queued before the connect completes: the link is ready once both are answered. */
static void
setup(struct link *l)
{
	struct bc_redis *r = l->r;
	if (r->pass) {
		l->setup++;
		if (r->user)
			redisAsyncCommand(l->ac, on_setup, "AUTH", "AUTH %s %s", r->user, r->pass);
		else
			redisAsyncCommand(l->ac, on_setup, "AUTH", "AUTH %s", r->pass);
	}
	/* channels are the same in every database: only the command link selects */
	if (r->db && !l->sub) {
		char db[16];
		snprintf(db, sizeof(db), "%u", r->db);
		l->setup++;
		redisAsyncCommand(l->ac, on_setup, "SELECT", "SELECT %s", db);
	}
}

static void
start_link(struct bc_redis *r, struct link *l)
{
	if (l->ac)
		return;
	redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
	if (!ac)
		goto fail;
	if (ac->err) {
		ws_log(WS_LOG_DEBUG, "redis-connect failed=yes error=\"%s\"", ac->errstr);
		redisAsyncFree(ac);
		goto fail;
	}
	/* the watch closes its own copy; fcntl, not dup: the server filter has no dup */
	int fd = fcntl(ac->c.fd, F_DUPFD_CLOEXEC, 0);
	struct ws_watch *w = fd >= 0 ? ws_watch_create(r->srv, fd, on_watch, l) : NULL;
	if (!w) {
		redisAsyncFree(ac);
		goto fail;
	}
	*l = (struct link){ .r = r, .ac = ac, .w = w, .sub = l->sub };
	ac->data = l;
	ac->ev.data = l;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* arms the first writable event: that is how a finished connect shows */
	redisAsyncSetConnectCallback(ac, on_connect);
	ev_add_read(l);
	setup(l);
	return;
fail:
	arm_retry(r);
}

static void
retry_cb(void *arg)
{
	struct bc_redis *r = arg;
	start_link(r, &r->cmd);
	start_link(r, &r->sub);
}

/* A command of n NUL-terminated words (at most 8). */
static void
command(redisAsyncContext *ac, redisCallbackFn *fn, void *priv, int n, const char **v)
{
	size_t lens[8];
	for (int i = 0; i < n && i < 8; i++)
		lens[i] = strlen(v[i]);
	redisAsyncCommandArgv(ac, fn, priv, n, v, lens);
}

static void
refresh_node(struct bc_redis *r)
{
	char ttl[24];
	snprintf(ttl, sizeof(ttl), "%u", r->cfg.presence_ttl_ms);
	const char *v[] = { "SET", r->node_key, "1", "PX", ttl };
	command(r->cmd.ac, discard_reply, "SET node", 5, v);
}

/*
 * An EVALSHA in flight, with a copy of its words: when Redis answers
 * NOSCRIPT (SCRIPT FLUSH, a failover, a proxy to another node) it is sent
 * again once as EVAL with the script's body, so the call still succeeds,
 * and the scripts are loaded again for the calls that follow. Calls in
 * flight at that moment may run in another order than sent (each still
 * gets its own seq).
 */
struct evcall {
	struct bc_redis *r;
	redisCallbackFn *fn;
	void *priv;
	enum script s;
	bool retried;
	int argc;
	size_t *lens;
	const char **argv;
};

static void
on_loaded(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)reply;
	struct bc_redis *r = priv;
	r->reloading = false;
}

static void
reload_scripts(struct bc_redis *r)
{
	if (r->reloading)
		return;
	r->reloading = true;
	for (int s = 0; s < SC_COUNT; s++) {
		const char *v[] = { "SCRIPT", "LOAD", scripts[s] };
		command(r->cmd.ac, s == SC_COUNT - 1 ? on_loaded : discard_reply,
			s == SC_COUNT - 1 ? (void *)r : (void *)"SCRIPT LOAD", 3, v);
	}
}

static void
on_eval(redisAsyncContext *ac, void *reply, void *priv)
{
	struct evcall *c = priv;
	struct bc_redis *r = c->r;
	redisReply *rp = reply;
	if (rp && rp->type == REDIS_REPLY_ERROR && strncmp(rp->str, "NOSCRIPT", 8) == 0 &&
	    !c->retried && !r->closing && r->cmd.ac == ac) {
		ws_log(WS_LOG_WARN, "redis-noscript script=%d retried=yes", (int)c->s);
		r->st.noscript++;
		c->retried = true;
		c->argv[0] = "EVAL";
		c->lens[0] = 4;
		c->argv[1] = scripts[c->s];
		c->lens[1] = strlen(scripts[c->s]);
		reload_scripts(r);
		if (redisAsyncCommandArgv(ac, on_eval, c, c->argc, c->argv, c->lens) == REDIS_OK)
			return;
	}
	c->fn(ac, reply, c->priv);
	free(c);
}

static void
eval(struct bc_redis *r, redisCallbackFn *fn, void *priv, enum script s, size_t nkeys,
     const char **args, size_t *lens, size_t nargs)
{
	char nk[8];
	snprintf(nk, sizeof(nk), "%zu", nkeys);
	if (nargs > 21)
		nargs = 21;
	int argc = (int)(3 + nargs);
	size_t vl[24];
	vl[0] = 7;
	vl[1] = strlen(r->sha[s]);
	vl[2] = strlen(nk);
	size_t bytes = vl[2] + 1;
	for (size_t i = 0; i < nargs; i++) {
		vl[3 + i] = lens[i] ? lens[i] : strlen(args[i]);
		bytes += vl[3 + i] + 1;
	}
	/* one block: the call, its lengths, its words and their bytes */
	struct evcall *c = malloc(sizeof(*c) + (size_t)argc * (sizeof(size_t) + sizeof(char *)) +
				  bytes);
	if (!c) {
		fn(r->cmd.ac, NULL, priv);
		return;
	}
	*c = (struct evcall){ .r = r, .fn = fn, .priv = priv, .s = s, .argc = argc };
	c->lens = (size_t *)(c + 1);
	c->argv = (const char **)(c->lens + argc);
	char *b = (char *)(c->argv + argc);
	memcpy(c->lens, vl, (size_t)argc * sizeof(size_t));
	c->argv[0] = "EVALSHA";
	c->argv[1] = r->sha[s];
	for (int i = 2; i < argc; i++) {
		const char *src = i == 2 ? nk : args[i - 3];
		memcpy(b, src, vl[i]);
		b[vl[i]] = '\0';
		c->argv[i] = b;
		b += vl[i] + 1;
	}
	if (redisAsyncCommandArgv(r->cmd.ac, on_eval, c, argc, c->argv, c->lens) != REDIS_OK) {
		fn(r->cmd.ac, NULL, priv);
		free(c);
	}
}

static void
send_leave(struct bc_redis *r, const char *room, uint64_t member)
{
	char kp[KEY_MAX], kev[KEY_MAX], kpi[KEY_MAX], ch[KEY_MAX], rj[KEY_MAX], field[48];
	key(kp, room, "p");
	key(kev, room, "ev");
	key(kpi, room, "pi");
	chan(ch, room);
	room_json(rj, room);
	snprintf(field, sizeof(field), "%s:%llu", r->node, (unsigned long long)member);
	const char *a[] = { kp, kev, kpi, ch, field, rj };
	size_t l[6] = { 0 };
	eval(r, discard_reply, "leave", SC_LEAVE, 3, a, l, 6);
}

static void
link_ready(struct link *l)
{
	struct bc_redis *r = l->r;
	if (l->sub) {
		for (size_t i = 0; i < ROOM_BUCKETS; i++)
			for (struct eroom *e = r->rooms[i]; e; e = e->hnext)
				if (e->nmembers || e->waiting)
					sub_subscribe(r, e);
	} else {
		for (int s = 0; s < SC_COUNT; s++) {
			const char *v[] = { "SCRIPT", "LOAD", scripts[s] };
			command(l->ac, discard_reply, "SCRIPT LOAD", 3, v);
		}
		refresh_node(r);
		/* members that are here say so again (Redis may have lost them) */
		for (size_t i = 0; i < ROOM_BUCKETS; i++) {
			for (struct eroom *e = r->rooms[i]; e; e = e->hnext) {
				char kp[KEY_MAX], kpi[KEY_MAX];
				key(kp, e->name, "p");
				key(kpi, e->name, "pi");
				for (struct lmember *m = e->members; m; m = m->next) {
					char field[48];
					snprintf(field, sizeof(field), "%s:%llu", r->node,
						 (unsigned long long)m->id);
					const char *v[] = { "HSET", kp, field, m->name_json };
					command(l->ac, discard_reply, "HSET", 4, v);
					const char *vi[] = { "HSET", kpi, field, m->info_json };
					if (m->info_json)
						command(l->ac, discard_reply, "HSET", 4, vi);
				}
			}
		}
		while (r->owed) {
			struct owed *o = r->owed;
			r->owed = o->next;
			send_leave(r, o->room, o->member);
			free(o);
		}
		r->nowed = 0;
	}
	if (is_up(r))
		r->backoff_ms = BACKOFF_MIN_MS;
	report_link(r);
}

/* ---- subscriptions ---- */

static void
on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bc_redis *r = priv;
	redisReply *rp = reply;
	if (!rp || rp->type != REDIS_REPLY_ARRAY || rp->elements < 3 ||
	    rp->element[0]->type != REDIS_REPLY_STRING ||
	    rp->element[1]->type != REDIS_REPLY_STRING)
		return;
	const char *kind = rp->element[0]->str;
	const char *ch = rp->element[1]->str;
	size_t chl = rp->element[1]->len;
	/* wsb:{ROOM} */
	if (chl < 7 || chl - 6 > ROOM_MAX || memcmp(ch, "wsb:{", 5) != 0 || ch[chl - 1] != '}')
		return;
	char room[ROOM_MAX + 1];
	memcpy(room, ch + 5, chl - 6);
	room[chl - 6] = '\0';
	struct eroom *e = *room_slot(r, room);
	if (strcmp(kind, "message") == 0) {
		redisReply *p = rp->element[2];
		if (p->type != REDIS_REPLY_STRING || r->closing)
			return;
		struct bc_relay br;
		if (p->len && p->str[0] == 'B') {
			if (r->ev.relay && bc_relay_parse(p->str, p->len, &br))
				r->ev.relay(r->app, room, strcmp(br.node, r->node) == 0, br.member,
					    br.data, br.len);
			return;
		}
		struct bc_event pe;
		if (!bc_event_parse(p->str, p->len, &pe)) {
			ws_log(WS_LOG_WARN, "redis-event malformed=yes room=%s", room);
			return;
		}
		r->ev.event(r->app, room, pe.ev, pe.seq, pe.json, pe.len);
	} else if (strcmp(kind, "subscribe") == 0) {
		if (!e)
			return;
		e->sub = SUB_ACTIVE;
		r->st.rooms_subscribed++;
		if (e->resync) {
			e->resync = false;
			if (r->ev.resync)
				r->ev.resync(r->app, room);
		}
		struct join *j = e->waiting;
		e->waiting = NULL;
		e->waiting_tail = &e->waiting;
		while (j) {
			struct join *next = j->next;
			run_join(r, j);
			j = next;
		}
		if (!e->nmembers)
			eroom_maybe_free(r, e);
	} else if (strcmp(kind, "unsubscribe") == 0) {
		if (!e)
			return;
		if (r->st.rooms_subscribed)
			r->st.rooms_subscribed--;
		e->sub = SUB_NONE;
		if (e->nmembers || e->waiting)
			sub_subscribe(r, e);
		else
			eroom_maybe_free(r, e);
	}
}

static void
sub_subscribe(struct bc_redis *r, struct eroom *e)
{
	if (!r->sub.connected || e->sub != SUB_NONE)
		return;
	char ch[KEY_MAX];
	chan(ch, e->name);
	e->sub = SUB_PENDING;
	redisAsyncCommand(r->sub.ac, on_sub, r, "SUBSCRIBE %s", ch);
}

/* A room without members or waiting joins leaves its channel, then goes. */
static void
eroom_maybe_free(struct bc_redis *r, struct eroom *e)
{
	if (e->nmembers || e->waiting)
		return;
	if (e->sub == SUB_ACTIVE && r->sub.connected) {
		char ch[KEY_MAX];
		chan(ch, e->name);
		e->sub = SUB_LEAVING;
		redisAsyncCommand(r->sub.ac, on_sub, r, "UNSUBSCRIBE %s", ch);
		return;
	}
	if (e->sub == SUB_PENDING || e->sub == SUB_LEAVING)
		return; /* its confirmation decides */
	*room_slot(r, e->name) = e->hnext;
	free(e);
}

static struct eroom *
eroom_get(struct bc_redis *r, const char *room)
{
	struct eroom **slot = room_slot(r, room);
	if (*slot)
		return *slot;
	struct eroom *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->name, sizeof(e->name), "%s", room);
	e->waiting_tail = &e->waiting;
	*slot = e;
	return e;
}

/* ---- joins ---- */

static void
free_join(struct join *j)
{
	j->r->pending--;
	free(j->name_json);
	free(j->info_json);
	free(j);
}

static void
fail_join(struct join *j)
{
	j->fn(j->ctx, NULL);
	free_join(j);
}

static uint64_t
reply_uint(const redisReply *rp)
{
	if (rp->type == REDIS_REPLY_INTEGER)
		return rp->integer > 0 ? (uint64_t)rp->integer : 0;
	if (rp->type == REDIS_REPLY_STRING)
		return strtoull(rp->str, NULL, 10);
	return 0;
}

static bool answer_infos(const redisReply *mem, const redisReply *infos, const redisReply *hist,
			 struct bc_redis_welcome *w, bc_redis_welcome_fn fn, void *ctx);

/* Calls fn with the strings of an array reply (members, history). */
static bool
answer(const redisReply *mem, const redisReply *hist, struct bc_redis_welcome *w,
       bc_redis_welcome_fn fn, void *ctx)
{
	return answer_infos(mem, NULL, hist, w, fn, ctx);
}

/* The same with each member's info ("" for none; infos NULL: no infos). */
static bool
answer_infos(const redisReply *mem, const redisReply *infos, const redisReply *hist,
	     struct bc_redis_welcome *w, bc_redis_welcome_fn fn, void *ctx)
{
	size_t nm = mem ? mem->elements : 0, nh = hist->elements;
	const char **mi = calloc(nm + 1, sizeof(*mi));
	if (!mi)
		return false;
	const char **m = calloc(nm + 1, sizeof(*m));
	const char **h = calloc(nh + 1, sizeof(*h));
	size_t *hl = calloc(nh + 1, sizeof(*hl));
	uint64_t *hs = calloc(nh + 1, sizeof(*hs));
	if (!m || !h || !hl || !hs) {
		free(mi);
		free(m);
		free(h);
		free(hl);
		free(hs);
		return false;
	}
	for (size_t i = 0; i < nm; i++) {
		if (mem->element[i]->type != REDIS_REPLY_STRING)
			continue;
		const redisReply *in = infos && i < infos->elements ? infos->element[i] : NULL;
		mi[w->nmembers] = in && in->type == REDIS_REPLY_STRING && in->len ? in->str : NULL;
		m[w->nmembers++] = mem->element[i]->str;
	}
	for (size_t i = 0; i < nh; i++) {
		const redisReply *e = hist->element[i];
		uint64_t seq = 0;
		/* XRANGE: [SEQ-0, [field, value]]; the join script: the value */
		if (e->type == REDIS_REPLY_ARRAY && e->elements == 2 &&
		    e->element[0]->type == REDIS_REPLY_STRING &&
		    e->element[1]->type == REDIS_REPLY_ARRAY && e->element[1]->elements == 2) {
			seq = strtoull(e->element[0]->str, NULL, 10);
			e = e->element[1]->element[1];
		}
		if (e->type == REDIS_REPLY_STRING) {
			hs[w->nhist] = seq;
			h[w->nhist] = e->str;
			hl[w->nhist++] = e->len;
		}
	}
	w->members = m;
	w->member_infos = mi;
	w->hist = h;
	w->hist_len = hl;
	w->hist_seq = hs;
	fn(ctx, w);
	free(mi);
	free(m);
	free(h);
	free(hl);
	free(hs);
	return true;
}

static void
on_join(redisAsyncContext *ac, void *reply, void *priv)
{
	struct join *j = priv;
	redisReply *rp = reply;
	if (!rp || rp->type != REDIS_REPLY_ARRAY || rp->elements != 8 ||
	    rp->element[2]->type != REDIS_REPLY_STRING ||
	    rp->element[4]->type != REDIS_REPLY_ARRAY ||
	    rp->element[5]->type != REDIS_REPLY_ARRAY ||
	    rp->element[7]->type != REDIS_REPLY_ARRAY) {
		if (rp && rp->type == REDIS_REPLY_ERROR)
			ws_log(WS_LOG_WARN, "redis-error op=join error=\"%s\"", rp->str);
		fail_join(j);
		return;
	}
	struct bc_redis_welcome w = {
		.ev = reply_uint(rp->element[0]),
		.last_seq = reply_uint(rp->element[1]),
		.epoch = rp->element[2]->str,
		.count = reply_uint(rp->element[3]),
		.first_seq = reply_uint(rp->element[6]),
	};
	if (!answer_infos(rp->element[4], rp->element[7], rp->element[5], &w, j->fn, j->ctx))
		j->fn(j->ctx, NULL);
	free_join(j);
}

static void
run_join(struct bc_redis *r, struct join *j)
{
	if (!r->cmd.connected) {
		fail_join(j);
		return;
	}
	char ks[KEY_MAX], kev[KEY_MAX], kh[KEY_MAX], ke[KEY_MAX], kp[KEY_MAX], kpi[KEY_MAX],
		ch[KEY_MAX], rj[KEY_MAX], field[48], since[24], limit[16], epoch[NODE_LEN + 1],
		max[16];
	key(ks, j->room, "seq");
	key(kev, j->room, "ev");
	key(kh, j->room, "h");
	key(ke, j->room, "epoch");
	key(kp, j->room, "p");
	key(kpi, j->room, "pi");
	chan(ch, j->room);
	room_json(rj, j->room);
	snprintf(field, sizeof(field), "%s:%llu", r->node, (unsigned long long)j->member);
	snprintf(since, sizeof(since), "%lld", (long long)j->since);
	snprintf(limit, sizeof(limit), "%u", j->limit);
	snprintf(max, sizeof(max), "%u", r->cfg.welcome_members);
	bc_ident_random(epoch);
	const char *a[] = { ks,    kev,   kh,    ke,           kp,
			    kpi,   ch,    field, j->name_json, rj,
			    since, limit, epoch, max,          j->info_json ? j->info_json : "" };
	size_t l[15] = { 0 };
	eval(r, on_join, j, SC_JOIN, 6, a, l, 15);
}

bool
bc_redis_join(struct bc_redis *r, const char *room, uint64_t member, const char *name_json,
	      const char *info_json, int64_t since, uint32_t limit, bc_redis_welcome_fn fn,
	      void *ctx)
{
	if (!is_up(r) || strlen(room) > ROOM_MAX || r->pending >= r->cfg.max_pending)
		return false;
	struct eroom *e = eroom_get(r, room);
	struct join *j = e ? calloc(1, sizeof(*j)) : NULL;
	struct lmember *m = j ? calloc(1, sizeof(*m)) : NULL;
	char *n1 = m ? strdup(name_json) : NULL;
	char *n2 = n1 ? strdup(name_json) : NULL;
	char *i1 = info_json && n2 ? strdup(info_json) : NULL;
	char *i2 = i1 ? strdup(info_json) : NULL;
	if (!n2 || (info_json && !i2)) {
		free(j);
		free(m);
		free(n1);
		free(n2);
		free(i1);
		if (e)
			eroom_maybe_free(r, e);
		return false;
	}
	*m = (struct lmember){ .next = e->members, .id = member, .name_json = n1, .info_json = i1 };
	e->members = m;
	e->nmembers++;
	r->pending++;
	*j = (struct join){ .r = r,
			    .member = member,
			    .name_json = n2,
			    .info_json = i2,
			    .since = since,
			    .limit = limit,
			    .fn = fn,
			    .ctx = ctx };
	snprintf(j->room, sizeof(j->room), "%s", room);
	if (e->sub == SUB_ACTIVE) {
		run_join(r, j);
		return true;
	}
	*e->waiting_tail = j;
	e->waiting_tail = &j->next;
	sub_subscribe(r, e);
	return true;
}

void
bc_redis_leave(struct bc_redis *r, const char *room, uint64_t member)
{
	struct eroom *e = *room_slot(r, room);
	if (e) {
		/* a join still waiting for the subscription must not add it later */
		for (struct join **p = &e->waiting; *p; p = &(*p)->next) {
			if ((*p)->member == member) {
				struct join *j = *p;
				*p = j->next;
				if (!*p)
					e->waiting_tail = p;
				fail_join(j);
				break;
			}
		}
		for (struct lmember **p = &e->members; *p; p = &(*p)->next) {
			if ((*p)->id == member) {
				struct lmember *m = *p;
				*p = m->next;
				free(m->name_json);
				free(m->info_json);
				free(m);
				e->nmembers--;
				break;
			}
		}
	}
	if (r->cmd.connected) {
		send_leave(r, room, member);
	} else if (r->nowed < OWED_MAX) {
		struct owed *o = calloc(1, sizeof(*o));
		if (o) {
			snprintf(o->room, sizeof(o->room), "%s", room);
			o->member = member;
			o->next = r->owed;
			r->owed = o;
			r->nowed++;
		}
	}
	if (e)
		eroom_maybe_free(r, e);
}

/* ---- messages ---- */

/* Whether a command for the room goes out now: connected, a name keys hold, under --redis-max-pending. */
static bool
may_send(const struct bc_redis *r, const char *room)
{
	return r->cmd.connected && strlen(room) <= ROOM_MAX && r->pending < r->cfg.max_pending;
}

struct pub {
	bc_redis_publish_fn fn;
	void *ctx;
	struct bc_redis *r;
};

static void
on_publish(redisAsyncContext *ac, void *reply, void *priv)
{
	struct pub *p = priv;
	redisReply *rp = reply;
	/* the script answers the seq as a string (exact past 2^53 in Lua's doubles) */
	bool ok = rp && (rp->type == REDIS_REPLY_INTEGER || rp->type == REDIS_REPLY_STRING);
	if (rp && rp->type == REDIS_REPLY_ERROR)
		ws_log(WS_LOG_WARN, "redis-error op=publish error=\"%s\"", rp->str);
	if (ok)
		p->r->st.published++;
	else
		p->r->st.publish_failed++;
	p->r->pending--;
	p->fn(p->ctx, ok, ok ? reply_uint(rp) : 0);
	free(p);
}

bool
bc_redis_publish(struct bc_redis *r, const char *room, const char *from_json, size_t from_len,
		 const char *text_json, size_t text_len, const char *info_json, uint64_t ts,
		 bc_redis_publish_fn fn, void *ctx)
{
	if (!may_send(r, room)) {
		r->st.publish_failed++;
		return false;
	}
	struct pub *p = malloc(sizeof(*p));
	if (!p)
		return false;
	r->pending++;
	*p = (struct pub){ .fn = fn, .ctx = ctx, .r = r };
	char ks[KEY_MAX], kev[KEY_MAX], kh[KEY_MAX], ke[KEY_MAX], ch[KEY_MAX], rj[KEY_MAX], tss[24],
		cap[16], epoch[NODE_LEN + 1];
	key(ks, room, "seq");
	key(kev, room, "ev");
	key(kh, room, "h");
	key(ke, room, "epoch");
	chan(ch, room);
	room_json(rj, room);
	snprintf(tss, sizeof(tss), "%llu", (unsigned long long)ts);
	snprintf(cap, sizeof(cap), "%u", r->cfg.history_size);
	bc_ident_random(epoch);
	const char *a[] = { ks, kev,       kh,  ke,  ch,    from_json,
			    rj, text_json, tss, cap, epoch, info_json ? info_json : "" };
	size_t l[12] = { 0, 0, 0, 0, 0, from_len, 0, text_len, 0, 0, 0, 0 };
	/* an empty JSON string is never empty bytes: lens of 0 mean strlen */
	eval(r, on_publish, p, SC_MSG, 4, a, l, 12);
	return true;
}

struct hist {
	bc_redis_welcome_fn fn;
	void *ctx;
	struct bc_redis *r;
};

static void
on_history(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hist *h = priv;
	redisReply *rp = reply;
	struct bc_redis_welcome w = { 0 };
	h->r->pending--;
	if (!rp || rp->type != REDIS_REPLY_ARRAY || !answer(NULL, rp, &w, h->fn, h->ctx))
		h->fn(h->ctx, NULL);
	free(h);
}

static void
on_relayed(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bc_redis *r = priv;
	r->pending--;
}

bool
bc_redis_relay(struct bc_redis *r, const char *room, uint64_t member, const void *data, size_t len)
{
	if (!may_send(r, room))
		return false;
	char ch[KEY_MAX], head[48];
	chan(ch, room);
	int hn = snprintf(head, sizeof(head), "B%s:%llu ", r->node, (unsigned long long)member);
	/* one argument of head + data: hiredis copies it into its output buffer */
	char *msg = malloc((size_t)hn + len);
	if (!msg)
		return false;
	memcpy(msg, head, (size_t)hn);
	if (len)
		memcpy(msg + hn, data, len);
	const char *v[] = { "PUBLISH", ch, msg };
	size_t lens[] = { 7, strlen(ch), (size_t)hn + len };
	r->pending++;
	redisAsyncCommandArgv(r->cmd.ac, on_relayed, r, 3, v, lens);
	free(msg);
	return true;
}

bool
bc_redis_history(struct bc_redis *r, const char *room, uint64_t since, uint32_t limit,
		 bc_redis_welcome_fn fn, void *ctx)
{
	if (!may_send(r, room))
		return false;
	struct hist *h = malloc(sizeof(*h));
	if (!h)
		return false;
	r->pending++;
	*h = (struct hist){ .fn = fn, .ctx = ctx, .r = r };
	char kh[KEY_MAX], from[32], count[16];
	key(kh, room, "h");
	snprintf(from, sizeof(from), "(%llu-0", (unsigned long long)since);
	snprintf(count, sizeof(count), "%u", limit ? limit : 1);
	const char *v[] = { "XRANGE", kh, from, "+", "COUNT", count };
	command(r->cmd.ac, on_history, h, 6, v);
	return true;
}

static void
on_catchup(redisAsyncContext *ac, void *reply, void *priv)
{
	struct hist *h = priv;
	redisReply *rp = reply;
	h->r->pending--;
	struct bc_redis_welcome w = { 0 };
	if (!rp || rp->type != REDIS_REPLY_ARRAY || rp->elements != 3 ||
	    rp->element[1]->type != REDIS_REPLY_ARRAY) {
		h->fn(h->ctx, NULL);
		free(h);
		return;
	}
	w.ev = reply_uint(rp->element[0]);
	w.last_seq = reply_uint(rp->element[2]);
	if (!answer(NULL, rp->element[1], &w, h->fn, h->ctx))
		h->fn(h->ctx, NULL);
	free(h);
}

bool
bc_redis_catchup(struct bc_redis *r, const char *room, uint64_t since, uint32_t limit,
		 bc_redis_welcome_fn fn, void *ctx)
{
	if (!r->cmd.connected || strlen(room) > ROOM_MAX)
		return false;
	struct hist *h = malloc(sizeof(*h));
	if (!h)
		return false;
	r->pending++;
	*h = (struct hist){ .fn = fn, .ctx = ctx, .r = r };
	char kh[KEY_MAX], kev[KEY_MAX], ks[KEY_MAX], from[24], count[16];
	key(kh, room, "h");
	key(kev, room, "ev");
	key(ks, room, "seq");
	snprintf(from, sizeof(from), "%llu", (unsigned long long)since);
	snprintf(count, sizeof(count), "%u", limit ? limit : 1);
	const char *a[] = { kh, kev, ks, from, count };
	size_t l[5] = { 0 };
	eval(r, on_catchup, h, SC_CATCHUP, 3, a, l, 5);
	return true;
}

/* ---- presence: this node's heartbeat, and the members of dead ones ---- */

static void
on_reap(redisAsyncContext *ac, void *reply, void *priv)
{
	struct bc_redis *r = priv;
	redisReply *rp = reply;
	if (rp && rp->type == REDIS_REPLY_INTEGER && rp->integer > 0) {
		r->st.reaped += (uint64_t)rp->integer;
		ws_log(WS_LOG_INFO, "redis-reaped members=%lld", (long long)rp->integer);
	}
}

static void
tick_cb(void *arg)
{
	struct bc_redis *r = arg;
	if (r->cmd.connected) {
		refresh_node(r);
		for (size_t i = 0; i < ROOM_BUCKETS; i++) {
			for (struct eroom *e = r->rooms[i]; e; e = e->hnext) {
				if (e->sub != SUB_ACTIVE)
					continue;
				char kp[KEY_MAX], kev[KEY_MAX], kpi[KEY_MAX], ch[KEY_MAX],
					rj[KEY_MAX];
				key(kp, e->name, "p");
				key(kev, e->name, "ev");
				key(kpi, e->name, "pi");
				chan(ch, e->name);
				room_json(rj, e->name);
				const char *a[] = { kp, kev, kpi, ch, rj, "wsb:node:" };
				size_t l[6] = { 0 };
				eval(r, on_reap, r, SC_REAP, 3, a, l, 6);
			}
		}
	}
	uint32_t every = r->cfg.presence_ttl_ms / 3;
	ws_timer_arm(r->tick, every ? every : 1);
}

/* ---- life ---- */

struct bc_redis *
bc_redis_create(struct ws_server *srv, const struct bc_redis_config *cfg,
		const struct bc_redis_events *ev, void *app, char *err, size_t errlen)
{
	struct url u;
	if (!url_parse(cfg->url, &u, err, errlen))
		return NULL;
	struct bc_redis *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	*r = (struct bc_redis){ .srv = srv,
				.cfg = *cfg,
				.ev = *ev,
				.app = app,
				.port = u.port,
				.db = u.db,
				.backoff_ms = BACKOFF_MIN_MS };
	r->cmd.r = r->sub.r = r;
	r->sub.sub = true;
	/* resolved once, before the sandbox: reconnecting needs no resolver */
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int rc = getaddrinfo(u.host, NULL, &hints, &ai);
	if (rc != 0 || !ai) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u.host, gai_strerror(rc));
		goto fail;
	}
	const void *a = ai->ai_family == AF_INET6
				? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
				: (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	inet_ntop(ai->ai_family, a, r->host, sizeof(r->host));
	freeaddrinfo(ai);
	const char *user = cfg->user ? cfg->user : u.has_user ? u.user : NULL;
	const char *pass = cfg->password ? cfg->password : u.has_pass ? u.pass : NULL;
	r->cfg.user = r->cfg.password = NULL;
	bool oom = (user && !(r->user = strdup(user))) || (pass && !(r->pass = strdup(pass)));
	explicit_bzero(&u, sizeof(u));
	if (oom) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	bc_ident_random(r->node);
	snprintf(r->node_key, sizeof(r->node_key), "wsb:node:%s", r->node);
	for (int s = 0; s < SC_COUNT; s++)
		SHA1Data((const uint8_t *)scripts[s], strlen(scripts[s]), r->sha[s]);
	r->retry = ws_timer_create(srv, retry_cb, r);
	r->tick = ws_timer_create(srv, tick_cb, r);
	if (!r->retry || !r->tick) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	ws_log(WS_LOG_INFO, "redis host=%s port=%d db=%u node=%s presence_ttl_ms=%u", r->host,
	       r->port, r->db, r->node, cfg->presence_ttl_ms);
	start_link(r, &r->cmd);
	start_link(r, &r->sub);
	tick_cb(r);
	return r;
fail:
	bc_redis_destroy(r);
	return NULL;
}

/* Writes what the command link has queued, within FLUSH_MS (the loop is gone by now). */
static void
flush_cmd(struct bc_redis *r)
{
	redisAsyncContext *ac = r->cmd.ac;
	if (!ac || !r->cmd.connected)
		return;
	uint64_t until = ws_clock_wall_ms() + FLUSH_MS;
	int done = 0;
	while (!done && ws_clock_wall_ms() < until) {
		if (redisBufferWrite(&ac->c, &done) != REDIS_OK)
			return;
		if (!done)
			usleep(1000);
	}
}

void
bc_redis_destroy(struct bc_redis *r)
{
	if (!r)
		return;
	if (r->cmd.connected) {
		const char *v[] = { "DEL", r->node_key };
		command(r->cmd.ac, NULL, NULL, 2, v);
		flush_cmd(r);
	}
	r->closing = true;
	ws_timer_destroy(r->retry);
	ws_timer_destroy(r->tick);
	r->retry = r->tick = NULL;
	if (r->cmd.ac)
		redisAsyncFree(r->cmd.ac);
	if (r->sub.ac)
		redisAsyncFree(r->sub.ac);
	for (size_t i = 0; i < ROOM_BUCKETS; i++) {
		struct eroom *e = r->rooms[i];
		while (e) {
			struct eroom *next = e->hnext;
			while (e->members) {
				struct lmember *m = e->members;
				e->members = m->next;
				free(m->name_json);
				free(m->info_json);
				free(m);
			}
			while (e->waiting) {
				struct join *j = e->waiting;
				e->waiting = j->next;
				fail_join(j);
			}
			free(e);
			e = next;
		}
	}
	while (r->owed) {
		struct owed *o = r->owed;
		r->owed = o->next;
		free(o);
	}
	free(r->user);
	if (r->pass)
		explicit_bzero(r->pass, strlen(r->pass));
	free(r->pass);
	free(r);
}

bool
bc_redis_up(const struct bc_redis *r)
{
	return is_up(r);
}

void
bc_redis_stats(const struct bc_redis *r, struct bc_redis_stats *out)
{
	*out = r->st;
	out->up = is_up(r);
	out->pending = r->pending;
}
