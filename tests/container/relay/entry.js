// The workerd entry of the stand-in: the Worker under test (its own
// src/index.ts, compiled to worker/index.js) with the stand-in SDK
// (./sandbox-sdk.js, named "@cloudflare/sandbox" in the config), plus two
// read-only test endpoints: GET /__relay/seen (what wsConnect() was handed)
// and GET /__relay/counters (open relayed WebSockets: the in-flight count
// that keeps a container awake).
//
// Bindings: WS_TOKEN, WS_SERVER_ENV (the Worker's own), PORTS (JSON:
// container port -> loopback port), CONTROL (the test runtime's URL), LINE
// ("0.12" or "next").
import worker from "./worker/src/index.js";
// the Worker's bare "@cloudflare/sandbox" resolves next to it (workerd
// resolves module names as paths), so the stand-in is named that way
import { counters, seen } from "./worker/src/@cloudflare/sandbox";

const json = (v) => new Response(JSON.stringify(v), { headers: { "content-type": "application/json" } });

export default {
  async fetch(request, env, ctx) {
    const path = new URL(request.url).pathname;
    if (path === "/__relay/seen") return json(seen);
    if (path === "/__relay/counters") return json(counters);
    const ns = { ports: JSON.parse(env.PORTS), control: env.CONTROL, line: env.LINE };
    return worker.fetch(request, { ...env, Sandbox: ns }, ctx);
  },
};
