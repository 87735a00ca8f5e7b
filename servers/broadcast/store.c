#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* PRAGMA application_id of a ws-broadcast database: "wsBC". */
#define APP_ID 0x77734243
#define SCHEMA_VERSION 3
/* While starting (before the port opens) a lock held elsewhere is waited for this long. */
#define START_BUSY_MS 2000
/* The WAL is cut back to this after a checkpoint. */
#define WAL_KEEP_BYTES (16 * 1024 * 1024)
/* Rooms one bc_store_expire() call looks at, at most. */
#define EXPIRE_BATCH_MAX 32
#define ROOM_NAME_MAX 64

enum stmt {
	S_ROOM_GET,
	S_ROOM_ADD,
	S_ROOM_SEQ,
	S_ROOM_TOUCH,
	S_ROOM_OLD,
	S_ROOM_DEL,
	S_ROOM_COUNT,
	S_MSG_ADD,
	S_MSG_PRUNE,
	S_MSG_DEL,
	S_JOIN,
	S_LEAVE,
	S_MEMBER_PRUNE,
	S_HISTORY,
	S_ROOMS,
	S_COUNT
};

static const char *const sql[S_COUNT] = {
	[S_ROOM_GET] = "SELECT next_seq, epoch FROM rooms WHERE name = ?1",
	[S_ROOM_ADD] = "INSERT OR IGNORE INTO rooms(name, created_ms, next_seq, active_ms, epoch) "
		       "VALUES (?1, ?2, ?3, ?2, ?4)",
	[S_ROOM_SEQ] = "UPDATE rooms SET next_seq = ?2, active_ms = ?3 WHERE name = ?1",
	[S_ROOM_TOUCH] = "UPDATE rooms SET active_ms = ?2 WHERE name = ?1",
	[S_ROOM_OLD] = "SELECT name FROM rooms WHERE active_ms < ?1 ORDER BY active_ms LIMIT ?2",
	[S_ROOM_DEL] = "DELETE FROM rooms WHERE name = ?1",
	[S_ROOM_COUNT] = "SELECT count(*) FROM rooms",
	[S_MSG_ADD] = "INSERT OR REPLACE INTO messages(room, seq, sender, text, ts) "
		      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_MSG_PRUNE] = "DELETE FROM messages WHERE room = ?1 AND seq <= ?2",
	[S_MSG_DEL] = "DELETE FROM messages WHERE room = ?1",
	[S_JOIN] = "INSERT INTO memberships(id, room, user, conn_id, addr, joined_ms) "
		   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_LEAVE] = "UPDATE memberships SET left_ms = ?2, reason = ?3 WHERE id = ?1",
	[S_MEMBER_PRUNE] = "DELETE FROM memberships WHERE id IN (SELECT id FROM memberships "
			   "WHERE id < ?1 AND left_ms IS NOT NULL ORDER BY id LIMIT ?2)",
	[S_HISTORY] = "SELECT seq, sender, text, ts FROM messages WHERE room = ?1 AND seq > ?2 "
		      "ORDER BY seq LIMIT ?3",
	[S_ROOMS] = "SELECT name, next_seq FROM rooms ORDER BY name LIMIT ?1",
};

static const char schema[] =
	"CREATE TABLE rooms ("
	"  name TEXT PRIMARY KEY,"
	"  created_ms INTEGER NOT NULL,"
	"  next_seq INTEGER NOT NULL,"
	"  active_ms INTEGER NOT NULL DEFAULT 0,"
	"  epoch TEXT NOT NULL DEFAULT ''"
	") WITHOUT ROWID;"
	"CREATE INDEX rooms_active ON rooms(active_ms);"
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

/*
 * Version 1 had no room activity time: every room counts as active at the
 * upgrade, so none expires sooner than --room-expiry after it.
 */
static const char migrate_1_to_2[] =
	"ALTER TABLE rooms ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;"
	"UPDATE rooms SET active_ms = "
	"  max(created_ms, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));"
	"CREATE INDEX rooms_active ON rooms(active_ms);"
	"PRAGMA user_version = 2;";

/*
 * Version 2 had no epochs: each stored room gets a random one now, so a
 * client's epoch from before the upgrade no longer matches (it reloads once).
 */
static const char migrate_2_to_3[] = "ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT '';"
				     "UPDATE rooms SET epoch = lower(hex(randomblob(8)));"
				     "PRAGMA user_version = 3;";

struct bc_store {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	struct bc_store_limits lim;
	bool in_tx;
	bool tx_rooms_changed; /* the open transaction added or removed rooms */
	bool failing;          /* the last write failed (log the next failure quietly) */
	uint64_t next_membership;
	uint64_t rooms;
	uint64_t commits, errors;
};

