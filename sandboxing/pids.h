/*
 * pids: a pids cgroup per command (private to the library). RLIMIT_NPROC
 * counts a user's processes and root is exempt from it; a pids cgroup
 * bounds one command's process tree whoever runs it.
 *
 *   parent:  ws_pids_open()      finds the pids hierarchy, makes the
 *                                sandbox's own cgroup ws-sandbox.PID in it
 *   child:   ws_pids_join()      makes cPID under it, sets pids.max, joins
 *   parent:  ws_pids_close()     removes what is left when no more commands
 *                                will start
 */
#ifndef WS_PIDS_H
#define WS_PIDS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Finds a pids controller this process's cgroup is under and can write
 * (cgroup v1 "pids", or v2 with "pids" in cgroup.controllers) and makes a
 * cgroup for this sandbox in it. Returns a directory descriptor
 * (close-on-exec), or -errno with the reason in why (no hierarchy, read-
 * only, not root...): the caller then runs without one.
 * path receives the cgroup's directory.
 */
int ws_pids_open(char *path, size_t pathlen, char *why, size_t whylen);

/*
 * In a child before exec (system calls only): removes the empty cgroups
 * of commands that are gone, makes its own (cPID, pids.max = max) and
 * moves the calling process into it. Returns 0 or -errno.
 */
int ws_pids_join(int dirfd, uint32_t max);

/* Removes every empty command cgroup, then the sandbox's; closes dirfd. */
void ws_pids_close(int dirfd, const char *path);

#endif
