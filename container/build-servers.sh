#!/bin/sh
# Builds the servers of the source tree in $1 (default .) and installs every
# installable ws-* executable into $2 (default /opt/sandbox-ws/bin), stripped.
# Only those targets are built: the test programs are skipped. A server added
# later (ws-sandbox-run, ...) is picked up as soon as meson knows about it.
# Used by the build stage of container/Dockerfile and container/sandbox.Dockerfile.
set -eu
src=${1:-.}
dest=${2:-/opt/sandbox-ws/bin}
build=${BUILD_DIR:-/tmp/sandbox-ws-build}

# meson prints its errors on stdout: shown only when it fails
if ! out=$(meson setup "$build" "$src" --buildtype=release -Db_ndebug=if-release -Dwerror=false \
	--wrap-mode=nofallback 2>&1); then
	printf '%s\n' "$out" >&2
	echo "build-servers: meson setup failed" >&2
	exit 1
fi
# executables whose name starts with ws- and that meson would install
targets=$(meson introspect --targets "$build" | python3 -c '
import json, os, sys
build = sys.argv[1]
for t in json.load(sys.stdin):
    if t["type"] == "executable" and t["name"].startswith("ws-") and t.get("installed"):
        print(os.path.relpath(t["filename"][0], build))
' "$build")
[ -n "$targets" ] || { echo "build-servers: no ws-* executables found" >&2; exit 1; }
# shellcheck disable=SC2086 # one word per target
ninja -C "$build" $targets
mkdir -p "$dest"
for t in $targets; do
	install -m 0755 -s "$build/$t" "$dest/"
	echo "installed $dest/${t##*/}"
done
