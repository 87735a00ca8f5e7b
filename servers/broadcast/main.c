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
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "sandbox.h"
#include "server.h"
#include "store.h"

#define NAME_MAX_LEN 64
#define ROOM_BUCKETS 4096

struct options {
	const char *db;
	uint32_t history_size;
	uint32_t history_on_join;
	uint32_t max_rooms;
	uint32_t max_room_members;
	uint64_t max_chat_message;
};

struct member {
	struct ws_conn *c;
	struct room *room;
	struct member *prev, *next;
	uint64_t membership;
	char user[NAME_MAX_LEN + 1];
};

struct room {
	struct room *hnext;
	struct member *members;
	uint64_t next_seq;
	uint32_t count;
	char name[NAME_MAX_LEN + 1];
};

/* A frame addressed to a room, waiting for the turn's commit. */
struct pending {
	struct room *room;
	struct ws_conn *except;   /* binary relays skip their sender */
	uint32_t off, len;        /* in bc.frames */
};

struct bc {
	struct options opt;
	struct ws_server *srv;
	struct bc_store *store;
	struct room *rooms[ROOM_BUCKETS];
	uint32_t active_rooms;
	struct ws_buf frames;
	struct pending *pending;
	size_t npending, cap_pending;
	uint64_t persisted;
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
	uint32_t h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	struct room **r = &bc->rooms[h % ROOM_BUCKETS];
	while (*r && strcmp((*r)->name, name) != 0)
		r = &(*r)->hnext;
	return r;
}

/* ---- the turn: commit, then deliver ---- */

static void
deliver_pending(struct bc *bc)
{
	for (size_t i = 0; i < bc->npending; i++) {
		const struct pending *p = &bc->pending[i];
		const uint8_t *frame = bc->frames.data + p->off;
		for (struct member *m = p->room->members; m; m = m->next) {
			if (m->c != p->except)
				ws_conn_send_frame(m->c, frame, p->len);
		}
	}
	bc->npending = 0;
	bc->frames.len = 0;
	bc->frames.head = 0;
}

static void
end_turn(void *app)
{
	struct bc *bc = app;
	bc_store_commit(bc->store);
	deliver_pending(bc);
}

/* Frames data once and queues it for every member of the room at turn end. */
static void
to_room(struct bc *bc, struct room *room, struct ws_conn *except, enum ws_opcode op,
	const void *data, size_t len)
{
	if (bc->npending == bc->cap_pending) {
		size_t cap = bc->cap_pending ? bc->cap_pending * 2 : 64;
		struct pending *p = realloc(bc->pending, cap * sizeof(*p));
		if (!p)
			return;
		bc->pending = p;
		bc->cap_pending = cap;
	}
	uint32_t off = bc->frames.len;
	if (!ws_frame_append(&bc->frames, op, data, len))
		return;
	bc->pending[bc->npending++] = (struct pending){
		.room = room, .except = except, .off = off, .len = bc->frames.len - off,
	};
	ws_server_defer(bc->srv);
}

static void
to_room_json(struct bc *bc, struct room *room, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s)
		to_room(bc, room, NULL, WS_OP_TEXT, s, strlen(s));
	free(s);
}

static void
send_json(struct ws_conn *c, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s)
		ws_conn_send(c, WS_OP_TEXT, s, strlen(s));
	free(s);
}

static void
send_error(struct ws_conn *c, const char *msg)
{
	send_json(c, json_pack("{s:s, s:s}", "type", "error", "error", msg));
}

/* ---- admission and membership ---- */

struct join_args {
	char room[NAME_MAX_LEN + 1];
	char user[NAME_MAX_LEN + 1];
	uint64_t since;
	bool has_since, has_user;
};

/* Reads ?id=, &user=, &since=; false with *why on a bad value. */
static bool
join_args(const struct ws_http_request *req, struct join_args *a, const char **why)
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
	if ((r = ws_http_query_arg(req, "user", buf, sizeof(buf)))) {
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
	return true;
}

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
	if (!join_args(req, &a, why))
		return 400;
	struct room *r = *room_slot(bc, a.room);
	if (!r && bc->active_rooms >= bc->opt.max_rooms) {
		*why = "too many rooms";
		return 503;
	}
	if (r && r->count >= bc->opt.max_room_members) {
		*why = "room is full";
		return 503;
	}
	return 0;
}

