/*
 * ratelimit: the token bucket, driven by a fake clock (plain numbers of
 * milliseconds passed to the functions).
 */
#include "clock.h"
#include "ratelimit.h"

#include "check.h"

/* Takes n messages at time t; returns how many were OK (the rest must be DROP). */
static unsigned
take_n(struct ws_rate *r, const struct ws_rate_config *c, uint64_t t, unsigned n)
{
	unsigned ok = 0;
	for (unsigned i = 0; i < n; i++)
		ok += ws_rate_take(r, c, t) == WS_RATE_OK;
	return ok;
}

static void
off(void)
{
	struct ws_rate_config c = { .rate = 0, .burst = 0 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 1000);
	for (unsigned i = 0; i < 100000; i++) {
		if (!CHECK_INT(ws_rate_take(&r, &c, 1000), WS_RATE_OK))
			return;
	}
}

static void
burst(void)
{
	struct ws_rate_config c = { .rate = 10, .burst = 5 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 5000);
	/* a full bucket: burst messages at one instant pass */
	for (unsigned i = 0; i < 5; i++)
		CHECK_INT(ws_rate_take(&r, &c, 5000), WS_RATE_OK);
	CHECK_INT(ws_rate_take(&r, &c, 5000), WS_RATE_DROP);

	/* burst 1 allows exactly one */
	c = (struct ws_rate_config){ .rate = 1, .burst = 1 };
	ws_rate_init(&r, &c, 0);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_OK);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_DROP);
}

static void
refill(void)
{
	/* 10/s: one token per 100 ms */
	struct ws_rate_config c = { .rate = 10, .burst = 2 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 1000);
	CHECK_UINT(take_n(&r, &c, 1000, 2), 2);
	CHECK_INT(ws_rate_take(&r, &c, 1099), WS_RATE_DROP); /* 0.99 tokens */
	CHECK_INT(ws_rate_take(&r, &c, 1100), WS_RATE_OK);   /* 1.00 */
	CHECK_INT(ws_rate_take(&r, &c, 1100), WS_RATE_DROP);
	CHECK_UINT(take_n(&r, &c, 1300, 3), 2); /* 2 tokens, capped */

	/* 3/s: 333.33 ms per token, fractions carried between calls */
	c = (struct ws_rate_config){ .rate = 3, .burst = 2 };
	ws_rate_init(&r, &c, 0);
	CHECK_UINT(take_n(&r, &c, 0, 2), 2);
	CHECK_INT(ws_rate_take(&r, &c, 333), WS_RATE_DROP); /* 0.999 */
	CHECK_INT(ws_rate_take(&r, &c, 334), WS_RATE_OK);   /* 1.002, 0.002 left */
	CHECK_INT(ws_rate_take(&r, &c, 666), WS_RATE_DROP); /* 0.998 */
	CHECK_INT(ws_rate_take(&r, &c, 667), WS_RATE_OK);   /* 1.001 */

	/* many small steps add up like one big one */
	c = (struct ws_rate_config){ .rate = 7, .burst = 100 };
	ws_rate_init(&r, &c, 0);
	CHECK_UINT(take_n(&r, &c, 0, 100), 100);
	unsigned ok = 0;
	for (uint64_t t = 1; t <= 10000; t++)
		ok += ws_rate_take(&r, &c, t) == WS_RATE_OK;
	CHECK_UINT(ok, 70); /* 7/s for 10 s */

	/* a full bucket holds no fraction: refill stops at the cap */
	c = (struct ws_rate_config){ .rate = 3, .burst = 1 };
	ws_rate_init(&r, &c, 0);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_OK);
	CHECK_INT(ws_rate_take(&r, &c, 400), WS_RATE_OK);   /* 1.2, capped at 1 */
	CHECK_INT(ws_rate_take(&r, &c, 733), WS_RATE_DROP); /* 0.999 */
	CHECK_INT(ws_rate_take(&r, &c, 734), WS_RATE_OK);

	/* a high rate: 1000/s is one token per millisecond */
	c = (struct ws_rate_config){ .rate = 1000, .burst = 1 };
	ws_rate_init(&r, &c, 0);
	ok = 0;
	for (uint64_t t = 0; t < 1000; t++)
		ok += take_n(&r, &c, t, 3);
	CHECK_UINT(ok, 1000);
}

/*
 * Dropping is first a DROP; when the drops since the bucket was last full
 * pass the burst, it is a FLOOD (close the connection).
 */
