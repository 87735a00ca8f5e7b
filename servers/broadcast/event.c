#include "event.h"

#include <string.h>

/* Digits at p (at most 19: no uint64_t overflow) up to a space; the index after the space. */
static bool
number(const char *p, size_t n, size_t *i, uint64_t *v)
{
	size_t start = *i;
	*v = 0;
	while (*i < n && p[*i] >= '0' && p[*i] <= '9' && *i - start < 19)
		*v = *v * 10 + (uint64_t)(p[(*i)++] - '0');
	if (*i == start || *i >= n || p[*i] != ' ')
		return false;
	(*i)++;
	return true;
}

bool
bc_event_parse(const char *p, size_t n, struct bc_event *out)
{
	size_t i = 0;
	if (!p || !number(p, n, &i, &out->ev) || !number(p, n, &i, &out->seq) || out->ev == 0)
		return false;
	if (n - i < 2 || p[i] != '{' || p[n - 1] != '}')
		return false;
	out->json = p + i;
	out->len = n - i;
	return true;
}

bool
bc_relay_parse(const char *p, size_t n, struct bc_relay *out)
{
	if (!p || n < 1 + 16 + 1 + 1 + 1 || p[0] != 'B' || p[17] != ':')
		return false;
	for (size_t i = 1; i < 17; i++) {
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	}
	memcpy(out->node, p + 1, 16);
	out->node[16] = '\0';
	size_t i = 18;
	if (!number(p, n, &i, &out->member))
		return false;
	out->data = (const uint8_t *)p + i;
	out->len = n - i;
	return true;
}
