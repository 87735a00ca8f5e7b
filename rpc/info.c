#define _GNU_SOURCE /* getloadavg */
#include "info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

/* A "Key:  N kB" line of /proc/meminfo, in bytes; -1 when absent. */
static json_int_t
meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	char line[256];
	json_int_t v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = (json_int_t)strtoll(line + kl + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

json_t *
rpc_info_system(void)
{
	struct utsname u;
	uname(&u);
	double load[3] = { 0, 0, 0 };
	if (getloadavg(load, 3) != 3)
		load[0] = load[1] = load[2] = 0;
	struct sysinfo si;
	long uptime = sysinfo(&si) == 0 ? si.uptime : 0;
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:[f,f,f], s:{s:I, s:I}, s:I}", "hostname",
			 u.nodename, "platform", "linux", "arch", u.machine, "kernel", u.release,
			 "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN), "loadavg", load[0], load[1],
			 load[2], "memory", "total", meminfo("MemTotal"), "available",
			 meminfo("MemAvailable"), "uptime_s", (json_int_t)uptime);
}
