/*
 * ws-broadcast: chat rooms keyed by ?id=. Members get a welcome (members,
 * recent history), join/leave events with live counts, and every message
 * of the room with a per-room seq that survives restarts (SQLite).
 *
 * Ordering and durability: a text message gets its seq and its database
 * row at once, inside the turn's open transaction; everything addressed to
 * rooms waits in `pending` until the turn ends, the transaction commits,
 * and then leaves in order. So no client ever sees a message that a crash
 * could lose, and every member sees the same order.
 */
#define _GNU_SOURCE /* getrandom */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "engine_redis.h"
#include "ident.h"
#include "jwt.h"
#include "list.h"
#include "log.h"
#include "sandbox_self.h"
#include "server.h"
#include "store.h"
#include "timer.h"

_Static_assert(BC_EPOCH_LEN == BC_IDENT_HEX_LEN, "epochs are made by bc_ident_random");

#define NAME_MAX_LEN 64
/* A user name as shown: the asked-for name, and "#N" for a duplicate in the room. */
#define USER_MAX_LEN (NAME_MAX_LEN + 11)
#define ROOM_BUCKETS 4096
/* Rows the housekeeping timer deletes at once, so no pass holds the loop long. */
#define PRUNE_BATCH 1000
#define EXPIRE_BATCH 2
/* Housekeeping runs at most this far apart, and this soon again while work is left. */
#define SWEEP_MAX_MS 1000
#define SWEEP_BUSY_MS 20

struct options {
	const char *engine; /* sqlite:PATH or redis://...; NULL: sqlite:--db */
	const char *db;
	const char *redis; /* --engine redis://...: the URL */
	const char *redis_password_file;
	const char *redis_user;
	char *redis_url_owned; /* the URL copied out of argv, before its password was hidden */
	char *redis_password;  /* read from --redis-password-file */
	bool redis_pw_in_argv; /* the URL's password was on the command line */
	uint32_t presence_ttl_ms;
	uint32_t redis_max_pending;
	uint32_t history_size;
	uint32_t history_on_join;
	uint32_t welcome_members;
	uint32_t max_rooms;
	uint32_t max_room_members;
	uint64_t max_chat_message;
	uint64_t max_welcome;
	uint32_t room_expiry_ms;
	uint32_t max_stored_rooms;
	uint32_t max_memberships;
	uint64_t max_db_size;
	uint64_t max_fanout;
	const char *jwt_secret_file;
	uint32_t jwt_leeway_ms;
	bool jwt_allow_token;
};

struct member {
	struct ws_conn *c;
	struct room *room;
	struct ws_list link; /* in room->members */
	uint64_t membership;
	struct bc *bc;   /* Redis engine: for its callbacks */
	uint32_t refs;   /* Redis engine: callbacks still to come (they outlive the connection) */
	bool pending;    /* Redis engine: joined, its welcome not sent yet */
	bool gone;       /* Redis engine: the connection has closed */
	json_t *info;    /* the token's "info" object, or NULL */
	char *info_json; /* the same as compact JSON (at most WS_JWT_INFO_MAX bytes) */
	uint64_t turn;   /* the bc.turn of its join, whose event is pev in bc.pevs */
	uint32_t pev;
	char user[USER_MAX_LEN + 1];
};

struct room {
	struct room *hnext;
	struct ws_list members; /* member.link, newest first */
	uint64_t next_seq;
	uint64_t committed_seq; /* next_seq at the last commit: where a failed turn goes back */
	uint32_t count;
	uint32_t batch; /* 1 + the index in bc.pending of its open presence batch; 0: none */
	char name[NAME_MAX_LEN + 1];
	char epoch[BC_EPOCH_LEN + 1];
	struct ws_buf backlog; /* Redis engine: events for members awaiting their welcome */
	uint32_t pending;      /* Redis engine: members awaiting their welcome */
	uint64_t last_seq;     /* Redis engine: the last message seq received for the room */
	bool catchup;          /* Redis engine: resubscribed, reading what it missed */
};

enum pending_kind {
	PENDING_FRAME,  /* a frame made when queued */
	PENDING_JOINS,  /* joins of one turn, framed once when delivered */
	PENDING_LEAVES, /* leaves, likewise */
};

/* A frame addressed to a room, waiting for the turn's commit. */
struct pending {
	struct room *room;
	struct ws_conn *except; /* binary relays skip their sender */
	struct ws_conn *sender; /* a chat message's sender, told when it fails; NULL if gone */
	uint32_t off, len;      /* in bc.frames */
	uint8_t kind;           /* enum pending_kind */
	bool chat;              /* a stored message: delivered only once committed */
	bool failed;            /* its transaction was rolled back: not delivered */
	uint32_t first, last;   /* a batch's events in bc.pevs (linked by next) */
	uint32_t n, count;      /* a batch's events, and the room's count after the last */
	uint32_t bytes;         /* a batch's JSON, about: at most PRESENCE_BATCH_MAX */
};

#define PEV_NONE UINT32_MAX
/*
 * A presence batch's names and infos, at most (bytes): past it the next
 * event starts another batch, so one notice stays far below --send-queue
 * (10,000 joins with 512-byte infos would otherwise make a 5 MiB frame
 * for every member) and a joiner's own tail of a batch stays small.
 */
#define PRESENCE_BATCH_MAX (16u * 1024)

/* One join or leave in a presence batch: the name, then any info JSON, in bc.pnames. */
struct pev {
	uint32_t next;
	uint32_t off;
	uint32_t name_len, info_len;
};

struct bc {
	struct options opt;
	const struct ws_config *cfg;
	struct ws_server *srv;
	struct bc_store *store;
	struct ws_timer *sweep;
	uint32_t sweep_ms;
	struct room *rooms[ROOM_BUCKETS];
	uint32_t active_rooms;
	uint64_t welcome_max; /* bytes: --max-welcome, at most half of --send-queue */
	struct ws_buf frames;
	struct ws_buf scratch; /* a welcome or history page being written */
	struct pending *pending;
	size_t npending, cap_pending;
	size_t nframes; /* PENDING_FRAME entries among them */
	uint64_t turn;  /* deliveries so far, + 1 */
	struct pev *pevs;
	uint32_t npevs, cap_pevs;
	struct ws_buf pnames; /* the events' names and infos */
	struct ws_buf pjson;  /* one batch's JSON being written */
	uint64_t persisted;
	uint64_t failed[3]; /* chat messages refused by the store: busy, full, error */
	uint64_t welcomes_cut;
	uint64_t fanout_limited;
	struct bc_redis *redis; /* --engine redis://: rooms live in Redis */
	struct ws_buf rframe;   /* an event from Redis, framed once for every local member */
	uint64_t caught_up;     /* messages delivered by a resubscribed room's catch-up */
	uint64_t next_member;
	struct ws_jwt_key *jwt;   /* --jwt-secret-file: identities come from tokens */
	const char *shared_token; /* --token, taken aside when JWTs are on */
	/* the last admitted upgrade's token, for its open (which follows at once) */
	uint64_t admitted_id;
	bool admitted_shared;
	struct ws_jwt_claims admitted;
};

/* 1-64 of A-Za-z0-9._:- */
static bool
name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

static struct room **
room_slot(struct bc *bc, const char *name)
{
	struct room **r = &bc->rooms[bc_ident_hash(name) % ROOM_BUCKETS];
	while (*r && strcmp((*r)->name, name) != 0)
		r = &(*r)->hnext;
	return r;
}

/* ---- JSON text written straight into a buffer (sizes known before writing) ---- */

/* Bytes s[0..n) takes inside a JSON string, escaped as jansson escapes it. */
static size_t
escaped_len(const char *s, size_t n)
{
	size_t out = n;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];
		if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' ||
		    ch == '\r' || ch == '\t')
			out += 1;
		else if (ch < 0x20)
			out += 5;
	}
	return out;
}

/* Appends s[0..n) as a quoted JSON string. */
static bool
put_str(struct ws_buf *b, const char *s, size_t n)
{
	size_t need = escaped_len(s, n) + 2;
	if (!ws_buf_reserve(b, need))
		return false;
	char *o = (char *)ws_buf_end(b);
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)s[i];
		char e = 0;
		switch (ch) {
		case '"':
			e = '"';
			break;
		case '\\':
			e = '\\';
			break;
		case '\b':
			e = 'b';
			break;
		case '\f':
			e = 'f';
			break;
		case '\n':
			e = 'n';
			break;
		case '\r':
			e = 'r';
			break;
		case '\t':
			e = 't';
			break;
		default:
			break;
		}
		if (e) {
			*o++ = '\\';
			*o++ = e;
		} else if (ch < 0x20) {
			static const char hex[] = "0123456789abcdef";
			memcpy(o, "\\u00", 4);
			o[4] = hex[ch >> 4];
			o[5] = hex[ch & 15];
			o += 6;
		} else {
			*o++ = (char)ch;
		}
	}
	*o = '"';
	b->len += (uint32_t)need;
	return true;
}

static bool
put(struct ws_buf *b, const char *s)
{
	return ws_buf_append(b, s, strlen(s));
}

static bool
put_uint(struct ws_buf *b, uint64_t v)
{
	char n[24];
	int k = snprintf(n, sizeof(n), "%llu", (unsigned long long)v);
	return ws_buf_append(b, n, (size_t)k);
}

/*
 * The room's member names as JSON strings, comma-separated, newest first,
 * at most max of them (*cut says whether some were left out).
 */
static bool
put_members(struct ws_buf *b, const struct room *room, uint32_t max, bool *cut)
{
	bool ok = true;
	uint32_t n = 0;
	*cut = false;
	ws_list_for_each (l, &room->members) {
		if (n == max) {
			*cut = true;
			break;
		}
		const struct member *m = ws_list_entry(l, struct member, link);
		ok = ok && (n == 0 || put(b, ",")) && put_str(b, m->user, strlen(m->user));
		n++;
	}
	return ok;
}

/*
 * "members_info":[...], the token "info" of each member put_members listed
 * (in its order), null for none, and null past `budget` bytes of the page.
 */
static bool
put_members_info(struct ws_buf *b, const struct room *room, uint32_t max, uint64_t budget)
{
	bool ok = put(b, "\"members_info\":[");
	uint32_t n = 0;
	ws_list_for_each (l, &room->members) {
		if (n == max)
			break;
		const struct member *m = ws_list_entry(l, struct member, link);
		ok = ok && (n == 0 || put(b, ","));
		if (m->info_json && b->len + strlen(m->info_json) <= budget)
			ok = ok && put(b, m->info_json);
		else
			ok = ok && put(b, "null");
		n++;
	}
	return ok && put(b, "],");
}

/* ---- the turn: commit, then deliver ---- */

static const char *const store_error_text[] = {
	[BC_STORE_BUSY] = "Message not stored: database busy",
	[BC_STORE_FULL] = "Message not stored: storage full",
	[BC_STORE_ERROR] = "Message not stored: database error",
};

static void send_error(struct ws_conn *c, const char *msg);

