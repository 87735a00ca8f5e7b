/*
 * info: what {"type":"info"} reports about the machine (hostname, kernel,
 * CPUs, load, memory, uptime), read from uname, sysinfo and /proc.
 */
#ifndef RPC_INFO_H
#define RPC_INFO_H

#include <jansson.h>

/* A new object with hostname, platform, arch, kernel, cpus, loadavg, memory, uptime_s. */
json_t *rpc_info_system(void);

#endif
