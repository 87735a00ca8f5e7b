/*
 * hist: a log-linear latency histogram in fixed memory. Exact below 64,
 * then 32 sub-buckets per power of two (at most ~3% error), covering every
 * uint64_t value. Recording is a few instructions and never allocates.
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 1920

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t bucket[HIST_BUCKETS];
};

static inline unsigned
hist_index(uint64_t v)
{
	if (v < 64)
		return (unsigned)v;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - 5;
	return shift * 32 + (unsigned)(v >> shift);
}

/* Records one value (the caller's unit; the benchmarks use ns). */
static inline void
hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

/* The midpoint of the bucket holding quantile q (0..1), never above the maximum; 0 when empty. */
double hist_quantile(const struct hist *h, double q);

#endif
