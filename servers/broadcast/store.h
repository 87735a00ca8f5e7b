/*
 * store: ws-broadcast's SQLite database (WAL): rooms and their next seq,
 * memberships, and each room's recent messages. Writes join one
 * transaction that stays open until bc_store_commit(), so the server
 * commits once per loop turn however many messages arrived in it.
 */
#ifndef BC_STORE_H
#define BC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bc_store;

struct bc_message {
	uint64_t seq;
	const char *from;
	const char *text;
	size_t text_len;
	uint64_t ts;
};

/*
 * Opens (creating or migrating) the database at path. On failure returns
 * NULL with a one-line reason in err, naming the path. A file that is not
 * SQLite, or another application's database, is refused.
 */
struct bc_store *bc_store_open(const char *path, uint32_t history_size, char *err,
			       size_t errlen);
/* Commits what is pending and closes. NULL is a no-op. */
void bc_store_destroy(struct bc_store *st);

/* Closes memberships a crash left open (reason "restart"); returns how many, or -1. */
int bc_store_recover(struct bc_store *st, uint64_t now_ms);

/* The next seq of a room, creating the room (next seq 1) when new; 0 on error. */
uint64_t bc_store_room(struct bc_store *st, const char *room, uint64_t now_ms);
/* Whether the room exists; *next_seq gets its next seq. */
bool bc_store_room_lookup(struct bc_store *st, const char *room, uint64_t *next_seq);

/* These join the open transaction; false on a database error (logged). */
bool bc_store_message(struct bc_store *st, const char *room, const struct bc_message *m);
bool bc_store_join(struct bc_store *st, uint64_t membership, const char *room,
		   const char *user, uint64_t conn_id, const char *addr, uint64_t now_ms);
bool bc_store_leave(struct bc_store *st, uint64_t membership, uint64_t now_ms,
		    const char *reason);

/* A fresh membership id (unique across restarts). */
uint64_t bc_store_next_membership(struct bc_store *st);

/* Commits the open transaction, if any; false on error (logged). */
bool bc_store_commit(struct bc_store *st);

/*
 * Calls fn for the room's stored messages with seq > since, oldest first,
 * at most `limit` of them (the newest ones when there are more).
 */
bool bc_store_history(struct bc_store *st, const char *room, uint64_t since, uint32_t limit,
		      void (*fn)(void *ctx, const struct bc_message *m), void *ctx);

/* Calls fn for every room (name order, at most `limit`). */
bool bc_store_rooms(struct bc_store *st, uint32_t limit,
		    void (*fn)(void *ctx, const char *room, uint64_t next_seq), void *ctx);

uint64_t bc_store_commits(const struct bc_store *st);
uint64_t bc_store_errors(const struct bc_store *st);

#endif
