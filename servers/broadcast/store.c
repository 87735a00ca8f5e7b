#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* PRAGMA application_id of a ws-broadcast database: "wsBC". */
#define APP_ID 0x77734243
#define SCHEMA_VERSION 1

enum stmt {
	S_ROOM_GET,
	S_ROOM_ADD,
	S_ROOM_SEQ,
	S_MSG_ADD,
	S_MSG_PRUNE,
	S_JOIN,
	S_LEAVE,
	S_HISTORY,
	S_ROOMS,
	S_COUNT
};

static const char *const sql[S_COUNT] = {
	[S_ROOM_GET] = "SELECT next_seq FROM rooms WHERE name = ?1",
	[S_ROOM_ADD] = "INSERT OR IGNORE INTO rooms(name, created_ms, next_seq) VALUES (?1, ?2, 1)",
	[S_ROOM_SEQ] = "UPDATE rooms SET next_seq = ?2 WHERE name = ?1",
	[S_MSG_ADD] = "INSERT OR REPLACE INTO messages(room, seq, sender, text, ts) "
		      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_MSG_PRUNE] = "DELETE FROM messages WHERE room = ?1 AND seq <= ?2",
	[S_JOIN] = "INSERT INTO memberships(id, room, user, conn_id, addr, joined_ms) "
		   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_LEAVE] = "UPDATE memberships SET left_ms = ?2, reason = ?3 WHERE id = ?1",
	[S_HISTORY] = "SELECT seq, sender, text, ts FROM (SELECT seq, sender, text, ts FROM "
		      "messages WHERE room = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3) "
		      "ORDER BY seq",
	[S_ROOMS] = "SELECT name, next_seq FROM rooms ORDER BY name LIMIT ?1",
};

static const char schema[] =
	"CREATE TABLE rooms ("
	"  name TEXT PRIMARY KEY,"
	"  created_ms INTEGER NOT NULL,"
	"  next_seq INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE memberships ("
	"  id INTEGER PRIMARY KEY,"
	"  room TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  conn_id INTEGER NOT NULL,"
	"  addr TEXT NOT NULL,"
	"  joined_ms INTEGER NOT NULL,"
	"  left_ms INTEGER,"
	"  reason TEXT"
	");"
	"CREATE INDEX memberships_open ON memberships(left_ms) WHERE left_ms IS NULL;"
	"CREATE TABLE messages ("
	"  room TEXT NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  sender TEXT NOT NULL,"
	"  text TEXT NOT NULL,"
	"  ts INTEGER NOT NULL,"
	"  PRIMARY KEY (room, seq)"
	") WITHOUT ROWID;";

struct bc_store {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	uint32_t history_size;
	bool in_tx;
	uint64_t next_membership;
	uint64_t commits, errors;
};

static bool
db_error(struct bc_store *st, const char *what)
{
	st->errors++;
	ws_log(WS_LOG_ERROR, "db-error op=%s error=\"%s\"", what, sqlite3_errmsg(st->db));
	return false;
}

static bool
exec(struct bc_store *st, const char *q)
{
	return sqlite3_exec(st->db, q, NULL, NULL, NULL) == SQLITE_OK || db_error(st, q);
}

static int64_t
pragma_int(sqlite3 *db, const char *q, bool *ok)
{
	sqlite3_stmt *s;
	int64_t v = -1;
	*ok = false;
	if (sqlite3_prepare_v2(db, q, -1, &s, NULL) != SQLITE_OK)
		return v;
	if (sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int64(s, 0);
		*ok = true;
	}
	sqlite3_finalize(s);
	return v;
}

/* Creates the schema in a new file, or checks an existing one is ours. */
static bool
prepare_schema(struct bc_store *st, const char *path, char *err, size_t errlen)
{
	bool ok;
	int64_t app = pragma_int(st->db, "PRAGMA application_id", &ok);
	if (!ok) {
		snprintf(err, errlen, "%s: cannot read database: %s", path, sqlite3_errmsg(st->db));
		return false;
	}
	int64_t tables = pragma_int(st->db, "SELECT count(*) FROM sqlite_master", &ok);
	if (app == 0 && tables == 0) {
		char q[128];
		snprintf(q, sizeof(q), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
			 APP_ID, SCHEMA_VERSION);
		if (!exec(st, "BEGIN") || !exec(st, schema) || !exec(st, q) || !exec(st, "COMMIT")) {
			snprintf(err, errlen, "%s: cannot create schema: %s", path,
				 sqlite3_errmsg(st->db));
			return false;
		}
		return true;
	}
	if (app != APP_ID) {
		snprintf(err, errlen, "%s: not a ws-broadcast database (application_id %lld)", path,
			 (long long)app);
		return false;
	}
	int64_t ver = pragma_int(st->db, "PRAGMA user_version", &ok);
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this server's %d", path,
			 (long long)ver, SCHEMA_VERSION);
		return false;
	}
	/* migrations from older versions go here, one step per version */
	return true;
}

struct bc_store *
bc_store_open(const char *path, uint32_t history_size, char *err, size_t errlen)
{
	struct bc_store *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	st->history_size = history_size;
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 2000);
	if (!prepare_schema(st, path, err, errlen))
		goto fail;

	sqlite3_stmt *s;
	const char *mode = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		mode = (const char *)sqlite3_column_text(s, 0);
	bool wal = mode && strcmp(mode, "wal") == 0;
	sqlite3_finalize(s);
	if (!wal) {
		snprintf(err, errlen, "%s: cannot switch to WAL mode", path);
		goto fail;
	}
	/* NORMAL in WAL: a commit survives any crash of this process (not power loss) */
	if (!exec(st, "PRAGMA synchronous = NORMAL") || !exec(st, "PRAGMA foreign_keys = OFF")) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	bool ok;
	int64_t maxid = pragma_int(st->db, "SELECT coalesce(max(id), 0) FROM memberships", &ok);
	if (!ok) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	st->next_membership = (uint64_t)maxid + 1;

	/* a smaller --history-size than last time applies to what is stored */
	char q[256];
	snprintf(q, sizeof(q),
		 "DELETE FROM messages WHERE seq <= (SELECT next_seq - 1 FROM rooms "
		 "WHERE rooms.name = messages.room) - %u",
		 history_size);
	if (!exec(st, q)) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	return st;
