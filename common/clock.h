/*
 * clock: the two clocks the servers read. Monotonic milliseconds for
 * durations and limits; wall-clock milliseconds since the epoch for what
 * clients see (timestamps in messages).
 */
#ifndef WS_CLOCK_H
#define WS_CLOCK_H

#include <stdint.h>

uint64_t ws_clock_mono_ms(void);
uint64_t ws_clock_wall_ms(void);

#endif
