/*
 * page: the demo page (container/demo/index.html, embedded at build time)
 * served at GET /, so a person can try the servers from a browser (and the
 * Sandbox SDK's waitForPort probe gets its 200).
 */
#ifndef WS_PAGE_H
#define WS_PAGE_H

#include <stddef.h>

extern const char ws_page_html[];
extern const size_t ws_page_html_len;

#endif
