/*
 * buf: append, consume, growth, reclaiming the consumed head, and the
 * overflow guard.
 */
#include "buf.h"

#include <string.h>

#include "check.h"

static void
append_consume(void)
{
	struct ws_buf b = { 0 };
	CHECK(b.data == NULL);
	CHECK(ws_buf_append(&b, "hello ", 6));
	CHECK(ws_buf_append(&b, "world", 5));
	CHECK_MEM(ws_buf_begin(&b), b.len, "hello world", 11);
	CHECK(ws_buf_end(&b) == ws_buf_begin(&b) + 11);

	ws_buf_consume(&b, 6);
	CHECK_MEM(ws_buf_begin(&b), b.len, "world", 5);
	CHECK_UINT(b.head, 6);
	CHECK(ws_buf_append(&b, "!", 1));
	CHECK_MEM(ws_buf_begin(&b), b.len, "world!", 6);
	ws_buf_finish(&b);
}

static void
consume_all_resets(void)
{
	struct ws_buf b = { 0 };
	CHECK(ws_buf_append(&b, "abc", 3));
	ws_buf_consume(&b, 3);
	CHECK_UINT(b.len, 0);
	CHECK_UINT(b.head, 0);
	CHECK(ws_buf_append(&b, "xy", 2));
	ws_buf_consume(&b, 100); /* more than held: empty, not negative */
	CHECK_UINT(b.len, 0);
	CHECK_UINT(b.head, 0);
	ws_buf_consume(&b, 0);
	CHECK_UINT(b.len, 0);
	ws_buf_finish(&b);
}

static void
grows(void)
{
	struct ws_buf b = { 0 };
	uint8_t chunk[1000];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)i;
	for (int i = 0; i < 100; i++) {
		if (!CHECK(ws_buf_append(&b, chunk, sizeof(chunk))))
			break;
		CHECK(b.cap >= b.len);
	}
	CHECK_UINT(b.len, 100000);
	bool same = true;
	for (int i = 0; i < 100; i++)
		same &= memcmp(ws_buf_begin(&b) + i * 1000, chunk, 1000) == 0;
	CHECK(same);
	ws_buf_finish(&b);
	CHECK(b.data == NULL);
	CHECK_UINT(b.cap, 0);
	CHECK_UINT(b.len, 0);
}

static void
reserve_reclaims_head(void)
{
	struct ws_buf b = { 0 };
	CHECK(ws_buf_reserve(&b, 100));
	uint32_t cap = b.cap;
	CHECK(cap >= 100);
	uint8_t *data = b.data;
	uint8_t fill[512];
	memset(fill, 'f', sizeof(fill));
	CHECK(ws_buf_append(&b, fill, cap - 10));
	CHECK(ws_buf_append(&b, "tail", 4));
	ws_buf_consume(&b, cap - 10);
	/* room at the front is reused instead of growing */
	CHECK(ws_buf_reserve(&b, cap - 4));
	CHECK_UINT(b.cap, cap);
	CHECK(b.data == data);
	CHECK_UINT(b.head, 0);
	CHECK_MEM(ws_buf_begin(&b), b.len, "tail", 4);
	/* and room at the back needs nothing */
	CHECK(ws_buf_append(&b, fill, cap - 4));
	CHECK_UINT(b.len, cap);
	CHECK_UINT(b.cap, cap);
	ws_buf_finish(&b);
}

static void
reserve_keeps_data_when_growing(void)
{
	struct ws_buf b = { 0 };
	CHECK(ws_buf_append(&b, "0123456789", 10));
	ws_buf_consume(&b, 4);
	CHECK(ws_buf_reserve(&b, 100000));
	CHECK_UINT(b.head, 0);
	CHECK(b.cap >= 100006);
	CHECK_MEM(ws_buf_begin(&b), b.len, "456789", 6);
	ws_buf_finish(&b);
}

static void
overflow_refused(void)
{
	struct ws_buf b = { 0 };
	CHECK(ws_buf_append(&b, "x", 1));
	/* would pass the 32-bit length */
	CHECK(!ws_buf_reserve(&b, UINT32_MAX));
	CHECK(!ws_buf_reserve(&b, SIZE_MAX));
	CHECK(!ws_buf_append(&b, "y", SIZE_MAX));
	CHECK_MEM(ws_buf_begin(&b), b.len, "x", 1);
	ws_buf_finish(&b);
}

static void
empty_operations(void)
{
	struct ws_buf b = { 0 };
	CHECK(ws_buf_reserve(&b, 0));
	CHECK(ws_buf_append(&b, NULL, 0));
	CHECK(ws_buf_append(&b, "", 0));
	CHECK_UINT(b.len, 0);
	ws_buf_consume(&b, 1);
	ws_buf_finish(&b);
	ws_buf_finish(&b); /* twice is fine */
	/* reusable after finish */
	CHECK(ws_buf_append(&b, "again", 5));
	CHECK_MEM(ws_buf_begin(&b), b.len, "again", 5);
	ws_buf_finish(&b);
}

static const struct check_case cases[] = {
	{ "append-consume", append_consume },
	{ "consume-all-resets", consume_all_resets },
	{ "grows", grows },
	{ "reserve-reclaims-head", reserve_reclaims_head },
	{ "reserve-keeps-data-when-growing", reserve_keeps_data_when_growing },
	{ "overflow-refused", overflow_refused },
	{ "empty-operations", empty_operations },
};

CHECK_MAIN(cases)