/*
 * The store rolled back its open transaction: every chat message of the
 * turn not yet committed is lost, so none of them is delivered, their
 * senders are told, and their rooms' seqs go back to the committed ones.
 */
static void
fail_turn(struct bc *bc, enum bc_store_status why)
{
	for (size_t i = 0; i < bc->npending; i++) {
		struct pending *p = &bc->pending[i];
		if (!p->chat || p->failed)
			continue;
		p->failed = true;
		p->room->next_seq = p->room->committed_seq;
		bc->failed[why - 1]++;
		if (p->sender)
			send_error(p->sender, store_error_text[why]);
	}
}

/* A join/leave/room write: it may fail (it is bookkeeping), but it takes the turn with it. */
static void
stored(struct bc *bc, enum bc_store_status r)
{
	if (r != BC_STORE_OK)
		fail_turn(bc, r);
}

/* A new entry for the room at the end of bc->pending (zeroed), or NULL when out of memory. */
static struct pending *
pending_add(struct bc *bc, struct room *room)
{
	if (bc->npending == bc->cap_pending) {
		size_t cap = bc->cap_pending ? bc->cap_pending * 2 : 64;
		struct pending *p = realloc(bc->pending, cap * sizeof(*p));
		if (!p)
			return NULL;
		bc->pending = p;
		bc->cap_pending = cap;
	}
	struct pending *p = &bc->pending[bc->npending++];
	*p = (struct pending){ .room = room };
	ws_server_defer(bc->srv);
	return p;
}

/*
 * Writes a presence batch's JSON into bc->pjson, from its event `from` on.
 * One event keeps the shape every client knows,
 * {"type":"join"|"leave","id","room","count"} (+ "info"); several become
 * {"type":"presence","room","count","joined":[..]} (+ "joined_info") or
 * "left":[..], in the order they happened, with the count after the last.
 */
static bool
render_presence(struct bc *bc, const struct pending *p, uint32_t from)
{
	struct ws_buf *b = &bc->pjson;
	b->len = 0;
	b->head = 0;
	const char *names = (const char *)bc->pnames.data;
	const char *room = p->room->name;
	bool join = p->kind == PENDING_JOINS, ok;
	if (bc->pevs[from].next == PEV_NONE) {
		const struct pev *e = &bc->pevs[from];
		ok = put(b, join ? "{\"type\":\"join\",\"id\":" : "{\"type\":\"leave\",\"id\":") &&
		     put_str(b, names + e->off, e->name_len) && put(b, ",\"room\":") &&
		     put_str(b, room, strlen(room)) && put(b, ",\"count\":") &&
		     put_uint(b, p->count);
		if (join && e->info_len)
			ok = ok && put(b, ",\"info\":") &&
			     ws_buf_append(b, names + e->off + e->name_len, e->info_len);
	} else {
		ok = put(b, "{\"type\":\"presence\",\"room\":") && put_str(b, room, strlen(room)) &&
		     put(b, ",\"count\":") && put_uint(b, p->count) &&
		     put(b, join ? ",\"joined\":[" : ",\"left\":[");
		bool info = false;
		for (uint32_t i = from; ok && i != PEV_NONE; i = bc->pevs[i].next) {
			const struct pev *e = &bc->pevs[i];
			ok = (i == from || put(b, ",")) && put_str(b, names + e->off, e->name_len);
			info |= e->info_len > 0;
		}
		ok = ok && put(b, "]");
		if (join && info) {
			ok = ok && put(b, ",\"joined_info\":[");
			for (uint32_t i = from; ok && i != PEV_NONE; i = bc->pevs[i].next) {
				const struct pev *e = &bc->pevs[i];
				ok = (i == from || put(b, ",")) &&
				     (e->info_len ? ws_buf_append(b, names + e->off + e->name_len,
								  e->info_len)
						  : put(b, "null"));
			}
			ok = ok && put(b, "]");
		}
	}
	return ok && put(b, "}");
}

/*
 * Delivers a presence batch: framed once for the members that were there
 * before it; a member that joined during it gets it from its own join on
 * (as it would have one notice at a time), and one that joined after it
 * none of it: its welcome told it what came before.
 */
static void
deliver_presence(struct bc *bc, struct pending *p)
{
	uint32_t off = bc->frames.len;
	if (!render_presence(bc, p, p->first) ||
	    !ws_frame_append(&bc->frames, WS_OP_TEXT, bc->pjson.data, bc->pjson.len))
		return;
	p->off = off;
	p->len = bc->frames.len - off;
	ws_list_for_each (l, &p->room->members) {
		struct member *m = ws_list_entry(l, struct member, link);
		/* the same room's batches of a turn hold disjoint, rising event ranges */
		if (m->turn == bc->turn && m->pev > p->last)
			continue;
		if (m->turn == bc->turn && m->pev >= p->first) {
			if (render_presence(bc, p, m->pev))
				ws_conn_send(m->c, WS_OP_TEXT, bc->pjson.data, bc->pjson.len);
			continue;
		}
		ws_conn_send_frame(m->c, bc->frames.data + p->off, p->len);
	}
}

static void
deliver_pending(struct bc *bc)
{
	for (size_t i = 0; i < bc->npending; i++) {
		struct pending *p = &bc->pending[i];
		p->room->batch = 0;
		if (p->failed)
			continue;
		if (p->kind != PENDING_FRAME) {
			deliver_presence(bc, p);
			continue;
		}
		const uint8_t *frame = bc->frames.data + p->off;
		ws_list_for_each (l, &p->room->members) {
			struct member *m = ws_list_entry(l, struct member, link);
			if (m->c != p->except)
				ws_conn_send_frame(m->c, frame, p->len);
		}
	}
	bc->npending = 0;
	bc->nframes = 0;
	bc->npevs = 0;
	bc->turn++;
	bc->frames.len = 0;
	bc->frames.head = 0;
	bc->pnames.len = 0;
	bc->pnames.head = 0;
}

static void
end_turn(void *app)
{
	struct bc *bc = app;
	enum bc_store_status r = bc->store ? bc_store_commit(bc->store) : BC_STORE_OK;
	if (r != BC_STORE_OK) {
		fail_turn(bc, r);
	} else {
		for (size_t i = 0; i < bc->npending; i++) {
			if (bc->pending[i].chat)
				bc->pending[i].room->committed_seq = bc->pending[i].room->next_seq;
		}
	}
	deliver_pending(bc);
}

/* Frames data once and queues it for every member of the room at turn end. */
static bool
to_room(struct bc *bc, struct room *room, struct ws_conn *except, enum ws_opcode op,
	const void *data, size_t len)
{
	struct pending *p = pending_add(bc, room);
	if (!p)
		return false;
	uint32_t off = bc->frames.len;
	if (!ws_frame_append(&bc->frames, op, data, len)) {
		bc->npending--;
		return false;
	}
	p->except = except;
	p->off = off;
	p->len = bc->frames.len - off;
	bc->nframes++;
	/* joins and leaves after this frame go after it: a new batch */
	room->batch = 0;
	return true;
}

/*
 * A join or leave of m, for the room's members at turn end. Consecutive
 * ones of one kind in a room (nothing else queued for it in between) share
 * one batch, framed once when delivered: a storm of N joins costs each
 * member one frame per turn, not N. A notice that cannot be queued (out of
 * memory) is dropped; the next one's count is right again.
 */
static void
presence(struct bc *bc, struct room *room, enum pending_kind kind, struct member *m)
{
	size_t nl = strlen(m->user);
	size_t il = kind == PENDING_JOINS && m->info_json ? strlen(m->info_json) : 0;
	if (bc->npevs == bc->cap_pevs) {
		uint32_t cap = bc->cap_pevs ? bc->cap_pevs * 2 : 64;
		struct pev *e = realloc(bc->pevs, cap * sizeof(*e));
		if (!e)
			return;
		bc->pevs = e;
		bc->cap_pevs = cap;
	}
	uint32_t off = bc->pnames.len;
	if (!ws_buf_append(&bc->pnames, m->user, nl) ||
	    (il && !ws_buf_append(&bc->pnames, m->info_json, il))) {
		bc->pnames.len = off;
		return;
	}
	struct pending *p = room->batch ? &bc->pending[room->batch - 1] : NULL;
	/* the name, the info or null, quotes and commas */
	uint32_t bytes = (uint32_t)(nl + il + 8);
	if (!p || p->kind != kind || p->bytes + bytes > PRESENCE_BATCH_MAX) {
		p = pending_add(bc, room);
		if (!p) {
			bc->pnames.len = off;
			return;
		}
		p->kind = (uint8_t)kind;
		p->first = PEV_NONE;
		room->batch = (uint32_t)bc->npending;
	}
	uint32_t i = bc->npevs++;
	bc->pevs[i] = (struct pev){
		.next = PEV_NONE, .off = off, .name_len = (uint32_t)nl, .info_len = (uint32_t)il
	};
	if (p->first == PEV_NONE)
		p->first = i;
	else
		bc->pevs[p->last].next = i;
	p->last = i;
	p->n++;
	p->bytes += bytes;
	p->count = room->count;
	if (kind == PENDING_JOINS) {
		m->turn = bc->turn;
		m->pev = i;
	}
}

static void
send_error(struct ws_conn *c, const char *msg)
{
	char s[160];
	int n = snprintf(s, sizeof(s), "{\"type\":\"error\",\"error\":\"%s\"}", msg);
	if (n > 0 && (size_t)n < sizeof(s))
		ws_conn_send(c, WS_OP_TEXT, s, (size_t)n);
}

/* ---- admission and membership ---- */

struct join_args {
	char room[NAME_MAX_LEN + 1];
	char user[NAME_MAX_LEN + 1];
	uint64_t since;
	bool has_since, has_user;
	char epoch[BC_EPOCH_LEN + 1]; /* &epoch=: the client's, "" when not given */
};

/*
 * Reads ?id=, &user= (unless the name comes from a token: with_user false),
 * &since=, &epoch=; false with *why on a bad value.
 */
static bool
join_args(const struct ws_http_request *req, bool with_user, struct join_args *a, const char **why)
{
	char buf[NAME_MAX_LEN + 1];
	enum ws_http_arg r;
	*a = (struct join_args){ .room = "default" };
	if ((r = ws_http_query_arg(req, "id", buf, sizeof(buf)))) {
		if (r < 0 || !name_valid(buf)) {
			*why = "invalid room: use 1-64 of A-Za-z0-9._:-";
			return false;
		}
		strcpy(a->room, buf);
	}
	if (with_user && (r = ws_http_query_arg(req, "user", buf, sizeof(buf)))) {
		if (r < 0 || !name_valid(buf)) {
			*why = "invalid user: use 1-64 of A-Za-z0-9._:-";
			return false;
		}
		strcpy(a->user, buf);
		a->has_user = true;
	}
	if ((r = ws_http_query_arg(req, "since", buf, sizeof(buf)))) {
		if (r < 0 || !ws_config_parse_uint(buf, &a->since)) {
			*why = "invalid since: use a seq number";
			return false;
		}
		a->has_since = true;
	}
	if ((r = ws_http_query_arg(req, "epoch", buf, sizeof(buf)))) {
		if (r < 0 || strlen(buf) > BC_EPOCH_LEN || !name_valid(buf)) {
			*why = "invalid epoch: use the welcome's";
			return false;
		}
		strcpy(a->epoch, buf);
	}
	return true;
}

