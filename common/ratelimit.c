#include "ratelimit.h"

void
ws_rate_init(struct ws_rate *r, const struct ws_rate_config *cfg, uint64_t now_ms)
{
	r->last_ms = now_ms;
	r->milli_tokens = (uint64_t)cfg->burst * 1000u;
	r->dropped = 0;
}

enum ws_rate_verdict
ws_rate_take(struct ws_rate *r, const struct ws_rate_config *cfg, uint64_t now_ms)
{
	if (cfg->rate == 0)
		return WS_RATE_OK;

	uint64_t cap = (uint64_t)cfg->burst * 1000u;
	if (now_ms > r->last_ms) {
		/* rate tokens per second is rate milli-tokens per millisecond */
		uint64_t t = r->milli_tokens + (now_ms - r->last_ms) * cfg->rate;
		r->milli_tokens = t > cap ? cap : t;
		r->last_ms = now_ms;
	}
	if (r->milli_tokens >= cap)
		r->dropped = 0;
	if (r->milli_tokens >= 1000) {
		r->milli_tokens -= 1000;
		return WS_RATE_OK;
	}
	r->dropped++;
	return r->dropped > cfg->burst ? WS_RATE_FLOOD : WS_RATE_DROP;
}

bool
ws_rate_full(const struct ws_rate *r, const struct ws_rate_config *cfg, uint64_t now_ms)
{
	if (cfg->rate == 0)
		return true;
	uint64_t t = r->milli_tokens;
	if (now_ms > r->last_ms)
		t += (now_ms - r->last_ms) * cfg->rate;
	return t >= (uint64_t)cfg->burst * 1000u;
}
