/*
 * ident: what both engines (main.c's SQLite rooms and engine_redis.c)
 * derive the same way: a room name's hash-table slot, and random ids of
 * 16 lower-case hex digits (room epochs, the Redis engine's node id).
 */
#ifndef BC_IDENT_H
#define BC_IDENT_H

#include <stdint.h>

#define BC_IDENT_HEX_LEN 16

/* FNV-1a of a NUL-terminated name. */
uint32_t bc_ident_hash(const char *name);

/* 64 random bits in hex (getrandom, pooled; from the clock and pid if it fails). */
void bc_ident_random(char out[BC_IDENT_HEX_LEN + 1]);

#endif