/*
 * With --jwt-secret-file: the request's token (where the shared token goes)
 * must verify, carry a sub that is a valid user name, and allow `room`
 * (NULL: every room, which GET /rooms needs). Returns 0 with *claims
 * filled, or with *shared set when --jwt-allow-token let the shared token
 * in instead; else 401 or 403 with *why.
 */
static int
jwt_check(struct bc *bc, const struct ws_http_request *req, const char *room,
	  struct ws_jwt_claims *claims, bool *shared, const char **why)
{
	char tok[WS_JWT_MAX_TOKEN + 1];
	enum ws_jwt_status s = ws_jwt_from_request(req, tok, sizeof(tok));
	if (s == WS_JWT_OK)
		s = ws_jwt_verify(bc->jwt, tok, strlen(tok), (int64_t)(ws_clock_wall_ms() / 1000),
				  bc->opt.jwt_leeway_ms / 1000, claims);
	*shared = false;
	if (s != WS_JWT_OK) {
		if (bc->opt.jwt_allow_token && bc->shared_token &&
		    ws_auth_token_ok(bc->shared_token, req)) {
			*shared = true;
			return 0;
		}
		*why = ws_jwt_status_text(s);
		return 401;
	}
	if (!name_valid(claims->sub)) {
		*why = "token sub is not a user name: use 1-64 of A-Za-z0-9._:-";
		return 401;
	}
	/* only "*" (or no "rooms" claim) allows the empty name: that is every room */
	if (!ws_jwt_room_allowed(claims, room ? room : "")) {
		*why = "room not allowed by token";
		return 403;
	}
	return 0;
}

static void redis_open(struct bc *bc, struct ws_conn *c, const struct join_args *a,
		       const char *info);
static void redis_close(struct bc *bc, struct ws_conn *c, struct member *m);
static void redis_chat(struct bc *bc, struct member *m, const char *text, size_t len);
static void redis_history(struct bc *bc, struct member *m, uint64_t since);
static void redis_relay_out(struct bc *bc, struct member *m, const uint8_t *data, size_t len);
static void redis_metrics(struct bc *bc, struct ws_buf *out);
static int redis_confine(struct bc *bc, const struct ws_config *cfg);

static void
bc_start(void *app, struct ws_server *srv)
{
	struct bc *bc = app;
	bc->srv = srv;
}

static int
bc_admit(void *app, struct ws_conn *c, const struct ws_http_request *req, const char **why)
{
	struct bc *bc = app;
	struct join_args a;
	if (!join_args(req, !bc->jwt, &a, why))
		return 400;
	if (bc->jwt) {
		bc->admitted_id = 0;
		int status = jwt_check(bc, req, a.room, &bc->admitted, &bc->admitted_shared, why);
		if (status)
			return status;
		bc->admitted_id = ws_conn_id(c);
	}
	if (bc->opt.redis && !(bc->redis && bc_redis_up(bc->redis))) {
		*why = "Service unavailable";
		return 503;
	}
	struct room *r = *room_slot(bc, a.room);
	if (!r && bc->active_rooms >= bc->opt.max_rooms) {
		*why = "too many rooms";
		return 503;
	}
	if (r && r->count >= bc->opt.max_room_members) {
		*why = "room is full";
		return 503;
	}
	if (!r && bc->store && bc_store_room_count(bc->store) >= bc->opt.max_stored_rooms) {
		uint64_t next;
		switch (bc_store_room_lookup(bc->store, a.room, &next, NULL)) {
		case BC_STORE_FOUND:
			break;
		case BC_STORE_ABSENT:
			*why = "too many rooms stored";
			return 503;
		case BC_STORE_LOOKUP_ERROR:
			*why = "database error";
			return 503;
		}
	}
	return 0;
}

/*
 * The name a joiner is shown as: the asked-for one, or "NAME#N" (N above
 * every NAME#k present) when a member of the room already has it. '#' is
 * outside the request alphabet, so no client can pick a suffixed name.
 */
static void
unique_user(const struct room *room, const char *base, char *out, size_t cap)
{
	size_t bl = strlen(base);
	bool taken = false;
	unsigned long top = 1;
	ws_list_for_each (l, &room->members) {
		const struct member *m = ws_list_entry(l, struct member, link);
		if (strncmp(m->user, base, bl) != 0)
			continue;
		if (m->user[bl] == '\0') {
			taken = true;
		} else if (m->user[bl] == '#') {
			unsigned long n = strtoul(m->user + bl + 1, NULL, 10);
			if (n > top)
				top = n;
		}
	}
	if (taken)
		snprintf(out, cap, "%s#%lu", base, top + 1);
	else
		snprintf(out, cap, "%s", base);
}

/* A welcome or history page being written into bc->scratch, within bc->welcome_max. */
struct page {
	struct ws_buf *b;
	uint64_t max;
	uint32_t n;
	bool more; /* a stored message did not fit */
	bool oom;
};

/* Bytes of `],"more":true}` and the like that close a page. */
#define PAGE_TAIL 32

static bool
add_history(void *ctx, const struct bc_message *m)
{
	struct page *pg = ctx;
	size_t from = strlen(m->from);
	/* {"type":"message","from":"","text":"","seq":N,"ts":N}, plus a comma */
	size_t need = 64 + escaped_len(m->from, from) + escaped_len(m->text, m->text_len) + 40;
	/* the first always goes in, so paging moves forward whatever the bound */
	if (pg->n && pg->b->len + need + PAGE_TAIL > pg->max) {
		pg->more = true;
		return false;
	}
	struct ws_buf *b = pg->b;
	bool ok = (!pg->n || put(b, ",")) && put(b, "{\"type\":\"message\",\"from\":") &&
		  put_str(b, m->from, from) && put(b, ",\"text\":") &&
		  put_str(b, m->text, m->text_len) && put(b, ",\"seq\":") && put_uint(b, m->seq) &&
		  put(b, ",\"ts\":") && put_uint(b, m->ts) && put(b, "}");
	if (!ok) {
		pg->oom = true;
		return false;
	}
	pg->n++;
	return true;
}

/*
 * Writes "history":[...] with the room's messages after `since` (at most
 * limit), cut at the byte bound, then "more": always on a history page, only
 * when true on a welcome (whose shape predates it).
 */
static bool
put_history(struct bc *bc, struct page *pg, const struct room *room, uint64_t since, uint32_t limit,
	    bool page)
{
	if (!put(pg->b, "\"history\":["))
		return false;
	if (limit)
		bc_store_history(bc->store, room->name, since, limit, add_history, pg);
	if (pg->oom || !put(pg->b, "]"))
		return false;
	if (pg->more) {
		bc->welcomes_cut++;
		return put(pg->b, ",\"more\":true}");
	}
	return put(pg->b, page ? ",\"more\":false}" : "}");
}

static void
send_page(struct bc *bc, struct ws_conn *c, bool ok)
{
	if (ok)
		ws_conn_send(c, WS_OP_TEXT, ws_buf_begin(&bc->scratch), bc->scratch.len);
	else
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
	bc->scratch.len = 0;
	bc->scratch.head = 0;
}

/*
 * Whether a ?since= join gets everything after since: the client's epoch
 * (when it names one) is the room's, since is not past the room's last
 * seq, and the history still holds since + 1 (or there is nothing newer).
 */
static bool
recovered(struct bc *bc, const struct room *room, const struct join_args *a)
{
	uint64_t last = room->next_seq - 1;
	if (a->epoch[0] && strcmp(a->epoch, room->epoch) != 0)
		return false;
	if (a->since >= last)
		return a->since == last;
	uint64_t kept = bc->opt.history_size;
	return last - a->since <= kept;
}

static void
send_welcome(struct bc *bc, struct member *m, const struct join_args *a)
{
	struct room *room = m->room;
	struct ws_buf *b = &bc->scratch;
	struct page pg = { .b = b, .max = bc->welcome_max };
	bool ok = put(b, "{\"type\":\"welcome\",\"id\":") && put_str(b, m->user, strlen(m->user)) &&
		  put(b, ",\"room\":") && put_str(b, room->name, strlen(room->name)) &&
		  put(b, ",\"count\":") && put_uint(b, room->count) && put(b, ",\"members\":[");
	/* a join must not cost the whole room: the list is capped (--welcome-members) */
	bool cut;
	ok = ok && put_members(b, room, bc->opt.welcome_members, &cut);
	ok = ok && put(b, cut ? "],\"members_more\":true," : "],");
	if (bc->jwt)
		ok = ok && put_members_info(b, room, bc->opt.welcome_members, bc->welcome_max / 2);
	/* without since: the last --history-on-join messages, read the same way */
	uint64_t last = room->next_seq - 1, since = a->since;
	uint32_t limit = bc->opt.history_size;
	if (!a->has_since) {
		limit = bc->opt.history_on_join;
		since = last > limit ? last - limit : 0;
	}
	ok = ok && put(b, "\"epoch\":") && put_str(b, room->epoch, strlen(room->epoch)) &&
	     put(b, ",\"last_seq\":") && put_uint(b, last) && put(b, ",");
	if (a->has_since)
		ok = ok && put(b, recovered(bc, room, a) ? "\"recovered\":true,"
							 : "\"recovered\":false,");
	send_page(bc, m->c, ok && put_history(bc, &pg, room, since, limit, false));
}

