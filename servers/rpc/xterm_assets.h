/*
 * xterm_assets: xterm.js, its CSS and the fit addon, embedded at build time
 * from the pinned npm packages (servers/rpc/embed_xterm.py), served by
 * ws-rpc under /xterm/ for the demo page's terminal tab.
 */
#ifndef XTERM_ASSETS_H
#define XTERM_ASSETS_H

#include <stddef.h>

struct xterm_asset {
	const char *path; /* "/xterm/xterm.js" */
	const char *content_type;
	const unsigned char *data;
	size_t len;
};

/* Ends with an entry whose path is NULL. */
extern const struct xterm_asset xterm_assets[];

#endif
