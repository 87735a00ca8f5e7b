/*
 * engine_redis: ws-broadcast's rooms on Redis (or Valkey), so that any
 * number of servers on one Redis form one room space. hiredis on the
 * server's own loop (its descriptors are watched by lws's libuv loop
 * through ws_watch; no thread, no blocking call once running).
 *
 * Per room, in Redis (keys wsb:{ROOM}:...): `seq` (the message counter),
 * `ev` (the counter of everything published: messages, joins, leaves),
 * `h` (a stream of the last --history-size messages, id SEQ-0), `epoch`
 * (made with the history), `p` (presence: a hash of NODE:MEMBER -> the
 * member's name as a JSON string), and the channel wsb:{ROOM}. A node
 * announces it is alive with wsb:node:NODE (PX --presence-ttl), refreshed
 * every third of it; every node removes, and announces the leave of, the
 * members of nodes whose key is gone, in every room it has members in.
 *
 * Each change is one server-side script: a message is INCR seq + INCR ev +
 * XADD (MAXLEN cap) + PUBLISH, atomically, so every node sees one order
 * and one seq per room. A node subscribes once per room it has members in
 * and gets each published event as "EV JSON".
 */
#ifndef BC_ENGINE_REDIS_H
#define BC_ENGINE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws_server;
struct bc_redis;

struct bc_redis_config {
	const char *url;          /* redis://[user:pass@]host:port[/db] */
	const char *user;         /* or NULL: the URL's (giving both is the caller's error) */
	const char *password;     /* or NULL: the URL's (--redis-password-file) */
	uint32_t history_size;    /* messages kept per room (stream MAXLEN); 0 = none */
	uint32_t presence_ttl_ms; /* a node silent this long is dead */
	uint32_t welcome_members; /* member names a join reads, at most */
	uint32_t max_pending;     /* joins, messages and history reads awaiting Redis, at most */
};

/* What Redis tells the server, on the loop. */
struct bc_redis_events {
	/*
	 * An event published in a room this node is subscribed to, in the
	 * room's order: ev its position, seq the message's (0: a join or leave).
	 */
	void (*event)(void *app, const char *room, uint64_t ev, uint64_t seq, const char *json,
		      size_t len);
	/*
	 * Optional. The room's subscription was lost and is active again:
	 * events published meanwhile were not received (bc_redis_catchup()).
	 */
	void (*resync)(void *app, const char *room);
	/*
	 * Optional. A binary message relayed in the room; self: sent by this
	 * server's member `member` (who does not get it back).
	 */
	void (*relay)(void *app, const char *room, bool self, uint64_t member, const uint8_t *data,
		      size_t len);
	/* The engine can serve (both links up) or cannot any more. */
	void (*link)(void *app, bool up);
};

/* A join's answer; strings and arrays are valid during the callback only. */
struct bc_redis_welcome {
	uint64_t ev;        /* the joiner's own join event: deliver events from this one on */
	uint64_t last_seq;  /* the room's last message seq */
	uint64_t first_seq; /* the oldest message kept (0: none) */
	uint64_t count;     /* members of the room on every node */
	const char *epoch;
	size_t nmembers, nhist;
	const char **members;      /* JSON strings, as stored */
	const char **member_infos; /* each member's info object (JSON), NULL for none */
	const char **hist;         /* message objects (JSON), oldest first */
	const size_t *hist_len;
	const uint64_t *hist_seq; /* each message's seq (0 where unknown: a join's history) */
};

/* w is NULL when the engine failed (Redis down or an error reply). */
typedef void (*bc_redis_welcome_fn)(void *ctx, const struct bc_redis_welcome *w);
/* ok: the message was stored and published as seq. */
typedef void (*bc_redis_publish_fn)(void *ctx, bool ok, uint64_t seq);

/*
 * Checks url (the redis:// form; rediss:// is refused: hiredis 0.14 has no
 * TLS). False with one line in err.
 */
