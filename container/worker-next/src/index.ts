/*
 * The sandbox-ws Worker for the Sandbox SDK's next API: @cloudflare/sandbox
 * 0.13.0-next (pinned in package.json), the line that leads to 1.0. There is
 * no startProcess() any more: exec(argv) returns a process handle. Routing,
 * the token and the error answers are shared with the 0.12 Worker
 * (../../worker/src/router.ts); this file is the SDK side.
 *
 * Who runs the servers:
 *   - the image's own supervisor (../Dockerfile: s6-svscan runs ws-echo,
 *     ws-broadcast and ws-rpc and restarts them): the Worker starts nothing,
 *     it waits until s6 reports the service up AND ready (`s6-svwait -U`,
 *     which returns at once when it is; the servers signal readiness on s6's
 *     notification fd) and connects;
 *   - no supervisor (an image without s6): the first request for a server
 *     starts it with exec(["sh", "-c", serverLaunch()'s script], {env}) and
 *     waits on the handle's
 *     waitForPort(port, {mode: "http", path: "/healthz"}) — the SDK polls,
 *     the Worker never sleeps; a server already running (listProcesses) is
 *     reused.
 * WS_SUPERVISOR picks: "s6", "none", or unset = ask the container once per
 * sandbox (`s6-svok /etc/sandbox-ws/service/<service>`, exit 0 = s6).
 */
import { getSandbox, Sandbox, type SandboxProcess } from "@cloudflare/sandbox";
import page from "../../demo/index.html";
import {
  broadcastJwtSecret, handle, isServerCommand, serverLaunch, serverToken, type Backend, type ServerRoute,
} from "../../worker/src/router";

export interface Env {
  Sandbox: DurableObjectNamespace<SandboxWs>;
  /** the clients' shared secret (`wrangler secret put WS_TOKEN`) */
  WS_TOKEN?: string;
  /** optional: more WS_* settings for every server, as a JSON object of strings */
  WS_SERVER_ENV?: string;
  /** "s6" (the image's supervisor runs the servers), "none" (the Worker starts them), unset: detect */
  WS_SUPERVISOR?: string;
}

/** How long a server may take to be ready (s6-svwait -t, waitForPort's timeout). */
const READY_TIMEOUT_MS = 20_000;
/** The image's s6 scan directory (../Dockerfile). */
const SERVICE_DIR = "/etc/sandbox-ws/service";
/** Exit 0 once the service ($2) is up and ready; 1 at once when s6 is told to keep it down; else s6-svwait's timeout ($1 ms). */
const S6_READY = '[ "$(s6-svstat -o wantedup "$2")" = true ] || exit 1; exec s6-svwait -U -t "$1" "$2"';
/** Sandboxes whose supervisor is known, per isolate; bounded. */
const SUPERVISOR = new Map<string, "s6" | "none">();
const SUPERVISOR_MAX = 1000;
/**
 * Under s6, a service found ready is not asked again for this long (per
 * isolate, "sandbox/service" -> when): each check is an exec() in the
 * container (~20 ms here, more through the platform), and s6 keeps the
 * server up anyway. A failed connect forgets it, so the next request waits
 * for s6's readiness again.
 */
const READY = new Map<string, number>();
const READY_TTL_MS = 10_000;

/**
 * The container's environment at start, for the s6 image (its run script
 * hands WS_RPC_* to ws-rpc only, WS_BROADCAST_* to ws-broadcast only):
 * ws-rpc's token and ws-broadcast's JWT key, both derived from the secret
 * (the run script writes the key to a 0600 file for ws-broadcast's
 * --jwt-secret-file), and WS_SERVER_ENV. The Durable Object class is ours so that the secret never
 * has to be sent per request.
 */
async function imageEnv(env: Env): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (env.WS_SERVER_ENV) {
    const parsed: unknown = JSON.parse(env.WS_SERVER_ENV);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      for (const [k, v] of Object.entries(parsed)) if (typeof v === "string" && k.startsWith("WS_")) out[k] = v;
    }
  }
  if (env.WS_TOKEN) {
    out.WS_RPC_TOKEN = await serverToken(env.WS_TOKEN);
    out.WS_BROADCAST_JWT_SECRET = await broadcastJwtSecret(env.WS_TOKEN);
  }
  return out;
}

