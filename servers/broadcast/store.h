/*
 * store: ws-broadcast's SQLite database (WAL): rooms and their next seq,
 * memberships, and each room's recent messages. Writes join one
 * transaction that stays open until bc_store_commit(), so the server
 * commits once per loop turn however many messages arrived in it.
 *
 * The store never waits for a lock: another writer holding the database
 * makes a write fail at once with BC_STORE_BUSY. A write or commit that
 * fails rolls back the whole open transaction: everything written since
 * the last successful commit is gone, and the caller must treat it so.
 */
#ifndef BC_STORE_H
#define BC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bc_store;

/* An epoch: 16 lower-case hex digits, random, made with the room's history. */
#define BC_EPOCH_LEN 16

struct bc_message {
	uint64_t seq;
	const char *epoch; /* the room's, to store its row again if a failed turn lost it */
	const char *from;
	const char *text;
	size_t text_len;
	uint64_t ts;
};

struct bc_store_limits {
	uint32_t history_size;    /* messages kept per room; 0 = none */
	uint64_t max_db_bytes;    /* the database file's size cap (PRAGMA max_page_count) */
	uint32_t max_memberships; /* closed memberships kept (the newest) */
};

enum bc_store_status {
	BC_STORE_OK = 0,
	BC_STORE_BUSY,  /* another process holds the write lock */
	BC_STORE_FULL,  /* --max-db-size reached, or the disk is full */
	BC_STORE_ERROR, /* anything else (I/O, corruption, OOM) */
};

enum bc_store_lookup {
	BC_STORE_ABSENT = 0,
	BC_STORE_FOUND,
	BC_STORE_LOOKUP_ERROR,
};

/*
 * Opens (creating or migrating) the database at path. On failure returns
 * NULL with a one-line reason in err, naming the path. A file that is not
 * SQLite, or another application's database, is refused.
 */
struct bc_store *bc_store_open(const char *path, const struct bc_store_limits *lim, char *err,
			       size_t errlen);
/* Commits what is pending and closes. NULL is a no-op. */
void bc_store_destroy(struct bc_store *st);

/* Closes memberships a crash left open (reason "restart"); returns how many, or -1. */
int bc_store_recover(struct bc_store *st, uint64_t now_ms);

/*
 * Whether the room is stored; when found, *next_seq gets its next seq and
 * epoch (unless NULL) its epoch ("" for none).
 */
enum bc_store_lookup bc_store_room_lookup(struct bc_store *st, const char *room, uint64_t *next_seq,
					  char epoch[BC_EPOCH_LEN + 1]);
/* Stores a new room (next seq 1, active now) with its epoch. */
enum bc_store_status bc_store_room_add(struct bc_store *st, const char *room, const char *epoch,
				       uint64_t now_ms);
/* Marks a room active now (its last member left): the expiry clock starts. */
enum bc_store_status bc_store_room_touch(struct bc_store *st, const char *room, uint64_t now_ms);
/* Rooms stored (kept up to date by this module). */
uint64_t bc_store_room_count(const struct bc_store *st);

/*
 * These join the open transaction. A message stores its row and the room's
 * next seq (creating the room row if a failed turn lost it).
 */
enum bc_store_status bc_store_message(struct bc_store *st, const char *room,
				      const struct bc_message *m);
enum bc_store_status bc_store_join(struct bc_store *st, uint64_t membership, const char *room,
				   const char *user, uint64_t conn_id, const char *addr,
				   uint64_t now_ms);
enum bc_store_status bc_store_leave(struct bc_store *st, uint64_t membership, uint64_t now_ms,
				    const char *reason);

/* A fresh membership id (unique across restarts). */
uint64_t bc_store_next_membership(struct bc_store *st);

/* Commits the open transaction, if any. */
enum bc_store_status bc_store_commit(struct bc_store *st);

/*
 * Calls fn for the room's stored messages with seq > since, oldest first,
 * at most `limit` of them, until fn returns false.
 */
bool bc_store_history(struct bc_store *st, const char *room, uint64_t since, uint32_t limit,
		      bool (*fn)(void *ctx, const struct bc_message *m), void *ctx);

/* Calls fn for every room (name order, at most `limit`). */
bool bc_store_rooms(struct bc_store *st, uint32_t limit,
		    void (*fn)(void *ctx, const char *room, uint64_t next_seq), void *ctx);

/*
 * Forgets up to `limit` rooms not active since before_ms, with their
 * messages, oldest first. A room for which in_use() is true (it has
 * members) is marked active at now_ms instead. Joins the open transaction.
 * Returns the rooms looked at (expired or marked), or -1 on error.
 */
int bc_store_expire(struct bc_store *st, uint64_t before_ms, uint64_t now_ms, uint32_t limit,
		    bool (*in_use)(void *ctx, const char *room), void *ctx);

/*
 * Deletes up to `limit` closed memberships older than the newest
 * max_memberships. Joins the open transaction. Returns rows deleted, or -1.
 */
int bc_store_prune_memberships(struct bc_store *st, uint32_t limit);

uint64_t bc_store_commits(const struct bc_store *st);
uint64_t bc_store_errors(const struct bc_store *st);

#endif
