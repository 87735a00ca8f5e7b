/*
 * The sandbox-ws Worker: WebSockets from the Internet to the servers inside a
 * Cloudflare Sandbox container (built from ../sandbox.Dockerfile).
 * Routing, the token and the error answers are in router.ts; this file is
 * the Sandbox SDK side: start a server only when it is not running, wait for
 * its port, hand the upgrade over with wsConnect().
 */
import { getSandbox, type Process, type Sandbox } from "@cloudflare/sandbox";
import page from "../../demo/index.html";
import { handle, serverToken, type Backend, type ServerRoute } from "./router";

// The Durable Object class behind the Sandbox binding (wrangler.jsonc).
export { Sandbox } from "@cloudflare/sandbox";

export interface Env {
  Sandbox: DurableObjectNamespace<Sandbox>;
  /** the clients' shared secret (`wrangler secret put WS_TOKEN`); ws-rpc checks it too */
  WS_TOKEN?: string;
  /** optional: more WS_* settings for every server, as a JSON object of strings */
  WS_SERVER_ENV?: string;
}

/** How long a server that was just started may take to answer /healthz. */
const READY_TIMEOUT_MS = 20_000;
const LIVE = new Set(["starting", "running"]);

const processId = (route: ServerRoute): string => `sandbox-ws-${route.program}`;

/**
 * The environment of a server process: its port, WS_SERVER_ENV, and for
 * ws-rpc the token derived from WS_TOKEN (router.ts, serverToken(): the
 * Worker sends it, clients never do) and its commands' user, ws-exec (made
 * by ../sandbox.Dockerfile; WS_SERVER_ENV may name another).
 */
async function serverEnv(env: Env, route: ServerRoute): Promise<Record<string, string>> {
  let extra: Record<string, string> = {};
  if (env.WS_SERVER_ENV) {
    const parsed: unknown = JSON.parse(env.WS_SERVER_ENV);
    if (parsed && typeof parsed === "object") extra = parsed as Record<string, string>;
  }
  const out: Record<string, string> = { ...extra, WS_HOST: "0.0.0.0", WS_PORT: String(route.port) };
  if (route.program === "ws-rpc") {
    // ws-rpc's own default as root, made explicit for any build of it
    if (extra.WS_RUN_AS === undefined && extra.WS_RUN_AS_SELF === undefined) out.WS_RUN_AS = "ws-exec";
    if (env.WS_TOKEN) out.WS_TOKEN = await serverToken(env.WS_TOKEN);
  }
  return out;
}

class SandboxBackend implements Backend {
  constructor(private readonly env: Env) {}

  private sandbox(id: string) {
    return getSandbox(this.env.Sandbox, id);
  }

  async ensure(id: string, route: ServerRoute): Promise<void> {
    const sandbox = this.sandbox(id);
    let proc: Process | null = await sandbox.getProcess(processId(route));
    if (!proc || !LIVE.has(proc.status)) {
      if (proc) await sandbox.cleanupCompletedProcesses();
      proc = await this.start(sandbox, route);
    }
    // the SDK polls the port: no sleeping here
    await proc.waitForPort(route.port, {
      mode: "http",
      path: "/healthz",
      status: 200,
      timeout: READY_TIMEOUT_MS,
    });
  }

  private async start(sandbox: ReturnType<SandboxBackend["sandbox"]>, route: ServerRoute): Promise<Process> {
    try {
      return await sandbox.startProcess(route.program, {
        processId: processId(route),
        env: await serverEnv(this.env, route),
        autoCleanup: true,
      });
    } catch (e) {
      // a concurrent request may have started it a moment ago
      const again = await sandbox.getProcess(processId(route));
      if (again && LIVE.has(again.status)) return again;
      throw e;
    }
  }

  connect(id: string, route: ServerRoute, request: Request): Promise<Response> {
    return this.sandbox(id).wsConnect(request, route.port);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return handle(request, { token: env.WS_TOKEN, page }, new SandboxBackend(env));
  },
} satisfies ExportedHandler<Env>;