bool bc_redis_url_ok(const char *url, char *err, size_t errlen);
/* url with its password shown as *** (for messages), cut to outlen. */
void bc_redis_url_redact(const char *url, char *out, size_t outlen);
/*
 * Overwrites the password's bytes in url with '*' (in place: argv, so that
 * /proc/PID/cmdline stops showing it). True if it had one.
 */
bool bc_redis_url_scrub(char *url);
/* Whether url carries a user name / a password. */
bool bc_redis_url_has(const char *url, bool *user, bool *pass);

/*
 * Resolves the host, starts connecting (the first connection happens on
 * the loop) and the timers. Needs the loop (call it from ws_app.confine or
 * later). NULL with one line in err.
 */
struct bc_redis *bc_redis_create(struct ws_server *srv, const struct bc_redis_config *cfg,
				 const struct bc_redis_events *ev, void *app, char *err,
				 size_t errlen);
/*
 * Sends what it can of the queued commands (leaves) within a short bound,
 * removes this node's key, closes both links (pending callbacks get their
 * failure) and frees. NULL is a no-op.
 */
void bc_redis_destroy(struct bc_redis *r);

/* Both links connected: joins and messages can be served. */
bool bc_redis_up(const struct bc_redis *r);

/*
 * Adds member `member` of this node to the room (name_json: its name as a
 * JSON string; info_json: an object from its token, or NULL) once the room's subscription is active, publishes its join,
 * and answers fn with the welcome's facts: history after since (since < 0:
 * the last `limit`), at most `limit` messages. fn is called exactly once.
 * Returns false (fn not called) when the engine is down, max_pending
 * requests await Redis already, or out of memory.
 */
bool bc_redis_join(struct bc_redis *r, const char *room, uint64_t member, const char *name_json,
		   const char *info_json, int64_t since, uint32_t limit, bc_redis_welcome_fn fn,
		   void *ctx);
/*
 * The member left: removed from the room's presence and announced (later,
 * once Redis is back, when it is down). The room's subscription ends with
 * its last member on this node.
 */
void bc_redis_leave(struct bc_redis *r, const char *room, uint64_t member);
/*
 * Stores and publishes a message (from_json and text_json: JSON strings;
 * info_json: the sender's info object, or NULL).
 * fn is called exactly once. False (fn not called) when the engine is down
 * or max_pending requests await Redis already.
 */
bool bc_redis_publish(struct bc_redis *r, const char *room, const char *from_json, size_t from_len,
		      const char *text_json, size_t text_len, const char *info_json, uint64_t ts,
		      bc_redis_publish_fn fn, void *ctx);
/*
 * Publishes a binary message of this server's member to the room's
 * servers (not stored, no seq). False when the engine is down or
 * max_pending requests await Redis already.
 */
bool bc_redis_relay(struct bc_redis *r, const char *room, uint64_t member, const void *data,
		    size_t len);
/* The room's messages after since, at most limit (welcome: only hist is set). */
bool bc_redis_history(struct bc_redis *r, const char *room, uint64_t since, uint32_t limit,
		      bc_redis_welcome_fn fn, void *ctx);

/*
 * After resync: where the room is (w->ev, the last event published;
 * w->last_seq, its last message) and its messages after since (at most
 * limit, with hist_seq), read at once.
 */
bool bc_redis_catchup(struct bc_redis *r, const char *room, uint64_t since, uint32_t limit,
		      bc_redis_welcome_fn fn, void *ctx);

/* Counters for /metrics. */
struct bc_redis_stats {
	uint64_t connects, disconnects, published, publish_failed, reaped, rooms_subscribed;
	uint64_t noscript; /* calls Redis answered NOSCRIPT, sent again with the script */
	uint64_t pending;  /* requests awaiting Redis */
	bool up;
};
void bc_redis_stats(const struct bc_redis *r, struct bc_redis_stats *out);

#endif
