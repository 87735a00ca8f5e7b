#include "hist.h"

double
hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	/* the smallest rank covering q of the samples, at least 1 */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	uint64_t seen = 0;
	if ((double)rank < want || rank == 0)
		rank++;
	if (rank >= h->count)
		return (double)h->max;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen < rank)
			continue;
		if (i < 64)
			return i;
		unsigned shift = i / 32 - 1;
		uint64_t low = (uint64_t)(i - shift * 32) << shift;
		double mid = (double)low + (double)(1ull << shift) / 2;
		return mid < (double)h->max ? mid : (double)h->max;
	}
	return (double)h->max;
}