static void
add_history(void *ctx, const struct bc_message *m)
{
	json_t *history = ctx;
	json_array_append_new(history, json_pack("{s:s, s:s, s:s%, s:I, s:I}", "type", "message",
						 "from", m->from, "text", m->text, m->text_len,
						 "seq", (json_int_t)m->seq, "ts", (json_int_t)m->ts));
}

static void
bc_open(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct bc *bc = app;
	struct join_args a;
	const char *why;
	if (!join_args(req, &a, &why)) /* admitted already: cannot fail */
		return;
	if (!a.has_user) {
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			rnd = (uint32_t)ws_conn_id(c) * 2654435761u;
		snprintf(a.user, sizeof(a.user), "u-%08x", rnd);
	}
	/* what is pending must be committed and out before this member counts */
	end_turn(bc);

	uint64_t t = ws_clock_wall_ms();
	struct room **slot = room_slot(bc, a.room);
	struct room *room = *slot;
	if (!room) {
		uint64_t next = bc_store_room(bc->store, a.room, t);
		room = calloc(1, sizeof(*room));
		if (!room || next == 0) {
			free(room);
			ws_conn_close(c, WS_CLOSE_INTERNAL, "database error");
			return;
		}
		strcpy(room->name, a.room);
		room->next_seq = next;
		*slot = room;
		bc->active_rooms++;
	}
	struct member *m = calloc(1, sizeof(*m));
	if (!m) {
		ws_conn_close(c, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	*m = (struct member){ .c = c, .room = room, .next = room->members,
			      .membership = bc_store_next_membership(bc->store) };
	strcpy(m->user, a.user);
	if (room->members)
		room->members->prev = m;
	room->members = m;
	room->count++;
	ws_conn_set_user(c, m);
	bc_store_join(bc->store, m->membership, room->name, m->user, ws_conn_id(c),
		      ws_conn_addr(c), t);

	json_t *members = json_array();
	for (struct member *o = room->members; o; o = o->next)
		json_array_append_new(members, json_string(o->user));
	json_t *history = json_array();
	uint32_t limit = a.has_since ? bc->opt.history_size : bc->opt.history_on_join;
	if (limit)
		bc_store_history(bc->store, room->name, a.has_since ? a.since : 0, limit,
				 add_history, history);
	send_json(c, json_pack("{s:s, s:s, s:s, s:I, s:o, s:o}", "type", "welcome", "id", m->user,
			       "room", room->name, "count", (json_int_t)room->count, "members",
			       members, "history", history));
	to_room_json(bc, room, json_pack("{s:s, s:s, s:s, s:I}", "type", "join", "id", m->user,
					 "room", room->name, "count", (json_int_t)room->count));
}

static void
bc_close(void *app, struct ws_conn *c, uint16_t code)
{
	struct bc *bc = app;
	struct member *m = ws_conn_user(c);
	if (!m)
		return;
	struct room *room = m->room;
	if (m->prev)
		m->prev->next = m->next;
	else
		room->members = m->next;
	if (m->next)
		m->next->prev = m->prev;
	room->count--;
	char reason[32];
	snprintf(reason, sizeof(reason), "close %u", code);
	bc_store_leave(bc->store, m->membership, ws_clock_wall_ms(), reason);
	to_room_json(bc, room, json_pack("{s:s, s:s, s:s, s:I}", "type", "leave", "id", m->user,
					 "room", room->name, "count", (json_int_t)room->count));
	free(m);
	ws_conn_set_user(c, NULL);
	if (room->count == 0) {
		/* nobody to deliver to: commit now, so the room can go */
		end_turn(bc);
		*room_slot(bc, room->name) = room->hnext;
		bc->active_rooms--;
		free(room);
	}
}

/* ---- messages ---- */

static void
chat(struct bc *bc, struct member *m, const char *text, size_t len)
{
	struct room *room = m->room;
	struct bc_message msg = {
		.seq = room->next_seq++, .from = m->user, .text = text, .text_len = len,
		.ts = ws_clock_wall_ms(),
	};
	if (bc_store_message(bc->store, room->name, &msg))
		bc->persisted++;
	to_room_json(bc, room, json_pack("{s:s, s:s, s:s, s:s%, s:I, s:I}", "type", "message",
					 "from", m->user, "room", room->name, "text", text, len,
					 "seq", (json_int_t)msg.seq, "ts", (json_int_t)msg.ts));
}

static void
bc_message(void *app, struct ws_conn *c, enum ws_opcode op, uint8_t *data, size_t len)
{
	struct bc *bc = app;
	struct member *m = ws_conn_user(c);
	if (!m)
		return;
	if (op == WS_OP_BINARY) {
		to_room(bc, m->room, c, WS_OP_BINARY, data, len);
		return;
	}
	if (len > bc->opt.max_chat_message) {
		send_error(c, "Message too large");
		return;
	}
	size_t i = 0;
	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	if (i == len || data[i] != '{') {
		chat(bc, m, (const char *)data, len);
		return;
	}
	json_t *obj = json_loadb((const char *)data, len, JSON_ALLOW_NUL, NULL);
	json_t *type = json_object_get(obj, "type");
	json_t *text = json_object_get(obj, "text");
	if (json_is_object(obj) && json_is_string(type) &&
	    strcmp(json_string_value(type), "message") == 0 && json_is_string(text))
		chat(bc, m, json_string_value(text), json_string_length(text));
	else
		send_error(c, "Invalid message format");
	json_decref(obj);
}

static void
bc_rate_limited(void *app, struct ws_conn *c, enum ws_opcode op, const uint8_t *data,
		size_t len)
{
	send_error(c, "Rate limit exceeded");
}

/* ---- HTTP: /rooms and /rooms/NAME ---- */

static void
list_room(void *ctx, const char *name, uint64_t next_seq)
{
	void **args = ctx;
	struct bc *bc = args[0];
	json_t *list = args[1];
	struct room *r = *room_slot(bc, name);
	json_array_append_new(list, json_pack("{s:s, s:I, s:I}", "room", name, "count",
					      (json_int_t)(r ? r->count : 0), "last_seq",
					      (json_int_t)(next_seq - 1)));
}

static void
respond_json(struct ws_conn *c, int status, json_t *obj)
{
	char *s = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	if (s)
		ws_conn_respond(c, status, "application/json", NULL, s, strlen(s));
	free(s);
}

static bool
bc_http(void *app, struct ws_conn *c, const struct ws_http_request *req)
{
	struct bc *bc = app;
	struct ws_slice p = req->path;
	if (p.n == 6 && memcmp(p.p, "/rooms", 6) == 0) {
		end_turn(bc);
		json_t *list = json_array();
		void *args[2] = { bc, list };
		bc_store_rooms(bc->store, 10000, list_room, args);
		respond_json(c, 200, list);
		return true;
	}
	if (p.n > 7 && memcmp(p.p, "/rooms/", 7) == 0) {
		char name[NAME_MAX_LEN + 1];
		uint64_t next;
		size_t n = p.n - 7;
		if (n > NAME_MAX_LEN)
			return false;
		memcpy(name, p.p + 7, n);
		name[n] = '\0';
		end_turn(bc);
		if (!name_valid(name) || !bc_store_room_lookup(bc->store, name, &next))
			return false; /* 404 */
		struct room *r = *room_slot(bc, name);
		json_t *members = json_array();
		for (struct member *m = r ? r->members : NULL; m; m = m->next)
			json_array_append_new(members, json_string(m->user));
		respond_json(c, 200, json_pack("{s:s, s:I, s:o, s:I}", "room", name, "count",
					       (json_int_t)(r ? r->count : 0), "members", members,
					       "last_seq", (json_int_t)(next - 1)));
		return true;
	}
	return false;
}

static void
bc_metrics(void *app, struct ws_buf *out)
{
	struct bc *bc = app;
	char s[768];
	int n = snprintf(s, sizeof(s),
			 "# HELP ws_broadcast_rooms_active Rooms with members.\n"
			 "# TYPE ws_broadcast_rooms_active gauge\n"
			 "ws_broadcast_rooms_active %u\n"
			 "# HELP ws_broadcast_messages_persisted_total Chat messages stored.\n"
			 "# TYPE ws_broadcast_messages_persisted_total counter\n"
			 "ws_broadcast_messages_persisted_total %llu\n"
			 "# HELP ws_broadcast_db_commits_total Database transactions committed.\n"
			 "# TYPE ws_broadcast_db_commits_total counter\n"
			 "ws_broadcast_db_commits_total %llu\n"
			 "# HELP ws_broadcast_db_errors_total Database errors.\n"
			 "# TYPE ws_broadcast_db_errors_total counter\n"
			 "ws_broadcast_db_errors_total %llu\n",
			 bc->active_rooms, (unsigned long long)bc->persisted,
			 (unsigned long long)bc_store_commits(bc->store),
			 (unsigned long long)bc_store_errors(bc->store));
	if (n > 0 && (size_t)n < sizeof(s))
		ws_buf_append(out, s, (size_t)n);
}

/* ---- start-up ---- */

#define OPT(field) offsetof(struct options, field)

static const struct ws_option bc_opts[] = {
	{ "db", "WS_DB", "PATH", WS_OPT_STRING, OPT(db), 0, 0,
	  "SQLite database of rooms, memberships and history", NULL },
	{ "history-size", "WS_HISTORY_SIZE", "N", WS_OPT_UINT, OPT(history_size), 0, 1000000,
	  "messages kept per room, 0 = none", NULL },
	{ "history-on-join", "WS_HISTORY_ON_JOIN", "N", WS_OPT_UINT, OPT(history_on_join), 0,
	  1000000, "recent messages in the welcome (without ?since=)", NULL },
	{ "max-rooms", "WS_MAX_ROOMS", "N", WS_OPT_UINT, OPT(max_rooms), 1, 10000000,
	  "rooms with members at once; a new one over it gets 503", NULL },
	{ "max-room-members", "WS_MAX_ROOM_MEMBERS", "N", WS_OPT_UINT, OPT(max_room_members), 1,
	  10000000, "connections in one room; over it: 503", NULL },
	{ "max-chat-message", "WS_MAX_CHAT_MESSAGE", "BYTES", WS_OPT_SIZE, OPT(max_chat_message),
	  1, 1u << 30, "longest chat text; longer gets an error, the connection stays", NULL },
};

/* Once listening: the server allowlist plus SQLite's file calls. */
static int
bc_confine(void *app, const struct ws_config *cfg)
{
	return ws_sandbox_confine_server(WS_SANDBOX_SELF_BROADCAST, NULL, cfg->no_self_sandbox);
}

int
main(int argc, char **argv)
{
	static struct bc bc = {
		.opt = {
			.db = "ws-broadcast.db",
			.history_size = 1000,
			.history_on_join = 20,
			.max_rooms = 10000,
			.max_room_members = 10000,
			.max_chat_message = 64 * 1024,
		},
	};
	struct ws_config cfg;
	ws_config_defaults(&cfg, 8081);
	cfg.rate_limit = 20;
	cfg.rate_burst = 40;
	cfg.max_message = 256 * 1024;
	cfg.send_queue = 1024 * 1024;
	struct ws_option_table extra = { bc_opts, sizeof(bc_opts) / sizeof(bc_opts[0]), &bc.opt };
	enum ws_config_result parsed = ws_config_parse(&cfg, &extra, "ws-broadcast",
				"Chat rooms keyed by ?id=, with presence and history in SQLite.",
				argc, argv);
	if (parsed != WS_CONFIG_RUN)
		return ws_config_exit_status(parsed);
	ws_log_init(cfg.level, cfg.format);

	char err[512];
	bc.store = bc_store_open(bc.opt.db, bc.opt.history_size, err, sizeof(err));
	if (!bc.store) {
		ws_log(WS_LOG_ERROR, "db-open failed=yes text=\"%s\"", err);
		return WS_EXIT_SYSTEM;
	}
	int closed = bc_store_recover(bc.store, ws_clock_wall_ms());
	if (closed < 0) {
		bc_store_destroy(bc.store);
		return WS_EXIT_SYSTEM;
	}
	ws_log(WS_LOG_INFO, "db path=%s recovered_memberships=%d", bc.opt.db, closed);

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
		.deferred = end_turn,
		.metrics = bc_metrics,
	};
	int status = ws_server_run(&app, &bc, &cfg);
	ws_config_finish(&cfg);
	end_turn(&bc);
	bc_store_destroy(bc.store);
	free(bc.pending);
	ws_buf_finish(&bc.frames);
	return status;
}
