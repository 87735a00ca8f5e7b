// A stand-in for the Sandbox SDK in workerd: the real Worker's routing
// (container/worker/src/router.ts, compiled next to this file as router.js)
// with a Backend that does what getSandbox(...).wsConnect(request, port)
// does, minus the container: the same request (method, path, query,
// headers) plus `cf-container-target-port`, sent on to the server that
// stands for that container port on loopback.
//
// Bindings: WS_TOKEN (text), PORTS (JSON: container port -> loopback port).
//
// For the tests, GET /__relay/seen answers what connect() was handed so far
// (sandbox id, route, the forwarded URL and Authorization header), as JSON.
import { handle } from "./router.js";
import page from "./index.html";

/** @cloudflare/containers' switchPort(), which wsConnect() uses. */
function switchPort(request, port) {
  const headers = new Headers(request.headers);
  headers.set("cf-container-target-port", String(port));
  return new Request(request, { headers });
}

function loopback(ports, containerPort) {
  const p = ports[String(containerPort)];
  if (!p) throw new Error(`no server for container port ${containerPort}`);
  return `http://127.0.0.1:${p}`;
}

const seen = [];

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname === "/__relay/seen") {
      return new Response(JSON.stringify(seen), { headers: { "content-type": "application/json" } });
    }
    const ports = JSON.parse(env.PORTS);
    const backend = {
      // waitForPort's HTTP probe: the server must answer 200 (here on /healthz)
      async ensure(_sandboxId, route) {
        const r = await fetch(`${loopback(ports, route.port)}/healthz`);
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`/healthz answered ${r.status}`);
      },
      // Container.fetch(): the port from the header, the request as it came
      async connect(sandboxId, route, req) {
        const u = new URL(req.url);
        seen.push({ sandboxId, path: route.path, url: u.pathname + u.search, authorization: req.headers.get("authorization") });
        const switched = switchPort(req, route.port);
        const url = new URL(switched.url);
        const port = Number(switched.headers.get("cf-container-target-port"));
        return fetch(new Request(`${loopback(ports, port)}${url.pathname}${url.search}`, switched));
      },
    };
    return handle(request, { token: env.WS_TOKEN, page, log: (m, e) => console.log(m, e ? String(e) : "") }, backend);
  },
};