static void
bc_open(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct bc *bc = app;
	struct join_args a;
	const char *why;
	if (!join_args(req, !bc->jwt, &a, &why)) /* admitted already: cannot fail */
		return;
	struct ws_jwt_claims claims;
	bool from_token = false;
	if (bc->jwt) {
		bool shared = bc->admitted_shared;
		/* admit checked it just before (the 101 is all that comes between) */
		if (bc->admitted_id == ws_conn_id(c))
			claims = bc->admitted;
		else if (jwt_check(bc, req, a.room, &claims, &shared, &why)) {
			ws_conn_close(c, WS_CLOSE_POLICY, why);
			return;
		}
		bc->admitted_id = 0;
		if (!shared) {
			strcpy(a.user, claims.sub); /* name_valid: at most NAME_MAX_LEN */
			a.has_user = from_token = true;
		}
	}
	if (!a.has_user) {
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint32_t)ws_conn_id(c) * 2654435761u;
		snprintf(a.user, sizeof(a.user), "u-%08x", rnd);
	}
	if (bc->opt.redis) {
		redis_open(bc, c, &a, from_token && claims.info_len ? claims.info : NULL);
		return;
	}
	/*
	 * a message pending must be committed and out before this member
	 * counts (its welcome's history must not hold what a failed commit
	 * takes back, nor may it get the message twice); joins and leaves
	 * wait for the turn's end, batched
	 */
	if (bc->nframes)
		end_turn(bc);

	uint64_t t = ws_clock_wall_ms();
	struct room **slot = room_slot(bc, a.room);
	struct room *room = *slot;
	if (!room) {
		uint64_t next = 1;
		char epoch[BC_EPOCH_LEN + 1] = "";
		enum bc_store_lookup found = bc_store_room_lookup(bc->store, a.room, &next, epoch);
		room = found == BC_STORE_LOOKUP_ERROR ? NULL : calloc(1, sizeof(*room));
		if (!room) {
			ws_conn_close(c, WS_CLOSE_INTERNAL, "database error");
			return;
		}
		if (found == BC_STORE_ABSENT || !epoch[0])
			bc_ident_random(epoch);
		memcpy(room->epoch, epoch, sizeof(room->epoch));
		if (found == BC_STORE_ABSENT)
			stored(bc, bc_store_room_add(bc->store, a.room, epoch, t));
		strcpy(room->name, a.room);
		ws_list_init(&room->members);
		room->next_seq = room->committed_seq = next;
		*slot = room;
		bc->active_rooms++;
	}
	struct member *m = calloc(1, sizeof(*m));
	if (!m) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	*m = (struct member){ .c = c,
			      .room = room,
			      .membership = bc_store_next_membership(bc->store) };
	if (from_token) {
		/* the token's subject as it is: one user's several connections share it */
		strcpy(m->user, a.user);
		if (claims.info_len) {
			m->info = json_loadb(claims.info, claims.info_len, 0, NULL);
			m->info_json = strdup(claims.info);
			if (!m->info || !m->info_json) {
				json_decref(m->info);
				free(m->info_json);
				free(m);
				ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
				return;
			}
		}
	} else {
		unique_user(room, a.user, m->user, sizeof(m->user));
	}
	ws_list_insert(&room->members, &m->link);
	room->count++;
	ws_conn_set_user(c, m);
	stored(bc, bc_store_join(bc->store, m->membership, room->name, m->user, ws_conn_id(c),
				 ws_conn_addr(c), t));
	send_welcome(bc, m, &a);
	presence(bc, room, PENDING_JOINS, m);
}

static void
bc_close(void *app, struct ws_conn *c, uint16_t code)
{
	struct bc *bc = app;
	struct member *m = ws_conn_user(c);
	if (!m)
		return;
	/* the connection is freed after this: nothing pending may point at it */
	for (size_t i = 0; i < bc->npending; i++) {
		if (bc->pending[i].sender == c)
			bc->pending[i].sender = NULL;
		if (bc->pending[i].except == c)
			bc->pending[i].except = NULL;
	}
	if (bc->opt.redis) {
		redis_close(bc, c, m);
		return;
	}
	struct room *room = m->room;
	ws_list_remove(&m->link);
	room->count--;
	char reason[32];
	uint64_t t = ws_clock_wall_ms();
	snprintf(reason, sizeof(reason), "close %u", code);
	stored(bc, bc_store_leave(bc->store, m->membership, t, reason));
	presence(bc, room, PENDING_LEAVES, m);
	json_decref(m->info);
	free(m->info_json);
	free(m);
	ws_conn_set_user(c, NULL);
	if (room->count == 0) {
		/* the room's idle time (for --room-expiry) starts now */
		stored(bc, bc_store_room_touch(bc->store, room->name, t));
		/* nobody to deliver to: commit now, so the room can go */
		end_turn(bc);
		*room_slot(bc, room->name) = room->hnext;
		bc->active_rooms--;
		free(room);
	}
}

/* ---- messages ---- */

/*
 * Whether one message that makes the server queue a `bytes` frame for `to`
 * members stays within --max-fanout: the copying one event may cost the
 * loop, however large the room. (--rate-limit bounds how often.) Answers
 * the sender when it does not.
 */
static bool
fanout_ok(struct bc *bc, struct member *m, size_t bytes, uint32_t to)
{
	if (!bc->opt.max_fanout || (uint64_t)bytes * to <= bc->opt.max_fanout)
		return true;
	bc->fanout_limited++;
	send_error(m->c, "Message too large for this room");
	return false;
}

static void
chat(struct bc *bc, struct member *m, const char *text, size_t len)
{
	/* what members receive is the escaped text: that is what the bound is for */
	size_t esc = escaped_len(text, len);
	if (esc > bc->opt.max_chat_message) {
		send_error(m->c, "Message too large");
		return;
	}
	struct room *room = m->room;
	/* the frame: the text, the names, seq and ts, and the JSON around them */
	size_t info = m->info_json ? strlen(m->info_json) + 8 : 0;
	if (!fanout_ok(bc, m, esc + strlen(m->user) + strlen(room->name) + info + 128, room->count))
		return;
	if (bc->opt.redis) {
		redis_chat(bc, m, text, len);
		return;
	}
	struct bc_message msg = {
		.seq = room->next_seq,
		.epoch = room->epoch,
		.from = m->user,
		.text = text,
		.text_len = len,
		.ts = ws_clock_wall_ms(),
	};
	enum bc_store_status r = bc_store_message(bc->store, room->name, &msg);
	if (r != BC_STORE_OK) {
		/* the transaction is gone: the turn's earlier messages with it */
		fail_turn(bc, r);
		bc->failed[r - 1]++;
		send_error(m->c, store_error_text[r]);
		return;
	}
	room->next_seq++;
	bc->persisted++;
	json_t *obj = json_pack("{s:s, s:s, s:s, s:s%, s:I, s:I, s:O*}", "type", "message", "from",
				m->user, "room", room->name, "text", text, len, "seq",
				(json_int_t)msg.seq, "ts", (json_int_t)msg.ts, "info", m->info);
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s && to_room(bc, room, NULL, WS_OP_TEXT, s, strlen(s))) {
		struct pending *p = &bc->pending[bc->npending - 1];
		p->chat = true;
		p->sender = m->c;
	}
	free(s);
}

/* {"type":"history","since":S}: the next page, the welcome's rules, no members. */
static void
history_page(struct bc *bc, struct member *m, json_int_t since)
{
	if (bc->opt.redis) {
		redis_history(bc, m, (uint64_t)since);
		return;
	}
	/* the page must hold everything committed and delivered so far */
	end_turn(bc);
	struct ws_buf *b = &bc->scratch;
	struct page pg = { .b = b, .max = bc->welcome_max };
	bool ok = put(b, "{\"type\":\"history\",\"room\":") &&
		  put_str(b, m->room->name, strlen(m->room->name)) && put(b, ",");
	send_page(bc, m->c,
		  ok && put_history(bc, &pg, m->room, (uint64_t)since, bc->opt.history_size, true));
}

static void
bc_message(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct bc *bc = app;
	struct member *m = ws_conn_user(c);
	if (!m)
		return;
	if (op == WS_OP_BINARY) {
		if (!fanout_ok(bc, m, len + WS_FRAME_HEADER_MAX, m->room->count - 1))
			return;
		if (bc->opt.redis)
			redis_relay_out(bc, m, data, len);
		else
			to_room(bc, m->room, c, WS_OP_BINARY, data, len);
		return;
	}
	size_t i = 0;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i == len || data[i] != '{') {
		/* plain text never escapes shorter than it is: refuse before scanning */
		if (len > bc->opt.max_chat_message)
			send_error(c, "Message too large");
		else
			chat(bc, m, (const char *)data, len);
		return;
	}
	/* JSON: the client's escaping is not ours (\u00e9): --max-message bounds the parse */
	json_t *obj = json_loadb((const char *)data, len, JSON_ALLOW_NUL, NULL);
	const char *type = json_string_value(json_object_get(obj, "type"));
	json_t *text = json_object_get(obj, "text");
	json_t *since = json_object_get(obj, "since");
	if (json_is_object(obj) && type && strcmp(type, "message") == 0 && json_is_string(text))
		chat(bc, m, json_string_value(text), json_string_length(text));
	else if (json_is_object(obj) && type && strcmp(type, "history") == 0 &&
		 json_is_integer(since) && json_integer_value(since) >= 0)
		history_page(bc, m, json_integer_value(since));
	else
		send_error(c, "Invalid message format");
	json_decref(obj);
}

static void
bc_rate_limited(void *app, struct ws_conn *c, enum ws_opcode op, const uint8_t *data, size_t len)
{
	send_error(c, "Rate limit exceeded");
}

/* ---- the Redis engine: rooms on Redis, events in each room's order ---- */

/* Events kept per room for members awaiting their welcome, at most (bytes). */
#define BACKLOG_MAX (4u << 20)
/* Past this a since is no seq Redis' scripts can hold exactly (2^53). */
#define SINCE_MAX (1ull << 53)

/* A join waiting for Redis' answer. */
struct rjoin {
	struct member *m;
	struct join_args a;
};

static void
member_free(struct member *m)
{
	json_decref(m->info);
	free(m->info_json);
	free(m);
}

/* One engine callback less; the member goes once its connection has too. */
static void
member_release(struct member *m)
{
	if (--m->refs == 0 && m->gone)
		member_free(m);
}

static void
backlog_clear(struct room *room)
{
	room->backlog.len = 0;
	room->backlog.head = 0;
}

static void
close_members(struct room *room, const char *why)
{
	ws_list_for_each (l, &room->members) {
		struct member *m = ws_list_entry(l, struct member, link);
		if (!m->pending)
			ws_conn_close(m->c, WS_CLOSE_INTERNAL, why);
	}
}

static void
close_pending(struct room *room, const char *why)
{
	ws_list_for_each (l, &room->members) {
		struct member *m = ws_list_entry(l, struct member, link);
		if (m->pending)
			ws_conn_close(m->c, WS_CLOSE_INTERNAL, why);
	}
}

/* To every member with a welcome (those awaiting theirs get the backlog). */
static void
send_to_live(struct room *room, const uint8_t *frame, size_t len)
{
	ws_list_for_each (l, &room->members) {
		struct member *m = ws_list_entry(l, struct member, link);
		if (!m->pending)
			ws_conn_send_frame(m->c, frame, len);
	}
}

/* A backlog entry: the event's number (8 bytes), the frame's length (4), the frame. */
#define BACKLOG_HDR 12

/* Sends the backlog's frames of events numbered from on: to m, or (NULL) to every live member. */
static void
backlog_send(struct room *room, uint64_t from, struct member *m)
{
	const uint8_t *p = ws_buf_begin(&room->backlog);
	for (size_t off = 0; off + BACKLOG_HDR <= room->backlog.len;) {
		uint64_t ev;
		uint32_t flen;
		memcpy(&ev, p + off, 8);
		memcpy(&flen, p + off + 8, 4);
		if (ev >= from && m)
			ws_conn_send_frame(m->c, p + off + BACKLOG_HDR, flen);
		else if (ev >= from)
			send_to_live(room, p + off + BACKLOG_HDR, flen);
		off += BACKLOG_HDR + flen;
	}
}

/*
 * An event Redis published in a room (a message, a join, a leave): framed
 * once, sent to every local member with a welcome, and kept (with its
 * position) for those still waiting for theirs.
 */