fail:
	bc_store_destroy(st);
	return NULL;
}

void
bc_store_destroy(struct bc_store *st)
{
	if (!st)
		return;
	if (st->db)
		bc_store_commit(st);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->st[i]);
	sqlite3_close(st->db);
	free(st);
}

static bool
begin(struct bc_store *st)
{
	if (st->in_tx)
		return true;
	if (!exec(st, "BEGIN IMMEDIATE"))
		return false;
	st->in_tx = true;
	return true;
}

bool
bc_store_commit(struct bc_store *st)
{
	if (!st->in_tx)
		return true;
	st->in_tx = false;
	if (!exec(st, "COMMIT")) {
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return false;
	}
	st->commits++;
	return true;
}

/* Runs a bound write statement to completion and resets it. */
static bool
step_done(struct bc_store *st, enum stmt i)
{
	int rc = sqlite3_step(st->st[i]);
	sqlite3_reset(st->st[i]);
	sqlite3_clear_bindings(st->st[i]);
	return rc == SQLITE_DONE || db_error(st, sql[i]);
}

int
bc_store_recover(struct bc_store *st, uint64_t now_ms)
{
	char q[160];
	snprintf(q, sizeof(q),
		 "UPDATE memberships SET left_ms = %llu, reason = 'restart' WHERE left_ms IS NULL",
		 (unsigned long long)now_ms);
	if (!exec(st, q))
		return -1;
	return sqlite3_changes(st->db);
}

bool
bc_store_room_lookup(struct bc_store *st, const char *room, uint64_t *next_seq)
{
	sqlite3_stmt *s = st->st[S_ROOM_GET];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	bool found = sqlite3_step(s) == SQLITE_ROW;
	if (found)
		*next_seq = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return found;
}

uint64_t
bc_store_room(struct bc_store *st, const char *room, uint64_t now_ms)
{
	uint64_t next;
	if (bc_store_room_lookup(st, room, &next))
		return next;
	if (!begin(st))
		return 0;
	sqlite3_stmt *s = st->st[S_ROOM_ADD];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now_ms);
	return step_done(st, S_ROOM_ADD) ? 1 : 0;
}

bool
bc_store_message(struct bc_store *st, const char *room, const struct bc_message *m)
{
	if (!begin(st))
		return false;
	sqlite3_stmt *s = st->st[S_ROOM_SEQ];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(m->seq + 1));
	if (!step_done(st, S_ROOM_SEQ))
		return false;
	if (st->history_size == 0)
		return true;
	s = st->st[S_MSG_ADD];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)m->seq);
	sqlite3_bind_text(s, 3, m->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, m->text, (int)m->text_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)m->ts);
	if (!step_done(st, S_MSG_ADD))
		return false;
	if (m->seq <= st->history_size)
		return true;
	s = st->st[S_MSG_PRUNE];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(m->seq - st->history_size));
	return step_done(st, S_MSG_PRUNE);
}

bool
bc_store_join(struct bc_store *st, uint64_t membership, const char *room, const char *user,
	      uint64_t conn_id, const char *addr, uint64_t now_ms)
{
	if (!begin(st))
		return false;
	sqlite3_stmt *s = st->st[S_JOIN];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)membership);
	sqlite3_bind_text(s, 2, room, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)conn_id);
	sqlite3_bind_text(s, 5, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)now_ms);
	return step_done(st, S_JOIN);
}

bool
bc_store_leave(struct bc_store *st, uint64_t membership, uint64_t now_ms, const char *reason)
{
	if (!begin(st))
		return false;
	sqlite3_stmt *s = st->st[S_LEAVE];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)membership);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_text(s, 3, reason, -1, SQLITE_STATIC);
	return step_done(st, S_LEAVE);
}

uint64_t
bc_store_next_membership(struct bc_store *st)
{
	return st->next_membership++;
}

bool
bc_store_history(struct bc_store *st, const char *room, uint64_t since, uint32_t limit,
		 void (*fn)(void *ctx, const struct bc_message *m), void *ctx)
{
	sqlite3_stmt *s = st->st[S_HISTORY];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since);
	sqlite3_bind_int64(s, 3, limit);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct bc_message m = {
			.seq = (uint64_t)sqlite3_column_int64(s, 0),
			.from = (const char *)sqlite3_column_text(s, 1),
			.text = (const char *)sqlite3_column_text(s, 2),
			.text_len = (size_t)sqlite3_column_bytes(s, 2),
			.ts = (uint64_t)sqlite3_column_int64(s, 3),
		};
		fn(ctx, &m);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || db_error(st, "history");
}

bool
bc_store_rooms(struct bc_store *st, uint32_t limit,
	       void (*fn)(void *ctx, const char *room, uint64_t next_seq), void *ctx)
{
	sqlite3_stmt *s = st->st[S_ROOMS];
	sqlite3_bind_int64(s, 1, limit);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		fn(ctx, (const char *)sqlite3_column_text(s, 0),
		   (uint64_t)sqlite3_column_int64(s, 1));
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || db_error(st, "rooms");
}

uint64_t
bc_store_commits(const struct bc_store *st)
{
	return st->commits;
}

uint64_t
bc_store_errors(const struct bc_store *st)
{
	return st->errors;
}
