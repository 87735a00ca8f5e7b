// A stand-in for the npm module "@cloudflare/sandbox" in workerd, so that the
// Workers' own src/index.ts (container/worker for 0.12, container/worker-next
// for 0.13.0-next) run unchanged in the tests. The container is loopback:
//   - container port P is the loopback port PORTS[P];
//   - processes are a small runtime in the test process (tests/container/
//     lib/runtime.mjs, reached at CONTROL): it spawns the built servers, and
//     runs s6-svok / s6-svwait against the test's s6 tree;
//   - wsConnect() does what the SDK does: the port check, switchPort(), the
//     Durable Object's WebSocket test (Upgrade: websocket AND Connection:
//     upgrade, else it is plain HTTP to the container), and the WebSocket
//     relay of @cloudflare/containers (./containers-relay.js): message by
//     message, pings answered on each side, 1005/1006 -> 1000, errors -> 1011.
//
// Both API generations are served by one object: startProcess/getProcess/
// waitForPort (0.12) and exec/listProcesses/containerFetch (0.13.0-next);
// each Worker type-checks against its own pinned SDK, not against this file.

import { relayResponse } from "./containers-relay.js";

export { counters } from "./containers-relay.js";

/** Every wsConnect() so far: {sandboxId, port, url, authorization, targetPort}. */
export const seen = [];

export class SandboxSecurityError extends Error {}

// the Durable Object class the Worker re-exports; never instantiated here
export class Sandbox {}

/** The SDK's validatePort(): 1024-65535, never 3000 (the control plane). */
function validPort(port) {
  return Number.isInteger(port) && port >= 1024 && port <= 65535 && port !== 3000;
}

function loopback(ns, port) {
  const p = ns.ports[String(port)];
  if (!p) throw new Error(`no server for container port ${port}`);
  return `http://127.0.0.1:${p}`;
}

async function control(ns, path, body) {
  const r = await fetch(`${ns.control}${path}`, body === undefined ? {} : {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status === 404) return null;
  if (r.status !== 200) throw new Error(`runtime ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

/** HTTP readiness as the SDK's waitForPort({mode: "http"}) checks it: polled by the SDK, not by the Worker. */
async function waitForPort(ns, port, opts = {}) {
  const timeout = opts.timeout ?? 20_000;
  const interval = opts.interval ?? 100;
  const want = opts.status ?? { min: 200, max: 399 };
  const ok = (s) => (typeof want === "number" ? s === want : s >= want.min && s <= want.max);
  const end = Date.now() + timeout;
  for (;;) {
    try {
      if (opts.mode === "http") {
        const r = await fetch(`${loopback(ns, port)}${opts.path ?? "/"}`);
        await r.arrayBuffer();
        if (ok(r.status)) return;
      } else {
        const r = await fetch(`${loopback(ns, port)}/`);
        await r.arrayBuffer();
        return;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > end) throw new Error(`port ${port} not ready within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

function process012(ns, p) {
  return { ...p, waitForPort: (port, opts) => waitForPort(ns, port, opts) };
}

function processNext(ns, p) {
  return {
    id: p.id,
    pid: p.pid,
    exitCode: control(ns, `/wait?id=${encodeURIComponent(p.id)}`).then((s) => s.exit.code),
    status: async () => (await control(ns, `/process?id=${encodeURIComponent(p.id)}`)) ?? { id: p.id, state: "error" },
    waitForExit: async () => (await control(ns, `/wait?id=${encodeURIComponent(p.id)}`)).exit,
    waitForPort: (port, opts) => waitForPort(ns, port, opts),
    kill: async (signal = 15) => { await control(ns, "/kill", { id: p.id, signal }); },
  };
}

/** Container.fetch() -> containerFetch(): the request to the port, a 101 relayed message by message. */
async function containerFetch(ns, request, port) {
  let res;
  try {
    const url = new URL(request.url);
    res = await fetch(new Request(`${loopback(ns, port)}${url.pathname}${url.search}`, request));
  } catch (e) {
    // what containerFetch() answers when the port does not take the request
    return new Response(`Error proxying request to container: ${e instanceof Error ? e.message : String(e)}`, { status: 500 });
  }
  return relayResponse(res);
}

export function getSandbox(ns, id) {
  return {
    // ---- 0.12 ----
    async getProcess(pid) {
      const p = await control(ns, `/process?id=${encodeURIComponent(pid)}`);
      if (!p) return null;
      return ns.line === "next" ? processNext(ns, p) : process012(ns, p);
    },
    async startProcess(command, opts = {}) {
      const p = await control(ns, "/exec", { sandbox: id, command: [command], env: opts.env ?? {}, processId: opts.processId });
      return process012(ns, p);
    },
    async cleanupCompletedProcesses() {
      await control(ns, "/cleanup", {});
    },
    // ---- 0.13.0-next ----
    async exec(argv, opts = {}) {
      const p = await control(ns, "/exec", { sandbox: id, command: [...argv], env: opts.env ?? {} });
      return processNext(ns, p);
    },
    async listProcesses() {
      return (await control(ns, "/processes")) ?? [];
    },
    containerFetch(request, port) {
      return containerFetch(ns, request, port);
    },
    // ---- both ----
    async wsConnect(request, port) {
      if (!validPort(port)) {
        throw new SandboxSecurityError(`Invalid port number: ${port}. Must be 1024-65535, excluding 3000 (sandbox control plane).`);
      }
      // switchPort()
      const headers = new Headers(request.headers);
      headers.set("cf-container-target-port", String(port));
      // 0.13.0-next removes its routing headers before the container (toContainerHTTPRequest)
      if (ns.line === "next") headers.delete("cf-container-target-port");
      const switched = new Request(request, { headers });
      const u = new URL(switched.url);
      seen.push({
        sandboxId: id, port, url: u.pathname + u.search, authorization: switched.headers.get("authorization"),
      });
      // the Sandbox Durable Object's fetch(): only this is a WebSocket to it
      const upgrade = switched.headers.get("upgrade");
      const connection = switched.headers.get("connection");
      if (upgrade?.toLowerCase() === "websocket" && connection?.toLowerCase().includes("upgrade")) {
        return containerFetch(ns, switched, port);
      }
      // not a WebSocket to the SDK: plain HTTP to the Sandbox's own port
      // (3000, its control plane; none here, so the platform's 500)
      return containerFetch(ns, switched, 3000);
    },
  };
}