static void
redis_event(void *app, const char *name, uint64_t ev, uint64_t seq, const char *json, size_t len)
{
	struct bc *bc = app;
	struct room *room = *room_slot(bc, name);
	if (!room)
		return;
	if (seq > room->last_seq)
		room->last_seq = seq;
	struct ws_buf *f = &bc->rframe;
	f->len = 0;
	f->head = 0;
	if (!ws_frame_append(f, WS_OP_TEXT, json, len))
		return;
	const uint8_t *frame = ws_buf_begin(f);
	uint32_t flen = f->len;
	if (!room->catchup)
		send_to_live(room, frame, flen);
	if (!room->pending && !room->catchup)
		return;
	uint8_t hdr[BACKLOG_HDR];
	memcpy(hdr, &ev, 8);
	memcpy(hdr + 8, &flen, 4);
	if (room->backlog.len + sizeof(hdr) + flen > BACKLOG_MAX ||
	    !ws_buf_append(&room->backlog, hdr, sizeof(hdr)) ||
	    !ws_buf_append(&room->backlog, frame, flen)) {
		/* the joiners cannot be told everything in order: they reconnect */
		backlog_clear(room);
		close_pending(room, "Service unavailable");
		if (room->catchup)
			close_members(room, "missed messages: reconnect with since");
	}
}

/* A binary message relayed through Redis: to every member with a welcome but its sender. */
static void
redis_relay(void *app, const char *name, bool self, uint64_t member, const uint8_t *data,
	    size_t len)
{
	struct bc *bc = app;
	struct room *room = *room_slot(bc, name);
	if (!room)
		return;
	struct ws_buf *f = &bc->rframe;
	f->len = 0;
	f->head = 0;
	if (!ws_frame_append(f, WS_OP_BINARY, data, len))
		return;
	ws_list_for_each (l, &room->members) {
		struct member *m = ws_list_entry(l, struct member, link);
		if (!m->pending && !(self && m->membership == member))
			ws_conn_send_frame(m->c, ws_buf_begin(f), f->len);
	}
}

static void
redis_relay_out(struct bc *bc, struct member *m, const uint8_t *data, size_t len)
{
	if (!bc->redis || !bc_redis_relay(bc->redis, m->room->name, m->membership, data, len))
		send_error(m->c, "Service unavailable");
}

/*
 * The room's subscription came back after a loss: events published
 * meanwhile never arrived. Live events wait in the backlog while the
 * messages after the last one received are read; then both go out, in
 * order. A gap the history cannot fill closes the members (1011): they
 * reconnect with since and epoch, and are told recovered:false.
 */
struct resync {
	struct bc *bc;
	char room[NAME_MAX_LEN + 1];
};

static void redis_caught_up(void *ctx, const struct bc_redis_welcome *w);

static void
redis_resync(void *app, const char *name)
{
	struct bc *bc = app;
	struct room *room = *room_slot(bc, name);
	if (!room || room->catchup || !bc->redis)
		return;
	struct resync *ctx = malloc(sizeof(*ctx));
	if (ctx) {
		ctx->bc = bc;
		snprintf(ctx->room, sizeof(ctx->room), "%s", name);
	}
	if (!ctx || !bc_redis_catchup(bc->redis, name, room->last_seq, bc->opt.history_size,
				      redis_caught_up, ctx)) {
		free(ctx);
		close_members(room, "missed messages: reconnect with since");
		return;
	}
	room->catchup = true;
}

static void
redis_caught_up(void *ctx, const struct bc_redis_welcome *w)
{
	struct resync *rs = ctx;
	struct bc *bc = rs->bc;
	struct room *room = *room_slot(bc, rs->room);
	free(rs);
	if (!room || !room->catchup)
		return;
	room->catchup = false;
	/* missed messages the history no longer holds (or never held: --history-size 0) */
	bool gap = w && w->last_seq > room->last_seq &&
		   (!w->nhist || w->hist_seq[0] > room->last_seq + 1);
	if (!w || gap) {
		backlog_clear(room);
		close_pending(room, "missed messages: reconnect with since");
		close_members(room, "missed messages: reconnect with since");
		return;
	}
	/* the messages it missed, then what arrived meanwhile, from after the read on */
	struct ws_buf *f = &bc->rframe;
	for (size_t i = 0; i < w->nhist; i++) {
		if (w->hist_seq[i] <= room->last_seq)
			continue;
		f->len = 0;
		f->head = 0;
		if (ws_frame_append(f, WS_OP_TEXT, w->hist[i], w->hist_len[i]))
			send_to_live(room, ws_buf_begin(f), f->len);
		room->last_seq = w->hist_seq[i];
		bc->caught_up++;
	}
	backlog_send(room, w->ev + 1, NULL);
	if (!room->pending)
		backlog_clear(room);
}

/* "history":[...] of stored message objects, cut at the byte bound like put_history. */
static bool
put_raw_history(struct bc *bc, struct ws_buf *b, const struct bc_redis_welcome *w, bool page)
{
	bool ok = put(b, "\"history\":[");
	bool more = false;
	for (size_t i = 0; ok && i < w->nhist; i++) {
		if (i && b->len + w->hist_len[i] + 1 + PAGE_TAIL > bc->welcome_max) {
			more = true;
			break;
		}
		ok = (!i || put(b, ",")) && ws_buf_append(b, w->hist[i], w->hist_len[i]);
	}
	ok = ok && put(b, "]");
	if (more) {
		bc->welcomes_cut++;
		return ok && put(b, ",\"more\":true}");
	}
	return ok && put(b, page ? ",\"more\":false}" : "}");
}

static void
redis_welcome(void *ctx, const struct bc_redis_welcome *w)
{
	struct rjoin *rj = ctx;
	struct member *m = rj->m;
	struct bc *bc = m->bc;
	const struct join_args *a = &rj->a;
	if (m->gone || !w) {
		if (!m->gone)
			ws_conn_close(m->c, WS_CLOSE_INTERNAL, "Service unavailable");
		free(rj);
		member_release(m);
		return;
	}
	struct room *room = m->room;
	struct ws_buf *b = &bc->scratch;
	bool ok = put(b, "{\"type\":\"welcome\",\"id\":") && put_str(b, m->user, strlen(m->user)) &&
		  put(b, ",\"room\":") && put_str(b, room->name, strlen(room->name)) &&
		  put(b, ",\"count\":") && put_uint(b, w->count) && put(b, ",\"members\":[");
	for (size_t i = 0; ok && i < w->nmembers; i++)
		ok = (!i || put(b, ",")) && put(b, w->members[i]);
	ok = ok && put(b, w->count > w->nmembers ? "],\"members_more\":true," : "],");
	if (bc->jwt) {
		/* each listed member's token info, or null (past half the welcome: null) */
		ok = ok && put(b, "\"members_info\":[");
		for (size_t i = 0; ok && i < w->nmembers; i++) {
			const char *in = w->member_infos[i];
			ok = (!i || put(b, ",")) &&
			     put(b, in && b->len + strlen(in) <= bc->welcome_max / 2 ? in : "null");
		}
		ok = ok && put(b, "],");
	}
	ok = ok && put(b, "\"epoch\":") && put_str(b, w->epoch, strlen(w->epoch)) &&
	     put(b, ",\"last_seq\":") && put_uint(b, w->last_seq) && put(b, ",");
	if (a->has_since) {
		/* everything after since is still held: since + 1 is in the stream (or nothing is newer) */
		bool rec = (!a->epoch[0] || strcmp(a->epoch, w->epoch) == 0) &&
			   a->since <= w->last_seq &&
			   (a->since == w->last_seq ||
			    (w->first_seq && w->first_seq <= a->since + 1));
		ok = ok && put(b, rec ? "\"recovered\":true," : "\"recovered\":false,");
	}
	send_page(bc, m->c, ok && put_raw_history(bc, b, w, false));
	m->pending = false;
	room->pending--;
	if (w->last_seq > room->last_seq)
		room->last_seq = w->last_seq;
	/* then what Redis published from this member's own join on, in order */
	backlog_send(room, w->ev, m);
	if (!room->pending)
		backlog_clear(room);
	free(rj);
	member_release(m);
}

static void
redis_open(struct bc *bc, struct ws_conn *c, const struct join_args *a, const char *info)
{
	struct room **slot = room_slot(bc, a->room);
	struct room *room = *slot;
	if (!room) {
		room = calloc(1, sizeof(*room));
		if (!room) {
			ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
			return;
		}
		strcpy(room->name, a->room);
		ws_list_init(&room->members);
		*slot = room;
		bc->active_rooms++;
	}
	struct member *m = calloc(1, sizeof(*m));
	struct rjoin *rj = m ? malloc(sizeof(*rj)) : NULL;
	char *info_json = rj && info ? strdup(info) : NULL;
	if (!rj || (info && !info_json)) {
		free(rj);
		free(m);
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		if (!room->count) {
			*room_slot(bc, room->name) = room->hnext;
			bc->active_rooms--;
			free(room);
		}
		return;
	}
	*m = (struct member){ .c = c,
			      .room = room,
			      .membership = ++bc->next_member,
			      .bc = bc,
			      .refs = 1,
			      .pending = true,
			      .info_json = info_json };
	/* with JWTs the name is the token's subject as it is (a.user came from it) */
	if (bc->jwt && a->has_user)
		snprintf(m->user, sizeof(m->user), "%s", a->user);
	else
		unique_user(room, a->user, m->user, sizeof(m->user));
	ws_list_insert(&room->members, &m->link);
	room->count++;
	room->pending++;
	ws_conn_set_user(c, m);
	*rj = (struct rjoin){ .m = m, .a = *a };
	/* names are of a JSON-safe alphabet ('#' added): quoting is escaping */
	char name[USER_MAX_LEN + 3];
	snprintf(name, sizeof(name), "\"%s\"", m->user);
	uint32_t limit = a->has_since ? bc->opt.history_size : bc->opt.history_on_join;
	int64_t since = !a->has_since ? -1 : (int64_t)(a->since < SINCE_MAX ? a->since : SINCE_MAX);
	if (!bc->redis || !bc_redis_join(bc->redis, room->name, m->membership, name, m->info_json,
					 since, limit, redis_welcome, rj)) {
		free(rj);
		m->refs = 0;
		ws_conn_close(c, WS_CLOSE_INTERNAL, "Service unavailable");
	}
}

static void
redis_close(struct bc *bc, struct ws_conn *c, struct member *m)
{
	struct room *room = m->room;
	ws_list_remove(&m->link);
	room->count--;
	if (m->pending)
		room->pending--;
	ws_conn_set_user(c, NULL);
	m->gone = true;
	m->c = NULL;
	m->room = NULL;
	/* its leave is published by Redis, to every node: no local notice */
	m->refs++;
	if (bc->redis)
		bc_redis_leave(bc->redis, room->name, m->membership);
	member_release(m);
	if (!room->pending)
		backlog_clear(room);
	if (room->count == 0) {
		*room_slot(bc, room->name) = room->hnext;
		bc->active_rooms--;
		ws_buf_finish(&room->backlog);
		free(room);
	}
}