static enum bc_store_status
status_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return BC_STORE_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return BC_STORE_BUSY;
	case SQLITE_FULL:
		return BC_STORE_FULL;
	default:
		return BC_STORE_ERROR;
	}
}

static bool
db_error(struct bc_store *st, const char *what)
{
	st->errors++;
	ws_log(WS_LOG_ERROR, "db-error op=\"%s\" error=\"%s\"", what, sqlite3_errmsg(st->db));
	return false;
}

static bool
exec(struct bc_store *st, const char *q)
{
	return sqlite3_exec(st->db, q, NULL, NULL, NULL) == SQLITE_OK || db_error(st, q);
}

static int64_t
query_int(sqlite3 *db, const char *q, bool *ok)
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

static void
count_rooms(struct bc_store *st)
{
	sqlite3_stmt *s = st->st[S_ROOM_COUNT];
	if (sqlite3_step(s) == SQLITE_ROW)
		st->rooms = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
}

/*
 * A write failed with rc: the open transaction is rolled back whole (SQLite
 * may already have done it), so no later commit can hold half a turn.
 */
static enum bc_store_status
write_failed(struct bc_store *st, int rc, const char *what)
{
	enum bc_store_status s = status_of(rc);
	if (s == BC_STORE_OK)
		s = BC_STORE_ERROR;
	st->errors++;
	/* one line when the store starts failing, not one per message while it does */
	ws_log(st->failing ? WS_LOG_DEBUG : WS_LOG_ERROR,
	       "db-error op=\"%s\" status=%s error=\"%s\"", what,
	       s == BC_STORE_BUSY   ? "busy"
	       : s == BC_STORE_FULL ? "full"
				    : "error",
	       sqlite3_errmsg(st->db));
	st->failing = true;
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	st->in_tx = false;
	if (st->tx_rooms_changed) {
		st->tx_rooms_changed = false;
		count_rooms(st);
	}
	return s;
}

static void
write_ok(struct bc_store *st)
{
	if (st->failing)
		ws_log(WS_LOG_INFO, "db-recovered");
	st->failing = false;
}

/* Creates the schema in a new file, or checks an existing one is ours and migrates it. */
static bool
prepare_schema(struct bc_store *st, const char *path, char *err, size_t errlen)
{
	bool ok;
	int64_t app = query_int(st->db, "PRAGMA application_id", &ok);
	if (!ok) {
		snprintf(err, errlen, "%s: cannot read database: %s", path, sqlite3_errmsg(st->db));
		return false;
	}
	int64_t tables = query_int(st->db, "SELECT count(*) FROM sqlite_master", &ok);
	if (app == 0 && tables == 0) {
		char q[128];
		snprintf(q, sizeof(q), "PRAGMA application_id = %d; PRAGMA user_version = %d;",
			 APP_ID, SCHEMA_VERSION);
		if (!exec(st, "BEGIN") || !exec(st, schema) || !exec(st, q) ||
		    !exec(st, "COMMIT")) {
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
	int64_t ver = query_int(st->db, "PRAGMA user_version", &ok);
	if (ver > SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: schema version %lld is newer than this server's %d",
			 path, (long long)ver, SCHEMA_VERSION);
		return false;
	}
	if (ver < 2 && (!exec(st, "BEGIN") || !exec(st, migrate_1_to_2) || !exec(st, "COMMIT"))) {
		snprintf(err, errlen, "%s: cannot migrate schema to version 2: %s", path,
			 sqlite3_errmsg(st->db));
		return false;
	}
	if (ver < 3 && (!exec(st, "BEGIN") || !exec(st, migrate_2_to_3) || !exec(st, "COMMIT"))) {
		snprintf(err, errlen, "%s: cannot migrate schema to version 3: %s", path,
			 sqlite3_errmsg(st->db));
		return false;
	}
	return true;
}

/* Caps the file at max_db_bytes; a file already larger keeps its size but cannot grow. */
static bool
cap_size(struct bc_store *st, const char *path, char *err, size_t errlen)
{
	bool ok;
	int64_t page = query_int(st->db, "PRAGMA page_size", &ok);
	if (!ok || page <= 0) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		return false;
	}
	uint64_t pages = st->lim.max_db_bytes / (uint64_t)page;
	if (pages < 8)
		pages = 8;
	char q[96];
	snprintf(q, sizeof(q), "PRAGMA max_page_count = %llu", (unsigned long long)pages);
	int64_t got = query_int(st->db, q, &ok);
	if (!ok) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		return false;
	}
	if ((uint64_t)got > pages)
		ws_log(WS_LOG_WARN,
		       "db-over-size path=%s size=%llu max=%llu text=\"stored rows "
		       "can only be replaced until expiry frees pages\"",
		       path, (unsigned long long)got * (unsigned long long)page,
		       (unsigned long long)st->lim.max_db_bytes);
	snprintf(q, sizeof(q), "PRAGMA journal_size_limit = %d", WAL_KEEP_BYTES);
	query_int(st->db, q, &ok);
	return true;
}

