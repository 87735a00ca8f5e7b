/*
 * utf8: incremental UTF-8 validation (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), so a text message split across frames
 * or reads fails on the first bad byte rather than at its end.
 */
#ifndef WS_UTF8_H
#define WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define WS_UTF8_ACCEPT 0u          /* at a code point boundary */
#define WS_UTF8_REJECT 0xffffffffu /* invalid; sticky */

/*
 * Validates p[0..n) continuing from state (start with WS_UTF8_ACCEPT).
 * Returns the new state: ACCEPT at a boundary, REJECT on an invalid byte,
 * anything else inside a code point.
 */
uint32_t ws_utf8_validate(uint32_t state, const uint8_t *p, size_t n);

#endif