static void
redis_published(void *ctx, bool ok, uint64_t seq)
{
	struct member *m = ctx;
	if (!m->gone) {
		if (ok)
			m->bc->persisted++;
		else
			send_error(m->c, "Service unavailable");
	}
	member_release(m);
}

/* The message leaves through Redis; every member (its sender too) gets it from there. */
static void
redis_chat(struct bc *bc, struct member *m, const char *text, size_t len)
{
	struct ws_buf *b = &bc->scratch;
	bool ok = put_str(b, m->user, strlen(m->user));
	uint32_t from_len = b->len;
	ok = ok && put_str(b, text, len);
	const char *json = (const char *)ws_buf_begin(b);
	m->refs++;
	if (!ok || !bc->redis ||
	    !bc_redis_publish(bc->redis, m->room->name, json, from_len, json + from_len,
			      b->len - from_len, m->info_json, ws_clock_wall_ms(), redis_published,
			      m)) {
		m->refs--;
		send_error(m->c, "Service unavailable");
	}
	b->len = 0;
	b->head = 0;
}

static void
redis_history_page(void *ctx, const struct bc_redis_welcome *w)
{
	struct member *m = ctx;
	struct bc *bc = m->bc;
	if (!m->gone && !w) {
		send_error(m->c, "Service unavailable");
	} else if (!m->gone) {
		struct ws_buf *b = &bc->scratch;
		bool ok = put(b, "{\"type\":\"history\",\"room\":") &&
			  put_str(b, m->room->name, strlen(m->room->name)) && put(b, ",");
		send_page(bc, m->c, ok && put_raw_history(bc, b, w, true));
	}
	member_release(m);
}

static void
redis_history(struct bc *bc, struct member *m, uint64_t since)
{
	m->refs++;
	if (!bc->redis || !bc_redis_history(bc->redis, m->room->name, since, bc->opt.history_size,
					    redis_history_page, m)) {
		m->refs--;
		send_error(m->c, "Service unavailable");
	}
}

static void
redis_metrics(struct bc *bc, struct ws_buf *out)
{
	struct bc_redis_stats st;
	bc_redis_stats(bc->redis, &st);
	char s[3072];
	int n = snprintf(
		s, sizeof(s),
		"# HELP ws_broadcast_engine_up Whether the engine can serve (Redis "
		"connected).\n"
		"# TYPE ws_broadcast_engine_up gauge\n"
		"ws_broadcast_engine_up{engine=\"redis\"} %d\n"
		"# HELP ws_broadcast_redis_connects_total Connections made to Redis.\n"
		"# TYPE ws_broadcast_redis_connects_total counter\n"
		"ws_broadcast_redis_connects_total %llu\n"
		"# HELP ws_broadcast_redis_disconnects_total Connections to Redis lost.\n"
		"# TYPE ws_broadcast_redis_disconnects_total counter\n"
		"ws_broadcast_redis_disconnects_total %llu\n"
		"# HELP ws_broadcast_redis_published_total Messages stored and published.\n"
		"# TYPE ws_broadcast_redis_published_total counter\n"
		"ws_broadcast_redis_published_total %llu\n"
		"# HELP ws_broadcast_redis_publish_failed_total Messages refused: Redis "
		"unavailable or an error.\n"
		"# TYPE ws_broadcast_redis_publish_failed_total counter\n"
		"ws_broadcast_redis_publish_failed_total %llu\n"
		"# HELP ws_broadcast_redis_reaped_total Members of dead servers removed by "
		"this one.\n"
		"# TYPE ws_broadcast_redis_reaped_total counter\n"
		"ws_broadcast_redis_reaped_total %llu\n"
		"# HELP ws_broadcast_redis_rooms_subscribed Rooms this server is subscribed to "
		"(rooms with members here).\n"
		"# TYPE ws_broadcast_redis_rooms_subscribed gauge\n"
		"ws_broadcast_redis_rooms_subscribed %llu\n"
		"# HELP ws_broadcast_redis_pending Joins, messages and history reads awaiting "
		"Redis.\n"
		"# TYPE ws_broadcast_redis_pending gauge\n"
		"ws_broadcast_redis_pending %llu\n"
		"# HELP ws_broadcast_redis_caught_up_total Messages a room missed while "
		"resubscribing, delivered from the history.\n"
		"# TYPE ws_broadcast_redis_caught_up_total counter\n"
		"ws_broadcast_redis_caught_up_total %llu\n"
		"# HELP ws_broadcast_redis_noscript_total Calls Redis answered NOSCRIPT (its "
		"script cache lost), sent again with the script.\n"
		"# TYPE ws_broadcast_redis_noscript_total counter\n"
		"ws_broadcast_redis_noscript_total %llu\n",
		st.up ? 1 : 0, (unsigned long long)st.connects, (unsigned long long)st.disconnects,
		(unsigned long long)st.published, (unsigned long long)st.publish_failed,
		(unsigned long long)st.reaped, (unsigned long long)st.rooms_subscribed,
		(unsigned long long)st.pending, (unsigned long long)bc->caught_up,
		(unsigned long long)st.noscript);
	if (n > 0 && (size_t)n < sizeof(s))
		ws_buf_append(out, s, (size_t)n);
}

/* The server allowlist plus the engine's set (SQLite's file calls or Redis' connect()). */
static int
confine(enum ws_policy_set engine, const struct ws_config *cfg)
{
	const enum ws_policy_set sets[] = { WS_POLICY_SET_SERVER, engine };
	const struct ws_sandbox_self self = {
		.name = "broadcast",
		.default_action = WS_POLICY_KILL,
		.sets = sets,
		.nsets = sizeof(sets) / sizeof(sets[0]),
	};
	return ws_sandbox_confine_server(&self, NULL, cfg->no_self_sandbox);
}

/*
 * Connects to Redis (before the filter: the host is resolved now), then
 * confines the server, with connect() for Redis' reconnects.
 */
static int
redis_confine(struct bc *bc, const struct ws_config *cfg)
{
	static const struct bc_redis_events ev = {
		.event = redis_event,
		.resync = redis_resync,
		.relay = redis_relay,
	};
	struct bc_redis_config rc = {
		.url = bc->opt.redis,
		.user = bc->opt.redis_user,
		.password = bc->opt.redis_password,
		.history_size = bc->opt.history_size,
		.presence_ttl_ms = bc->opt.presence_ttl_ms,
		.welcome_members = bc->opt.welcome_members,
		.max_pending = bc->opt.redis_max_pending,
	};
	char err[256];
	bc->redis = bc_redis_create(bc->srv, &rc, &ev, bc, err, sizeof(err));
	if (!bc->redis) {
		ws_log(WS_LOG_ERROR, "redis failed=yes error=\"%s\"", err);
		return -1;
	}
	/* connect() to Redis (its address resolved in create) */
	return confine(WS_POLICY_SET_NETCLIENT, cfg);
}

/* ---- HTTP: /rooms and /rooms/NAME ---- */

/* Rooms listed by GET /rooms, at most. */
#define ROOMS_LIST_MAX 10000

struct listing {
	struct bc *bc;
	bool ok;
};

static void
list_room(void *ctx, const char *name, uint64_t next_seq)
{
	struct listing *l = ctx;
	struct ws_buf *b = &l->bc->scratch;
	struct room *r = *room_slot(l->bc, name);
	l->ok = l->ok && (b->len == 1 || put(b, ",")) && put(b, "{\"room\":") &&
		put_str(b, name, strlen(name)) && put(b, ",\"count\":") &&
		put_uint(b, r ? r->count : 0) && put(b, ",\"last_seq\":") &&
		put_uint(b, next_seq - 1) && put(b, "}");
}

/* Answers from bc->scratch (or 500 when writing it ran out of memory) and empties it. */
static void
respond_scratch(struct bc *bc, struct ws_conn *c, bool ok)
{
	static const char oom[] = "500 Internal Server Error: out of memory\n";
	if (ok)
		ws_conn_respond(c, 200, "application/json", NULL, ws_buf_begin(&bc->scratch),
				bc->scratch.len);
	else
		ws_conn_respond(c, 500, "text/plain; charset=utf-8", NULL, oom, sizeof(oom) - 1);
	bc->scratch.len = 0;
	bc->scratch.head = 0;
}

/*
 * Room state (names, members, seqs) is what the upgrade protects: the same
 * Origin allowlist and token apply; with JWTs, a token that allows `room`
 * (NULL: all rooms). True when the request may see it; otherwise it has
 * been answered (403 or 401).
 */
static bool
http_allowed(struct bc *bc, struct ws_conn *c, const struct ws_http_request *req, const char *room)
{
	static const char forbidden[] = "403 Forbidden: origin not allowed\n";
	static const char unauth[] = "401 Unauthorized: missing or wrong token\n";
	if (!ws_auth_origin_ok(&bc->cfg->allowed_origins, req)) {
		ws_metrics_reject(ws_server_metrics(bc->srv), WS_REJECT_ORIGIN);
		ws_conn_respond(c, 403, "text/plain; charset=utf-8", NULL, forbidden,
				sizeof(forbidden) - 1);
		return false;
	}
	if (!ws_auth_token_ok(bc->cfg->token, req)) {
		ws_metrics_reject(ws_server_metrics(bc->srv), WS_REJECT_TOKEN);
		ws_conn_respond(c, 401, "text/plain; charset=utf-8", "WWW-Authenticate: Bearer\r\n",
				unauth, sizeof(unauth) - 1);
		return false;
	}
	struct ws_jwt_claims claims;
	bool shared;
	const char *why;
	int status = bc->jwt ? jwt_check(bc, req, room, &claims, &shared, &why) : 0;
	if (status) {
		char text[128];
		int n = snprintf(text, sizeof(text), "%d %s: %s\n", status,
				 status == 401 ? "Unauthorized" : "Forbidden", why);
		ws_metrics_reject(ws_server_metrics(bc->srv), WS_REJECT_TOKEN);
		ws_conn_respond(c, status, "text/plain; charset=utf-8",
				status == 401 ? "WWW-Authenticate: Bearer\r\n" : NULL, text,
				(size_t)n);
		return false;
	}
	return true;
}

static bool
bc_http(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct bc *bc = app;
	struct ws_slice p = req->path;
	if (bc->opt.redis)
		return false; /* rooms live in Redis: not listed by one node */
	if (p.n == 6 && memcmp(p.p, "/rooms", 6) == 0) {
		if (!http_allowed(bc, c, req, NULL))
			return true;
		end_turn(bc);
		struct listing l = { .bc = bc, .ok = put(&bc->scratch, "[") };
		bc_store_rooms(bc->store, ROOMS_LIST_MAX, list_room, &l);
		respond_scratch(bc, c, l.ok && put(&bc->scratch, "]"));
		return true;
	}
	if (p.n >= 7 && memcmp(p.p, "/rooms/", 7) == 0) {
		char name[NAME_MAX_LEN + 1];
		uint64_t next;
		size_t n = p.n - 7;
		if (n > NAME_MAX_LEN)
			return false;
		memcpy(name, p.p + 7, n);
		name[n] = '\0';
		if (!http_allowed(bc, c, req, name))
			return true;
		end_turn(bc);
		if (!name_valid(name) ||
		    bc_store_room_lookup(bc->store, name, &next, NULL) != BC_STORE_FOUND)
			return false; /* 404 */
		struct room *r = *room_slot(bc, name);
		struct ws_buf *b = &bc->scratch;
		bool ok = put(b, "{\"room\":") && put_str(b, name, n) && put(b, ",\"count\":") &&
			  put_uint(b, r ? r->count : 0) && put(b, ",\"members\":[");
		bool cut;
		ok = ok && (!r || put_members(b, r, UINT32_MAX, &cut));
		ok = ok && put(b, "],\"last_seq\":") && put_uint(b, next - 1) && put(b, "}");
		respond_scratch(bc, c, ok);
		return true;
	}
	return false;
}

