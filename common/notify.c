#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int
notify_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	static const char msg[] = "READY=1";
	ssize_t w = sendto(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
	int err = w < 0 ? -errno : 0;
	close(fd);
	return err;
}

int
ws_notify_ready(uint32_t fd)
{
	int err = 0;
	if (fd != UINT32_MAX) {
		ssize_t w;
		do
			w = write((int)fd, "\n", 1);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			err = -errno;
		close((int)fd);
	}
	const char *ns = getenv("NOTIFY_SOCKET");
	if (ns && *ns) {
		int e = notify_socket(ns);
		if (!err)
			err = e;
	}
	return err;
}
