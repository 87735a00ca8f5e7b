/*
 * The sandbox-ws Worker for @cloudflare/sandbox 0.12 (startProcess,
 * waitForPort, wsConnect): WebSockets from the Internet to the servers inside
 * a Cloudflare Sandbox container (built from ../sandbox.Dockerfile). For the
 * SDK's next API (0.13.0-next, then 1.0) use ../worker-next.
 * Routing, the token and the error answers are in router.ts; this file is
 * the Sandbox SDK side: start a server only when it is not running, wait for
 * its port, hand the upgrade over with wsConnect().
 */
import { getSandbox, type Process, type Sandbox } from "@cloudflare/sandbox";
import page from "../../demo/index.html";
import { handle, serverLaunch, type Backend, type ServerRoute } from "./router";

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
    // through sh: ws-broadcast's JWT key goes to a 0600 file, not its environment
    const { script, env } = await serverLaunch(this.env.WS_TOKEN, this.env.WS_SERVER_ENV, route);
    const command = `sh -c '${script}'`;
    try {
      return await sandbox.startProcess(command, {
        processId: processId(route),
        env,
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

  fetch(id: string, route: ServerRoute, request: Request): Promise<Response> {
    return this.sandbox(id).containerFetch(request, route.port);
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return handle(request, { token: env.WS_TOKEN, page }, new SandboxBackend(env));
  },
} satisfies ExportedHandler<Env>;