static void
drop_then_flood(void)
{
	struct ws_rate_config c = { .rate = 10, .burst = 3 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 0);
	CHECK_UINT(take_n(&r, &c, 0, 3), 3);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_DROP);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_DROP);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_DROP);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_FLOOD);
	CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_FLOOD);

	/* a token refilled meanwhile lets one through, but the flood count stays */
	CHECK_INT(ws_rate_take(&r, &c, 100), WS_RATE_OK);
	CHECK_INT(ws_rate_take(&r, &c, 100), WS_RATE_FLOOD);

	/* once the bucket is full again, the count starts over */
	CHECK_INT(ws_rate_take(&r, &c, 1000), WS_RATE_OK);
	CHECK_UINT(take_n(&r, &c, 1000, 2), 2);
	CHECK_INT(ws_rate_take(&r, &c, 1000), WS_RATE_DROP);
}

/* A client that keeps just under the rate is never dropped. */
static void
steady_under_rate(void)
{
	struct ws_rate_config c = { .rate = 20, .burst = 1 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 0);
	for (uint64_t t = 0; t < 60000; t += 50) {
		if (!CHECK_INT(ws_rate_take(&r, &c, t), WS_RATE_OK))
			return;
	}
}

static void
gap_caps_at_burst(void)
{
	struct ws_rate_config c = { .rate = 100, .burst = 4 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 0);
	CHECK_UINT(take_n(&r, &c, 0, 4), 4);
	/* an hour, a day, a year of silence: still just burst tokens */
	static const uint64_t gaps[] = { 3600000ull, 86400000ull, 365ull * 86400000ull };
	uint64_t t = 0;
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		t += gaps[i];
		CHECK_UINT(take_n(&r, &c, t, 4), 4);
		CHECK_INT(ws_rate_take(&r, &c, t), WS_RATE_DROP);
	}
}

/* A clock that goes backwards refills nothing and breaks nothing. */
static void
clock_backwards(void)
{
	struct ws_rate_config c = { .rate = 10, .burst = 2 };
	struct ws_rate r;
	ws_rate_init(&r, &c, 10000);
	CHECK_UINT(take_n(&r, &c, 10000, 2), 2);
	CHECK_INT(ws_rate_take(&r, &c, 5000), WS_RATE_DROP);
	CHECK_INT(ws_rate_take(&r, &c, 10099), WS_RATE_DROP);
	CHECK_INT(ws_rate_take(&r, &c, 10100), WS_RATE_OK);
}

/*
 * The largest settings config.c accepts (--rate-limit and --rate-burst up
 * to 10,000,000; the burst defaults to twice the rate) must work: a fresh
 * bucket holds `burst` tokens.
 */
static void
large_burst(void)
{
	static const uint32_t bursts[] = { 4294967, 4294968, 6000000, 20000000 };
	for (size_t i = 0; i < sizeof(bursts) / sizeof(bursts[0]); i++) {
		struct ws_rate_config c = { .rate = bursts[i] / 2, .burst = bursts[i] };
		struct ws_rate r;
		ws_rate_init(&r, &c, 0);
		/* the first message of a fresh connection passes */
		if (!CHECK_INT(ws_rate_take(&r, &c, 0), WS_RATE_OK))
			CHECK_UINT(bursts[i], 0);
		/* and a fresh bucket holds exactly `burst` messages */
		ws_rate_init(&r, &c, 0);
		uint32_t ok = 0;
		for (uint32_t k = 0; k <= bursts[i]; k++)
			ok += ws_rate_take(&r, &c, 0) == WS_RATE_OK;
		if (!CHECK_UINT(ok, bursts[i]))
			CHECK_UINT(bursts[i], 0);
	}
}

static void
now_monotonic(void)
{
	uint64_t a = ws_clock_mono_ms();
	for (int i = 0; i < 100000; i++) {
		uint64_t b = ws_clock_mono_ms();
		if (!CHECK(b >= a))
			return;
		a = b;
	}
}

static const struct check_case cases[] = {
	{ "off", off },
	{ "burst", burst },
	{ "refill", refill },
	{ "drop-then-flood", drop_then_flood },
	{ "steady-under-rate", steady_under_rate },
	{ "gap-caps-at-burst", gap_caps_at_burst },
	{ "clock-backwards", clock_backwards },
	{ "large-burst", large_burst },
	{ "now-monotonic", now_monotonic },
};

CHECK_MAIN(cases)