struct bc_store *
bc_store_open(const char *path, const struct bc_store_limits *lim, char *err, size_t errlen)
{
	struct bc_store *st = calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	st->lim = *lim;
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
			 st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, START_BUSY_MS);
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
	if (!cap_size(st, path, err, errlen))
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(st->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->st[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
			goto fail;
		}
	}
	bool ok;
	int64_t maxid = query_int(st->db, "SELECT coalesce(max(id), 0) FROM memberships", &ok);
	if (!ok) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
		goto fail;
	}
	st->next_membership = (uint64_t)maxid + 1;
	count_rooms(st);

	/* a smaller --history-size than last time applies to what is stored */
	char q[256];
	snprintf(q, sizeof(q),
		 "DELETE FROM messages WHERE seq <= (SELECT next_seq - 1 FROM rooms "
		 "WHERE rooms.name = messages.room) - %u",
		 lim->history_size);
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

static enum bc_store_status
begin(struct bc_store *st)
{
	if (st->in_tx)
		return BC_STORE_OK;
	int rc = sqlite3_exec(st->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return write_failed(st, rc, "BEGIN IMMEDIATE");
	st->in_tx = true;
	return BC_STORE_OK;
}

enum bc_store_status
bc_store_commit(struct bc_store *st)
{
	if (!st->in_tx)
		return BC_STORE_OK;
	int rc = sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return write_failed(st, rc, "COMMIT");
	st->in_tx = false;
	st->tx_rooms_changed = false;
	st->commits++;
	write_ok(st);
	return BC_STORE_OK;
}

/* Runs a bound write statement to completion and resets it; rolls back on failure. */
static enum bc_store_status
step_done(struct bc_store *st, enum stmt i)
{
	int rc = sqlite3_step(st->st[i]);
	sqlite3_reset(st->st[i]);
	sqlite3_clear_bindings(st->st[i]);
	return rc == SQLITE_DONE ? BC_STORE_OK : write_failed(st, rc, sql[i]);
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
	/* serving from now on: a lock held elsewhere fails a write at once, never stalls */
	sqlite3_busy_timeout(st->db, 0);
	return sqlite3_changes(st->db);
}

enum bc_store_lookup
bc_store_room_lookup(struct bc_store *st, const char *room, uint64_t *next_seq,
		     char epoch[BC_EPOCH_LEN + 1])
{
	sqlite3_stmt *s = st->st[S_ROOM_GET];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*next_seq = (uint64_t)sqlite3_column_int64(s, 0);
		if (epoch) {
			const char *e = (const char *)sqlite3_column_text(s, 1);
			snprintf(epoch, BC_EPOCH_LEN + 1, "%s", e ? e : "");
		}
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_ROW)
		return BC_STORE_FOUND;
	if (rc == SQLITE_DONE)
		return BC_STORE_ABSENT;
	db_error(st, "room lookup");
	return BC_STORE_LOOKUP_ERROR;
}

/* Inserts a room row with the given next seq; counts it when it is new. */
static enum bc_store_status
room_insert(struct bc_store *st, const char *room, uint64_t next_seq, uint64_t now_ms,
	    const char *epoch)
{
	sqlite3_stmt *s = st->st[S_ROOM_ADD];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now_ms);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)next_seq);
	sqlite3_bind_text(s, 4, epoch ? epoch : "", -1, SQLITE_STATIC);
	enum bc_store_status r = step_done(st, S_ROOM_ADD);
	if (r == BC_STORE_OK && sqlite3_changes(st->db) == 1) {
		st->rooms++;
		st->tx_rooms_changed = true;
	}
	return r;
}

enum bc_store_status
bc_store_room_add(struct bc_store *st, const char *room, const char *epoch, uint64_t now_ms)
{
	enum bc_store_status r = begin(st);
	return r != BC_STORE_OK ? r : room_insert(st, room, 1, now_ms, epoch);
}

enum bc_store_status
bc_store_room_touch(struct bc_store *st, const char *room, uint64_t now_ms)
{
	enum bc_store_status r = begin(st);
	if (r != BC_STORE_OK)
		return r;
	sqlite3_stmt *s = st->st[S_ROOM_TOUCH];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)now_ms);
	return step_done(st, S_ROOM_TOUCH);
}

uint64_t
bc_store_room_count(const struct bc_store *st)
{
	return st->rooms;
}