static void
bc_metrics(void *app, struct ws_buf *out)
{
	struct bc *bc = app;
	char s[2048];
	int n = snprintf(s, sizeof(s),
			 "# HELP ws_broadcast_rooms_active Rooms with members.\n"
			 "# TYPE ws_broadcast_rooms_active gauge\n"
			 "ws_broadcast_rooms_active %u\n"
			 "# HELP ws_broadcast_rooms_stored Rooms in the database.\n"
			 "# TYPE ws_broadcast_rooms_stored gauge\n"
			 "ws_broadcast_rooms_stored %llu\n"
			 "# HELP ws_broadcast_messages_persisted_total Chat messages stored.\n"
			 "# TYPE ws_broadcast_messages_persisted_total counter\n"
			 "ws_broadcast_messages_persisted_total %llu\n"
			 "# HELP ws_broadcast_messages_failed_total Chat messages not delivered: "
			 "the store could not commit them.\n"
			 "# TYPE ws_broadcast_messages_failed_total counter\n"
			 "ws_broadcast_messages_failed_total{reason=\"busy\"} %llu\n"
			 "ws_broadcast_messages_failed_total{reason=\"full\"} %llu\n"
			 "ws_broadcast_messages_failed_total{reason=\"error\"} %llu\n"
			 "# HELP ws_broadcast_history_cut_total Welcomes and history pages cut at "
			 "--max-welcome.\n"
			 "# TYPE ws_broadcast_history_cut_total counter\n"
			 "ws_broadcast_history_cut_total %llu\n"
			 "# HELP ws_broadcast_fanout_limited_total Messages over --max-fanout.\n"
			 "# TYPE ws_broadcast_fanout_limited_total counter\n"
			 "ws_broadcast_fanout_limited_total %llu\n"
			 "# HELP ws_broadcast_db_commits_total Database transactions committed.\n"
			 "# TYPE ws_broadcast_db_commits_total counter\n"
			 "ws_broadcast_db_commits_total %llu\n"
			 "# HELP ws_broadcast_db_errors_total Database errors.\n"
			 "# TYPE ws_broadcast_db_errors_total counter\n"
			 "ws_broadcast_db_errors_total %llu\n",
			 bc->active_rooms,
			 (unsigned long long)(bc->store ? bc_store_room_count(bc->store) : 0),
			 (unsigned long long)bc->persisted, (unsigned long long)bc->failed[0],
			 (unsigned long long)bc->failed[1], (unsigned long long)bc->failed[2],
			 (unsigned long long)bc->welcomes_cut,
			 (unsigned long long)bc->fanout_limited,
			 (unsigned long long)(bc->store ? bc_store_commits(bc->store) : 0),
			 (unsigned long long)(bc->store ? bc_store_errors(bc->store) : 0));
	if (n > 0 && (size_t)n < sizeof(s))
		ws_buf_append(out, s, (size_t)n);
	if (bc->redis)
		redis_metrics(bc, out);
}

/* ---- housekeeping: old memberships, idle empty rooms ---- */

static bool
room_in_use(void *ctx, const char *name)
{
	return *room_slot(ctx, name) != NULL;
}

static void
sweep(void *arg)
{
	struct bc *bc = arg;
	/* the turn so far commits on its own: a failed sweep must not take it along */
	end_turn(bc);
	uint64_t now = ws_clock_wall_ms();
	bool more = bc_store_prune_memberships(bc->store, PRUNE_BATCH) == PRUNE_BATCH;
	if (bc->opt.room_expiry_ms && now > bc->opt.room_expiry_ms)
		more |= bc_store_expire(bc->store, now - bc->opt.room_expiry_ms, now, EXPIRE_BATCH,
					room_in_use, bc) == EXPIRE_BATCH;
	end_turn(bc);
	ws_timer_arm(bc->sweep, more ? SWEEP_BUSY_MS : bc->sweep_ms);
}

static void
bc_stop(void *app)
{
	struct bc *bc = app;
	ws_timer_destroy(bc->sweep);
	bc->sweep = NULL;
	bc_redis_destroy(bc->redis);
	bc->redis = NULL;
}

/* ---- start-up ---- */

#define OPT(field) offsetof(struct options, field)

static const struct ws_option bc_opts[] = {
	{ "engine", "WS_ENGINE", "URL", WS_OPT_STRING, OPT(engine), 0, 0,
	  "where rooms live: sqlite:PATH (default sqlite:ws-broadcast.db) or "
	  "redis://[user:pass@]host:port[/db] (several servers, one room space)",
	  NULL },
	{ "redis-password-file", "WS_REDIS_PASSWORD_FILE", "PATH", WS_OPT_STRING,
	  OPT(redis_password_file), 0, 0,
	  "Redis engine: the password (AUTH) is this file's content, without its trailing "
	  "newline; keeps it off the command line, which any local user can read",
	  NULL },
	{ "redis-user", "WS_REDIS_USER", "NAME", WS_OPT_STRING, OPT(redis_user), 0, 0,
	  "Redis engine: the ACL user for AUTH (with --redis-password-file)", NULL },
	{ "presence-ttl", "WS_PRESENCE_TTL", "SECONDS", WS_OPT_SECONDS, OPT(presence_ttl_ms), 1000,
	  3600000,
	  "Redis engine: a server silent this long is dead; its members' leaves are announced "
	  "within 1.5x this",
	  NULL },
	{ "redis-max-pending", "WS_REDIS_MAX_PENDING", "N", WS_OPT_UINT, OPT(redis_max_pending), 1,
	  10000000,
	  "Redis engine: joins, messages and history reads awaiting Redis, at most; past it "
	  "\"Service unavailable\"",
	  NULL },
	{ "db", "WS_DB", "PATH", WS_OPT_STRING, OPT(db), 0, 0,
	  "SQLite database of rooms, memberships and history (--engine sqlite:PATH)", NULL },
	{ "history-size", "WS_HISTORY_SIZE", "N", WS_OPT_UINT, OPT(history_size), 0, 1000000,
	  "messages kept per room, 0 = none", NULL },
	{ "history-on-join", "WS_HISTORY_ON_JOIN", "N", WS_OPT_UINT, OPT(history_on_join), 0,
	  1000000, "recent messages in the welcome (without ?since=)", NULL },
	{ "welcome-members", "WS_WELCOME_MEMBERS", "N", WS_OPT_UINT, OPT(welcome_members), 0,
	  1000000, "member names in a welcome, newest first; past it \"members_more\":true", NULL },
	{ "max-rooms", "WS_MAX_ROOMS", "N", WS_OPT_UINT, OPT(max_rooms), 1, 10000000,
	  "rooms with members at once; a new one over it gets 503", NULL },
	{ "max-room-members", "WS_MAX_ROOM_MEMBERS", "N", WS_OPT_UINT, OPT(max_room_members), 1,
	  10000000, "connections in one room; over it: 503", NULL },
	{ "max-chat-message", "WS_MAX_CHAT_MESSAGE", "BYTES", WS_OPT_SIZE, OPT(max_chat_message), 1,
	  1u << 30,
	  "longest chat text, JSON-escaped; longer gets an error, the connection "
	  "stays",
	  NULL },
	{ "max-welcome", "WS_MAX_WELCOME", "BYTES", WS_OPT_SIZE, OPT(max_welcome), 1024, 1u << 30,
	  "a welcome or history page, at most (and at most half of --send-queue); history past "
	  "it is cut with \"more\":true",
	  NULL },
	{ "room-expiry", "WS_ROOM_EXPIRY", "SECONDS", WS_OPT_SECONDS, OPT(room_expiry_ms), 0,
	  4000000000u, "an empty room idle this long is forgotten with its history; 0 = never",
	  NULL },
	{ "max-stored-rooms", "WS_MAX_STORED_ROOMS", "N", WS_OPT_UINT, OPT(max_stored_rooms), 1,
	  100000000, "rooms in the database; a join that would store one more gets 503", NULL },
	{ "max-memberships", "WS_MAX_MEMBERSHIPS", "N", WS_OPT_UINT, OPT(max_memberships), 1,
	  100000000, "closed memberships kept in the database (the newest)", NULL },
	{ "max-db-size", "WS_MAX_DB_SIZE", "BYTES", WS_OPT_SIZE, OPT(max_db_size), 64 * 1024,
	  1ull << 44, "database file size cap; at it, messages get \"storage full\"", NULL },
	{ "max-fanout", "WS_MAX_FANOUT", "BYTES", WS_OPT_SIZE, OPT(max_fanout), 0, 1ull << 40,
	  "one message's frame x the members it goes to, at most; 0 = off", NULL },
	{ "jwt-secret-file", "WS_JWT_SECRET_FILE", "PATH", WS_OPT_STRING, OPT(jwt_secret_file), 0,
	  0,
	  "HS256 secret (32-4096 bytes; one trailing newline dropped): clients then need a JWT "
	  "whose sub is their user name",
	  NULL },
	{ "jwt-leeway", "WS_JWT_LEEWAY", "SECONDS", WS_OPT_SECONDS, OPT(jwt_leeway_ms), 0, 300000,
	  "clock skew allowed on a JWT's exp and nbf", NULL },
	{ "jwt-allow-token", "WS_JWT_ALLOW_TOKEN", NULL, WS_OPT_FLAG, OPT(jwt_allow_token), 0, 0,
	  "with JWTs on, also admit the shared --token (as a random user name)", NULL },
};

/* /healthz: a Redis engine that cannot serve makes this server unready (503). */
static const char *
bc_health(void *app)
{
	struct bc *bc = app;
	if (bc->opt.redis && !(bc->redis && bc_redis_up(bc->redis)))
		return "redis unavailable";
	return NULL;
}

/* Once listening: the server allowlist plus SQLite's file calls (Redis: redis_confine). */
static int
bc_confine(void *app, const struct ws_config *cfg)
{
	struct bc *bc = app;
	/* the loop exists from here on (not yet in start): housekeeping can be scheduled */
	if (bc->opt.redis)
		return redis_confine(bc, cfg);
	bc->sweep = ws_timer_create(bc->srv, sweep, bc);
	if (!bc->sweep)
		return -1;
	ws_timer_arm(bc->sweep, bc->sweep_ms);
	return confine(WS_POLICY_SET_SQLITE, cfg);
}

