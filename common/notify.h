/*
 * notify: readiness. s6's protocol (write "\n" to a descriptor, close it)
 * and systemd's (READY=1 to $NOTIFY_SOCKET).
 */
#ifndef WS_NOTIFY_H
#define WS_NOTIFY_H

#include <stdint.h>

/* Signals readiness on fd (UINT32_MAX: none) and on $NOTIFY_SOCKET if set.
 * Takes ownership of fd (closes it). Returns 0 or -errno. */
int ws_notify_ready(uint32_t fd);

#endif