enum bc_store_status
bc_store_message(struct bc_store *st, const char *room, const struct bc_message *m)
{
	enum bc_store_status r = begin(st);
	if (r != BC_STORE_OK)
		return r;
	sqlite3_stmt *s = st->st[S_ROOM_SEQ];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)(m->seq + 1));
	sqlite3_bind_int64(s, 3, (sqlite3_int64)m->ts);
	if ((r = step_done(st, S_ROOM_SEQ)) != BC_STORE_OK)
		return r;
	/* the room's row went with a failed turn: store it again, seq and all */
	if (sqlite3_changes(st->db) == 0 &&
	    (r = room_insert(st, room, m->seq + 1, m->ts, m->epoch)) != BC_STORE_OK)
		return r;
	if (st->lim.history_size == 0)
		return BC_STORE_OK;
	/* prune first: the pages it frees make room for the new row at the size cap */
	if (m->seq > st->lim.history_size) {
		s = st->st[S_MSG_PRUNE];
		sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)(m->seq - st->lim.history_size));
		if ((r = step_done(st, S_MSG_PRUNE)) != BC_STORE_OK)
			return r;
	}
	s = st->st[S_MSG_ADD];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)m->seq);
	sqlite3_bind_text(s, 3, m->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, m->text, (int)m->text_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)m->ts);
	return step_done(st, S_MSG_ADD);
}

enum bc_store_status
bc_store_join(struct bc_store *st, uint64_t membership, const char *room, const char *user,
	      uint64_t conn_id, const char *addr, uint64_t now_ms)
{
	enum bc_store_status r = begin(st);
	if (r != BC_STORE_OK)
		return r;
	sqlite3_stmt *s = st->st[S_JOIN];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)membership);
	sqlite3_bind_text(s, 2, room, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, user, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)conn_id);
	sqlite3_bind_text(s, 5, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)now_ms);
	return step_done(st, S_JOIN);
}

enum bc_store_status
bc_store_leave(struct bc_store *st, uint64_t membership, uint64_t now_ms, const char *reason)
{
	enum bc_store_status r = begin(st);
	if (r != BC_STORE_OK)
		return r;
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
		 bool (*fn)(void *ctx, const struct bc_message *m), void *ctx)
{
	sqlite3_stmt *s = st->st[S_HISTORY];
	sqlite3_bind_text(s, 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, since > INT64_MAX ? INT64_MAX : (sqlite3_int64)since);
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
		if (!m.from || !m.text) {
			rc = SQLITE_NOMEM;
			break;
		}
		if (!fn(ctx, &m)) {
			rc = SQLITE_DONE;
			break;
		}
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

/* Binds a room name to statement i and runs it to completion. */
static enum bc_store_status
room_step(struct bc_store *st, enum stmt i, const char *room)
{
	sqlite3_bind_text(st->st[i], 1, room, -1, SQLITE_STATIC);
	return step_done(st, i);
}

int
bc_store_expire(struct bc_store *st, uint64_t before_ms, uint64_t now_ms, uint32_t limit,
		bool (*in_use)(void *ctx, const char *room), void *ctx)
{
	char names[EXPIRE_BATCH_MAX][ROOM_NAME_MAX + 1];
	int n = 0;
	if (limit > EXPIRE_BATCH_MAX)
		limit = EXPIRE_BATCH_MAX;
	/* read the batch first: no table is changed under a running SELECT */
	sqlite3_stmt *s = st->st[S_ROOM_OLD];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)before_ms);
	sqlite3_bind_int64(s, 2, limit);
	int rc;
	while (n < (int)limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		if (name && strlen(name) <= ROOM_NAME_MAX)
			strcpy(names[n++], name);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (n == 0)
		return 0;
	if (begin(st) != BC_STORE_OK)
		return -1;
	for (int i = 0; i < n; i++) {
		if (in_use(ctx, names[i])) {
			/* occupied rooms are not idle: move them to the back of the queue */
			if (bc_store_room_touch(st, names[i], now_ms) != BC_STORE_OK)
				return -1;
			continue;
		}
		if (room_step(st, S_MSG_DEL, names[i]) != BC_STORE_OK ||
		    room_step(st, S_ROOM_DEL, names[i]) != BC_STORE_OK)
			return -1;
		if (sqlite3_changes(st->db) == 1 && st->rooms) {
			st->rooms--;
			st->tx_rooms_changed = true;
		}
		ws_log(WS_LOG_INFO, "room-expired room=%s", names[i]);
	}
	return n;
}

int
bc_store_prune_memberships(struct bc_store *st, uint32_t limit)
{
	if (st->next_membership <= (uint64_t)st->lim.max_memberships + 1)
		return 0;
	if (begin(st) != BC_STORE_OK)
		return -1;
	sqlite3_stmt *s = st->st[S_MEMBER_PRUNE];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)(st->next_membership - st->lim.max_memberships));
	sqlite3_bind_int64(s, 2, limit);
	if (step_done(st, S_MEMBER_PRUNE) != BC_STORE_OK)
		return -1;
	return sqlite3_changes(st->db);
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