/*
 * --engine, with --db as sqlite:'s alias: sets opt->db for SQLite. False
 * (with one "error:" line) for an engine this build cannot run.
 */
static bool
pick_engine(struct options *opt)
{
	const char *e = opt->engine;
	if (!e) {
		if (!opt->db)
			opt->db = "ws-broadcast.db";
		return true;
	}
	if (strncmp(e, "sqlite:", 7) == 0 && e[7] && opt->db) {
		fprintf(stderr, "error: --db is --engine sqlite:PATH's alias: give one of them\n");
		return false;
	}
	if (strncmp(e, "sqlite:", 7) == 0 && e[7]) {
		opt->db = e + 7;
		return true;
	}
	if (strncmp(e, "redis://", 8) == 0) {
		char err[256];
		if (!bc_redis_url_ok(e, err, sizeof(err))) {
			fprintf(stderr, "error: --engine: %s\n", err);
			return false;
		}
		opt->redis = e;
		return true;
	}
	char shown[200];
	bc_redis_url_redact(e, shown, sizeof(shown));
	e = shown;
	if (strncmp(e, "rediss://", 9) == 0) {
		fprintf(stderr,
			"error: --engine: rediss:// needs hiredis with TLS, and this build's "
			"(Debian 12's hiredis 0.14.1) has none: use redis:// on loopback or a "
			"private network, or a TLS tunnel\n");
		return false;
	}
	fprintf(stderr,
		"error: --engine: '%s': expected sqlite:PATH or "
		"redis://[user:pass@]host:port[/db]\n",
		e);
	return false;
}

#define REDIS_PASSWORD_MAX 1024

/*
 * The Redis engine's secrets: --redis-password-file read (trailing newline
 * cut), and a password given in --engine on the command line copied out
 * and overwritten there, so /proc/PID/cmdline (world-readable, unlike the
 * environment of this non-dumpable process) stops showing it. False (with
 * one "error:" line) on a conflict or an unreadable file.
 */
static bool
redis_secrets(struct options *opt, int argc, char **argv)
{
	if (!opt->redis) {
		if (opt->redis_password_file || opt->redis_user)
			fprintf(stderr, "error: --redis-password-file and --redis-user need "
					"--engine redis://\n");
		return !opt->redis_password_file && !opt->redis_user;
	}
	bool has_user, has_pass;
	bc_redis_url_has(opt->redis, &has_user, &has_pass);
	if (opt->redis_user && has_user) {
		fprintf(stderr, "error: --redis-user and a user in --engine: give one of them\n");
		return false;
	}
	if (opt->redis_password_file && has_pass) {
		fprintf(stderr, "error: --redis-password-file and a password in --engine: give "
				"one of them\n");
		return false;
	}
	if (opt->redis_user && !opt->redis_password_file && !has_pass) {
		fprintf(stderr, "error: --redis-user needs --redis-password-file\n");
		return false;
	}
	for (int i = 1; has_pass && i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (opt->redis < argv[i] || opt->redis >= argv[i] + n)
			continue;
		opt->redis_url_owned = strdup(opt->redis);
		if (!opt->redis_url_owned) {
			fprintf(stderr, "error: out of memory\n");
			return false;
		}
		bc_redis_url_scrub(argv[i] + (opt->redis - argv[i]));
		opt->redis = opt->engine = opt->redis_url_owned;
		opt->redis_pw_in_argv = true;
		break;
	}
	if (!opt->redis_password_file)
		return true;
	const char *path = opt->redis_password_file;
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "error: --redis-password-file %s: %s\n", path, strerror(errno));
		return false;
	}
	char buf[REDIS_PASSWORD_MAX + 2];
	size_t n = fread(buf, 1, sizeof(buf), f);
	bool bad = ferror(f);
	fclose(f);
	if (n && buf[n - 1] == '\n')
		n--;
	if (n && buf[n - 1] == '\r')
		n--;
	const char *why = bad                      ? "cannot read it"
			  : n > REDIS_PASSWORD_MAX ? "longer than 1024 bytes"
			  : n == 0                 ? "empty"
			  : memchr(buf, '\0', n) || memchr(buf, '\n', n)
				  ? "has a NUL or a newline inside"
				  : NULL;
	if (!why) {
		buf[n] = '\0';
		opt->redis_password = strdup(buf);
		if (!opt->redis_password)
			why = "out of memory";
	}
	explicit_bzero(buf, sizeof(buf));
	if (why) {
		fprintf(stderr, "error: --redis-password-file %s: %s\n", path, why);
		return false;
	}
	return true;
}

/*
 * --jwt-secret-file: loads the key, and takes the shared token aside (the
 * common check would refuse every JWT), to be accepted only with
 * --jwt-allow-token. False (with one "error:" line) when the secret is unusable.
 */
static bool
jwt_setup(struct bc *bc, struct ws_config *cfg)
{
	char err[256];
	bool loose;
	bc->jwt = ws_jwt_key_read_file(bc->opt.jwt_secret_file, &loose, err, sizeof(err));
	if (!bc->jwt) {
		fprintf(stderr, "error: --jwt-secret-file %s: %s\n", bc->opt.jwt_secret_file, err);
		return false;
	}
	if (loose)
		ws_log(WS_LOG_WARN,
		       "jwt-secret-file path=%s readable_by_others=yes hint=\"chmod 600 it\"",
		       bc->opt.jwt_secret_file);
	bc->shared_token = cfg->token;
	cfg->token = NULL;
	if (bc->shared_token && !bc->opt.jwt_allow_token)
		ws_log(WS_LOG_WARN, "token ignored=yes reason=\"JWTs are on\" "
				    "hint=\"--jwt-allow-token admits it too\"");
	ws_log(WS_LOG_INFO, "jwt alg=HS256 leeway_ms=%u shared_token=%s", bc->opt.jwt_leeway_ms,
	       bc->shared_token && bc->opt.jwt_allow_token ? "accepted" : "no");
	return true;
}

/* The SQLite engine: opens the database and closes what a crash left open. */
static bool
open_store(struct bc *bc)
{
	char err[512];
	struct bc_store_limits lim = {
		.history_size = bc->opt.history_size,
		.max_db_bytes = bc->opt.max_db_size,
		.max_memberships = bc->opt.max_memberships,
	};
	bc->store = bc_store_open(bc->opt.db, &lim, err, sizeof(err));
	if (!bc->store) {
		ws_log(WS_LOG_ERROR, "db-open failed=yes text=\"%s\"", err);
		return false;
	}
	int closed = bc_store_recover(bc->store, ws_clock_wall_ms());
	if (closed < 0) {
		bc_store_destroy(bc->store);
		return false;
	}
	ws_log(WS_LOG_INFO, "db path=%s recovered_memberships=%d rooms=%llu welcome_max=%llu",
	       bc->opt.db, closed, (unsigned long long)bc_store_room_count(bc->store),
	       (unsigned long long)bc->welcome_max);
	return true;
}

int
main(int argc, char **argv)
{
	static struct bc bc = {
		.turn = 1, /* members' turn 0 is never the current one */
		.opt = {
			.history_size = 1000,
			.history_on_join = 20,
			.welcome_members = 100,
			.max_rooms = 10000,
			.max_room_members = 10000,
			.max_chat_message = 64 * 1024,
			.max_welcome = 512 * 1024,
			.room_expiry_ms = 7u * 24 * 3600 * 1000,
			.max_stored_rooms = 100000,
			.max_memberships = 100000,
			.max_db_size = 1024ull * 1024 * 1024,
			.max_fanout = 16ull * 1024 * 1024,
			.jwt_leeway_ms = 5000,
			.presence_ttl_ms = 15000,
			.redis_max_pending = 10000,
		},
	};
	struct ws_config cfg;
	ws_config_defaults(&cfg, 8081);
	cfg.rate_limit = 20;
	cfg.rate_burst = 40;
	cfg.max_message = 256 * 1024;
	cfg.send_queue = 1024 * 1024;
	struct ws_option_table extra = { bc_opts, sizeof(bc_opts) / sizeof(bc_opts[0]), &bc.opt };
	enum ws_config_result parsed = ws_config_parse(
		&cfg, &extra, "ws-broadcast",
		"Chat rooms keyed by ?id=, with presence and history in SQLite.", argc, argv);
	if (parsed != WS_CONFIG_RUN)
		return ws_config_exit_status(parsed);
	if (!pick_engine(&bc.opt) || !redis_secrets(&bc.opt, argc, argv))
		return WS_EXIT_USAGE;
	ws_log_init(cfg.level, cfg.format);
	if (bc.opt.redis_pw_in_argv)
		ws_log(WS_LOG_WARN,
		       "redis password_in_argv=yes hidden=yes hint=\"any local user "
		       "could read it until now: use --redis-password-file or WS_ENGINE\"");
	bc.cfg = &cfg;
	/* an image may set WS_DB for its default engine: Redis replaces it, loudly */
	if (bc.opt.redis && bc.opt.db)
		ws_log(WS_LOG_WARN, "db ignored=yes path=%s reason=\"--engine redis://\"",
		       bc.opt.db);
	if (bc.opt.jwt_secret_file && !jwt_setup(&bc, &cfg))
		return WS_EXIT_USAGE;
	/* a welcome counts against the send queue, with room left for what follows it */
	bc.welcome_max = bc.opt.max_welcome < cfg.send_queue / 2 ? bc.opt.max_welcome
								 : cfg.send_queue / 2;
	bc.sweep_ms = SWEEP_MAX_MS;
	uint32_t half_expiry = bc.opt.room_expiry_ms / 2;
	if (bc.opt.room_expiry_ms && half_expiry < bc.sweep_ms)
		bc.sweep_ms = half_expiry < SWEEP_BUSY_MS ? SWEEP_BUSY_MS : half_expiry;

	if (!bc.opt.redis && !open_store(&bc))
		return WS_EXIT_SYSTEM;

	static const struct ws_app app = {
		.name = "ws-broadcast",
		.confine = bc_confine,
		.start = bc_start,
		.admit = bc_admit,
		.open = bc_open,
		.message = bc_message,
		.rate_limited = bc_rate_limited,
		.close = bc_close,
		.http = bc_http,
		.stop = bc_stop,
		.deferred = end_turn,
		.metrics = bc_metrics,
		.health = bc_health,
	};
	int status = ws_server_run(&app, &bc, &cfg);
	ws_config_finish(&cfg);
	end_turn(&bc);
	ws_timer_destroy(bc.sweep);
	ws_jwt_key_destroy(bc.jwt);
	bc_store_destroy(bc.store);
	free(bc.pending);
	ws_buf_finish(&bc.frames);
	ws_buf_finish(&bc.scratch);
	free(bc.pevs);
	ws_buf_finish(&bc.pnames);
	ws_buf_finish(&bc.pjson);
	free(bc.opt.redis_url_owned);
	if (bc.opt.redis_password)
		explicit_bzero(bc.opt.redis_password, strlen(bc.opt.redis_password));
	free(bc.opt.redis_password);
	return status;
}
