# sandbox-ws on the Cloudflare Sandbox base image, for the Sandbox SDK.
#
# The base image is Cloudflare's (Ubuntu 22.04, its control plane on port
# 3000 is the ENTRYPOINT and stays so). The servers are built on Debian 12 and
# copied in as a self-contained bundle (/opt/sandbox-ws, see bundle.sh) with
# their libraries, since Ubuntu 22.04 has no libwebsockets 4.1. The Worker in
# container/worker/ starts them with sandbox.startProcess() on 8080-8082.
#
# SANDBOX_VERSION must equal the @cloudflare/sandbox version in
# container/worker/package.json (the SDK warns when they differ). wrangler
# builds it from container/worker/wrangler.jsonc; by hand, from the repository root:
#
#   docker build -f container/sandbox.Dockerfile -t sandbox-ws-sandbox .
#
# No s6 here: the Sandbox control plane is the container's PID 1 and the
# Worker restarts a server that is not running.
ARG SANDBOX_VERSION=0.12.10
ARG SANDBOX_IMAGE=docker.io/cloudflare/sandbox:${SANDBOX_VERSION}

# ---- build: the same servers as container/Dockerfile, then bundled ----
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      meson ninja-build pkg-config gcc libc6-dev binutils patchelf \
      libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev \
      libsqlite3-dev libseccomp-dev libhttp-parser-dev libmd-dev libhiredis-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN sh container/build-servers.sh /src /opt/sandbox-ws/bin
RUN sh container/bundle.sh /opt/sandbox-ws

# ---- the Sandbox image plus the bundle ----
FROM ${SANDBOX_IMAGE}
COPY --from=build /opt/sandbox-ws/ /opt/sandbox-ws/
COPY --from=build /opt/sandbox-ws/plugin/libwebsockets-evlib_uv.so /usr/lib/x86_64-linux-gnu/
# ws-exec: the user of ws-rpc's commands (the Worker starts ws-rpc with
# WS_RUN_AS=ws-exec); the database directory is root's alone, like the
# servers the Sandbox control plane starts.
RUN for b in /opt/sandbox-ws/bin/*; do ln -sf "$b" /usr/local/bin/; done \
 && useradd --no-log-init --system --user-group --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin ws-exec \
 && install -d -m 0700 /var/lib/sandbox-ws

# Read by the servers the Worker starts (it passes the rest per process).
# ws-broadcast's own name, WS_DB: the Worker starts it directly, without the
# s6 run script that maps WS_BROADCAST_DB (an image that set only that put
# the rooms in ws-broadcast.db of the control plane's working directory).
ENV WS_DB=/var/lib/sandbox-ws/rooms.db

# wrangler dev only forwards ports the image declares. 3000 is the SDK's.
EXPOSE 8080 8081 8082
