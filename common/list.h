/*
 * list: an intrusive doubly linked list in wayland's wl_list shape, for the
 * connections of a server, the members of a room, the commands of a session
 * and those of the engine. Each element embeds a struct ws_list, and so does
 * the head; an empty head (and an element on no list) points at itself.
 */
#ifndef WS_LIST_H
#define WS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct ws_list {
	struct ws_list *prev;
	struct ws_list *next;
};

/* The element that embeds link l as its member `member`. */
#define ws_list_entry(l, type, member) ((type *)(void *)((char *)(l)-offsetof(type, member)))

/* Walks the links of head's elements, front to back; the body must not remove l. */
#define ws_list_for_each(l, head) for (struct ws_list *l = (head)->next; l != (head); l = l->next)

static inline void
ws_list_init(struct ws_list *l)
{
	l->prev = l->next = l;
}

static inline bool
ws_list_empty(const struct ws_list *l)
{
	return l->next == l;
}

/* Links elm right after where: at the front when where is the head. */
static inline void
ws_list_insert(struct ws_list *where, struct ws_list *elm)
{
	elm->prev = where;
	elm->next = where->next;
	where->next->prev = elm;
	where->next = elm;
}

/* Unlinks elm and points it at itself, so removing it twice is harmless. */
static inline void
ws_list_remove(struct ws_list *elm)
{
	elm->prev->next = elm->next;
	elm->next->prev = elm->prev;
	ws_list_init(elm);
}

#endif
