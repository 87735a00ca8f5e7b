#!/bin/sh
# Makes DEST (default /opt/sandbox-ws) self-contained for a base image that
# is not Debian 12, such as the Cloudflare Sandbox image (Ubuntu 22.04):
#   DEST/bin/ws-*    the servers (already installed there by build-servers.sh)
#   DEST/lib/        every shared library they need except glibc's own
#   DEST/plugin/     libwebsockets' libuv event-loop plugin; libwebsockets
#                    dlopen()s it from its build-time directory, so the image
#                    copies it to /usr/lib/x86_64-linux-gnu/
# Each binary gets RUNPATH $ORIGIN/../lib and each library $ORIGIN, so the
# bundled libraries win over whatever the base ships; glibc stays the base's
# (the binaries need GLIBC_2.34 at most: Ubuntu 22.04 has 2.35).
set -eu
dest=${1:-/opt/sandbox-ws}
plugin=/usr/lib/x86_64-linux-gnu/libwebsockets-evlib_uv.so

mkdir -p "$dest/lib" "$dest/plugin"
cp "$plugin" "$dest/plugin/"

# the libraries glibc provides: never bundled
is_glibc() {
	case ${1##*/} in
	ld-linux*.so* | libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | \
		libresolv.so* | libutil.so* | libanl.so* | libnsl.so*) return 0 ;;
	esac
	return 1
}

for obj in "$dest"/bin/* "$dest/plugin/${plugin##*/}"; do
	ldd "$obj" | awk '/=> \// { print $3 }' | while read -r lib; do
		is_glibc "$lib" || cp -L -n "$lib" "$dest/lib/"
	done
done

# shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader, not the shell
for b in "$dest"/bin/*; do
	patchelf --set-rpath '$ORIGIN/../lib' "$b"
done
# shellcheck disable=SC2016
for l in "$dest"/lib/*; do
	patchelf --set-rpath '$ORIGIN' "$l"
done
patchelf --set-rpath "$dest/lib" "$dest/plugin/${plugin##*/}"

# the highest glibc symbol version anything here needs, for the record
need=$(for f in "$dest"/bin/* "$dest"/lib/* "$dest"/plugin/*; do
	objdump -T "$f" | grep -o 'GLIBC_[0-9.]*'
done | sort -uV | tail -n 1)
echo "bundle: $(find "$dest/bin" -type f | wc -l) programs, $(find "$dest/lib" -type f | wc -l) libraries, needs $need"