/** The Durable Object class behind the Sandbox binding (wrangler.jsonc): the SDK's, with the image's environment. */
export class SandboxWs extends Sandbox<Env> {
  constructor(ctx: DurableObjectState<{}>, env: Env) {
    super(ctx, env);
    void ctx.blockConcurrencyWhile(async () => {
      this.envVars = { ...this.envVars, ...(await imageEnv(env)) };
    });
  }
}

type Client = ReturnType<typeof getSandbox<SandboxWs>>;

class NextBackend implements Backend {
  constructor(private readonly env: Env) {}

  private sandbox(id: string): Client {
    return getSandbox(this.env.Sandbox, id);
  }

  /** Runs ARGV in the sandbox and resolves with its exit code (-1 when it cannot be started). */
  private async run(sandbox: Client, argv: [string, ...string[]]): Promise<number> {
    try {
      const proc = await sandbox.exec(argv);
      const exit = await proc.waitForExit({ timeout: READY_TIMEOUT_MS + 5_000 });
      return exit.code;
    } catch {
      return -1;
    }
  }

  private async supervisor(sandbox: Client, id: string, route: ServerRoute): Promise<"s6" | "none"> {
    const set = this.env.WS_SUPERVISOR;
    if (set === "s6" || set === "none") return set;
    const known = SUPERVISOR.get(id);
    if (known) return known;
    const found = (await this.run(sandbox, ["s6-svok", `${SERVICE_DIR}/${route.service}`])) === 0 ? "s6" : "none";
    if (SUPERVISOR.size >= SUPERVISOR_MAX) SUPERVISOR.clear();
    SUPERVISOR.set(id, found);
    return found;
  }

  async ensure(id: string, route: ServerRoute): Promise<void> {
    const sandbox = this.sandbox(id);
    if ((await this.supervisor(sandbox, id, route)) === "s6") {
      const key = `${id}/${route.service}`;
      if (Date.now() - (READY.get(key) ?? -Infinity) < READY_TTL_MS) return;
      // s6 restarts a server that dies: wait for up + ready, start nothing.
      // A service s6 keeps down (refused configuration, not in WS_SERVICES)
      // fails at once instead of after the timeout.
      const code = await this.run(sandbox, ["sh", "-c", S6_READY, "s6-ready", String(READY_TIMEOUT_MS), `${SERVICE_DIR}/${route.service}`]);
      if (code !== 0) throw new Error(`${route.program} is not up under s6 (exit ${code})`);
      if (READY.size >= SUPERVISOR_MAX) READY.clear();
      READY.set(key, Date.now());
      return;
    }
    const proc = (await this.running(sandbox, route)) ?? (await this.start(sandbox, route));
    // the SDK polls the port: no sleeping here
    await proc.waitForPort(route.port, { mode: "http", path: "/healthz", status: 200, timeout: READY_TIMEOUT_MS });
  }

  /** The server already started for ROUTE, if it still runs. */
  private async running(sandbox: Client, route: ServerRoute): Promise<SandboxProcess | null> {
    const all = await sandbox.listProcesses();
    const live = all.find((p) => p.state === "running" && isServerCommand(p.command, route));
    return live ? sandbox.getProcess(live.id) : null;
  }

  private async start(sandbox: Client, route: ServerRoute): Promise<SandboxProcess> {
    try {
      // through sh: the container-wide secrets (SandboxWs's envVars, which
      // exec() merges in) leave the environment, ws-broadcast's JWT key goes
      // to a 0600 file
      const { script, env } = await serverLaunch(this.env.WS_TOKEN, this.env.WS_SERVER_ENV, route);
      return await sandbox.exec(["sh", "-c", script], { env });
    } catch (e) {
      // a concurrent request may have started it a moment ago
      const again = await this.running(sandbox, route);
      if (again) return again;
      throw e;
    }
  }

  fetch(id: string, route: ServerRoute, request: Request): Promise<Response> {
    return this.sandbox(id).containerFetch(request, route.port);
  }

  async connect(id: string, route: ServerRoute, request: Request): Promise<Response> {
    const key = `${id}/${route.service}`;
    try {
      const response = await this.sandbox(id).wsConnect(request, route.port);
      if (response.status >= 500) READY.delete(key);
      return response;
    } catch (e) {
      READY.delete(key);
      throw e;
    }
  }
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    return handle(request, { token: env.WS_TOKEN, page }, new NextBackend(env));
  },
} satisfies ExportedHandler<Env>;
