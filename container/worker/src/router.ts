/*
 * The Worker's routing, apart from the Sandbox SDK so that tests can run it
 * in workerd against servers on loopback (tests/container/relay/): the
 * Backend decides where a WebSocket goes; everything else is here.
 *
 *   GET /                   the demo page
 *   /ws/echo?sandbox=ID     -> ws-echo on 8080
 *   /ws/broadcast?...       -> ws-broadcast on 8081 (?id= is the room there)
 *   /ws/json?...            -> ws-rpc on 8082
 *   /ws/terminal?...        -> ws-rpc on 8082 (its terminal protocol: any path
 *                              whose last segment is "terminal")
 *   GET /ws/xterm/FILE?...  -> ws-rpc's copy of xterm.js for the demo page's
 *                              terminal (xterm.css, xterm.js, addon-fit.js)
 *
 * Every /ws/ request needs the token (Authorization: Bearer T, or ?token=T
 * for browsers) before anything starts: 401 otherwise.
 *
 * The sandbox is named by ?sandbox=, else it is "default". A sandbox id
 * names a container, nothing more: every holder of the token may name any
 * id, so ids are neither secrets nor users nor an isolation boundary between
 * token holders ("default" is shared by all of them). Isolate users by giving
 * them different Workers/tokens, or derive the id from an identity the Worker
 * has checked. ?id= is ws-broadcast's room and never picks a sandbox.
 *
 * Once the token is checked it is removed from what goes on: every query
 * parameter whose decoded name is "token" (?tok%65n= too) and the
 * Authorization header; the rest of the request (path, other parameters byte
 * for byte, headers) goes on as wsConnect() sends it. ws-rpc, which needs a
 * token of its own, is given a key derived from the Worker's secret
 * (serverToken()) in an Authorization header: the container never holds the
 * token clients use. ws-broadcast gets a JWT minted per connection (mintJwt:
 * sub and info from RouterOptions.identify, the place for a real app's
 * authentication) signed with another derived key (broadcastJwtSecret()).
 */

export interface ServerRoute {
  /** the path the Worker answers */
  path: string;
  /** the program inside the container */
  program: "ws-echo" | "ws-broadcast" | "ws-rpc";
  /** its s6 service in the image (container/s6/<service>) */
  service: "echo" | "broadcast" | "rpc";
  /** its port in the container (never 3000: the Sandbox control plane's) */
  port: number;
  /** the server checks a token: it gets serverToken() as `Authorization: Bearer` */
  serverAuth?: boolean;
  /** the server takes signed identities: it gets a JWT minted for the client (mintJwt) as `Authorization: Bearer` */
  jwt?: boolean;
}

export const ROUTES: readonly ServerRoute[] = [
  { path: "/ws/echo", program: "ws-echo", service: "echo", port: 8080 },
  { path: "/ws/broadcast", program: "ws-broadcast", service: "broadcast", port: 8081, jwt: true },
  { path: "/ws/json", program: "ws-rpc", service: "rpc", port: 8082, serverAuth: true },
  // the SDK's terminal protocol, served by ws-rpc; path and query go on unchanged
  { path: "/ws/terminal", program: "ws-rpc", service: "rpc", port: 8082, serverAuth: true },
];

/** The files ws-rpc serves for the demo page's terminal, at /ws/xterm/FILE behind the Worker. */
export const XTERM_ASSETS: ReadonlySet<string> = new Set(["xterm.css", "xterm.js", "addon-fit.js"]);

/** Where the servers are: the Sandbox SDK in production, loopback in tests. */
export interface Backend {
  /** A plain HTTP request to the route's server (containerFetch); resolves to its answer. */
  fetch(sandboxId: string, route: ServerRoute, request: Request): Promise<Response>;
  /** Makes sure the route's server is running and ready; throws when it cannot be. */
  ensure(sandboxId: string, route: ServerRoute): Promise<void>;
  /** Hands the upgrade request to the server; resolves to the 101 (or the server's refusal). */
  connect(sandboxId: string, route: ServerRoute, request: Request): Promise<Response>;
}

/** Who a client is, for ws-broadcast's signed identities (the JWT's sub and info). */
export interface Identity {
  /** the user name: the JWT's sub, shown as `from` on every message (1-64 characters) */
  sub: string;
  /** shown with the user on join, welcome and messages (a small object, e.g. {"name": "Ada", "color": "#f80"}) */
  info?: Record<string, string>;
}

export interface RouterOptions {
  /** the shared secret; when empty every /ws/ request is refused (500) */
  token: string | undefined;
  /**
   * Who the client of a /ws/broadcast request is. THE place where a real
   * application plugs in its own authentication (a session cookie, Cloudflare
   * Access's JWT, ...): return null to refuse (403). The default,
   * demoIdentity, believes the client's own ?user= and is a stand-in only.
   */
  identify?: (request: Request, url: URL) => Identity | null | Promise<Identity | null>;
  /** the demo page served at / */
  page: string;
  /** where errors go (console.error in a Worker) */
  log?: (message: string, error?: unknown) => void;
}

const SANDBOX_ID = /^[A-Za-z0-9._:-]{1,64}$/;

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", ...headers },
  });
}

/** The token the client presented: Authorization: Bearer, else ?token=. */
export function presentedToken(request: Request, url: URL): string | null {
  const auth = request.headers.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    return m ? m[1] : null;
  }
  return url.searchParams.get("token");
}

/** Compares in time that does not depend on where the strings differ (or their lengths). */
export async function tokenMatches(presented: string, expected: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", enc.encode(presented)),
    crypto.subtle.digest("SHA-256", enc.encode(expected)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/**
 * Why REQUEST is not a WebSocket upgrade the Sandbox SDK would relay, or null
 * when it is one. The SDK's Durable Object treats a request as a WebSocket
 * only with `Upgrade: websocket` AND `Connection: upgrade`; anything else
 * would go to the container as plain HTTP (and fail there as a 503 from us,
 * which would hide the client's mistake), so it is refused here with 426.
 */
export function notAnUpgrade(request: Request): string | null {
  if (request.headers.get("upgrade")?.trim().toLowerCase() !== "websocket") return "Expected a WebSocket upgrade";
  const connection = (request.headers.get("connection") ?? "").toLowerCase().split(",").map((t) => t.trim());
  if (!connection.includes("upgrade")) {
    return "Upgrade: websocket without Connection: upgrade is not a WebSocket upgrade (send both headers)";
  }
  return null;
}

/** The sandbox a request names: ?sandbox=, else "default" (never ?id=, ws-broadcast's room). */
export function sandboxIdOf(url: URL): string {
  return url.searchParams.get("sandbox") ?? "default";
}

/**
 * The token servers are given in place of the clients' one:
 * hex(HMAC-SHA256(key = the Worker's secret, "sandbox-ws server token v1")).
 * Knowing it (a leak from a container) does not give the secret.
 */
export function serverToken(secret: string): Promise<string> {
  return derive(secret, "sandbox-ws server token v1");
}

/** hex(HMAC-SHA256(key = SECRET, LABEL)): one key per use, none giving the secret. */
async function derive(secret: string, label: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(label)));
  return [...mac].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The environment of a server the Worker starts: WS_SERVER_ENV (a JSON
 * object of strings; anything else is ignored), its port, and for ws-rpc
 * the token derived from the secret (serverToken(): the Worker sends it,
 * clients never do) and its commands' user, ws-exec (made by both images;
 * WS_SERVER_ENV may name another).
 */
export async function serverEnv(secret: string | undefined, extraJson: string | undefined, route: ServerRoute): Promise<Record<string, string>> {
  let extra: Record<string, string> = {};
  if (extraJson) {
    const parsed: unknown = JSON.parse(extraJson);
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) {
      for (const [k, v] of Object.entries(parsed)) if (typeof v === "string") extra[k] = v;
    }
  }
  const out: Record<string, string> = { ...extra, WS_HOST: "0.0.0.0", WS_PORT: String(route.port) };
  if (route.program === "ws-rpc") {
    // ws-rpc's own default as root, made explicit for any build of it
    if (extra.WS_RUN_AS === undefined && extra.WS_RUN_AS_SELF === undefined) out.WS_RUN_AS = "ws-exec";
    if (secret) out.WS_TOKEN = await serverToken(secret);
  }
  return out;
}

/**
 * The key ws-broadcast verifies JWTs with (its --jwt-secret-file holds it):
 * hex(HMAC-SHA256(key = the Worker's secret, "ws-broadcast-jwt")), 64
 * characters. Like serverToken(), a copy read out of a container does not
 * give the Worker's secret, and it opens ws-broadcast only, not the Worker.
 */
export function broadcastJwtSecret(secret: string): Promise<string> {
  return derive(secret, "ws-broadcast-jwt");
}

/** How long a minted JWT is valid: it is checked once, when the WebSocket opens. */
export const JWT_TTL_S = 60;

/** ws-broadcast's user names (a JWT's sub must be one). */
const USER = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The stand-in identity of the example: the client's own ?user= (as
 * ws-broadcast takes it without JWTs), else "guest". It proves nothing about
 * who the client is: replace it (RouterOptions.identify) with your own
 * authentication before giving the token to people who must not pose as
 * each other.
 */
export function demoIdentity(_request: Request, url: URL): Identity | null {
  const user = url.searchParams.get("user") || "guest";
  if (!USER.test(user)) return null;
  return { sub: user, info: { name: user } };
}

function base64url(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * An HS256 JWT for ws-broadcast: sub and info from WHO, exp = NOW + JWT_TTL_S
 * (iat = NOW), and, when the client names a room (?id=), rooms = [that room]
 * so the token opens that room only.
 */
export async function mintJwt(key: string, who: Identity, room: string | null, now = Math.floor(Date.now() / 1000)): Promise<string> {
  const enc = new TextEncoder();
  const claims: Record<string, unknown> = { sub: who.sub, iat: now, exp: now + JWT_TTL_S };
  if (room !== null) claims.rooms = [room];
  if (who.info) claims.info = who.info;
  const head = base64url(enc.encode(JSON.stringify({ alg: "HS256", typ: "JWT" })));
  const body = base64url(enc.encode(JSON.stringify(claims)));
  const k = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", k, enc.encode(`${head}.${body}`)));
  return `${head}.${body}.${base64url(sig)}`;
}

/** Where a server the Worker starts keeps a key file (the sandbox's own filesystem: gone with the container). */
export const SECRET_DIR = "/run/sandbox-ws";

/**
 * How a Worker starts ROUTE's server itself (no supervisor in the image): a
 * script for `sh -c` and the environment it needs. The script drops the
 * container-wide secrets first (WS_RPC_TOKEN, WS_BROADCAST_JWT_SECRET: the
 * next SDK merges the container's envVars into every exec), writes
 * ws-broadcast's JWT key to a 0600 file under SECRET_DIR when the Worker
 * has a secret, and execs the server, whose environment then holds neither.
 */
export async function serverLaunch(secret: string | undefined, extraJson: string | undefined, route: ServerRoute): Promise<{ script: string; env: Record<string, string> }> {
  const env = await serverEnv(secret, extraJson, route);
  let script = "unset WS_RPC_TOKEN";
  if (route.jwt && secret) {
    env.WS_BROADCAST_JWT_SECRET = await broadcastJwtSecret(secret);
    env.WS_JWT_SECRET_FILE = `${SECRET_DIR}/broadcast-jwt-secret`;
    script += ` && umask 077 && mkdir -p ${SECRET_DIR} && printf "%s\\n" "$WS_BROADCAST_JWT_SECRET" >"$WS_JWT_SECRET_FILE"`;
  }
  script += ` && unset WS_BROADCAST_JWT_SECRET && exec ${route.program}`;
  return { script, env };
}

/** Whether a process's argv is ROUTE's server, started directly or by serverLaunch()'s script. */
export function isServerCommand(command: readonly string[], route: ServerRoute): boolean {
  if (command[0] === route.program) return true;
  return command[0] === "sh" && command[1] === "-c" && (command[2] ?? "").endsWith(`exec ${route.program}`);
}

/**
 * URL without its token: every query parameter whose name, decoded the way
 * URLSearchParams decodes it (so `tok%65n` too), is "token" in any case.
 * The other parameters stay byte for byte.
 */
export function withoutToken(url: URL): URL {
  const out = new URL(url.href);
  if (url.search.length <= 1) return out;
  const kept = url.search.slice(1).split("&").filter((part) => {
    let token = false;
    new URLSearchParams(part).forEach((_value, name) => {
      if (name.toLowerCase() === "token") token = true;
    });
    return !token;
  });
  out.search = kept.length ? `?${kept.join("&")}` : "";
  return out;
}

/**
 * What goes on to the server: the request without the client's token (query
 * and header), with the server's own credential: the derived token (ws-rpc)
 * or a JWT minted for WHO (ws-broadcast).
 */
export async function forwardedRequest(request: Request, url: URL, route: ServerRoute, secret: string, who: Identity | null = null): Promise<Request> {
  const headers = new Headers(request.headers);
  headers.delete("authorization");
  if (route.serverAuth) headers.set("authorization", `Bearer ${await serverToken(secret)}`);
  if (route.jwt && who) {
    headers.set("authorization", `Bearer ${await mintJwt(await broadcastJwtSecret(secret), who, url.searchParams.get("id"))}`);
  }
  return new Request(withoutToken(url).href, new Request(request, { headers }));
}

export async function handle(request: Request, opts: RouterOptions, backend: Backend): Promise<Response> {
  const url = new URL(request.url);
  const log = opts.log ?? ((m: string, e?: unknown) => console.error(m, e));

  if (url.pathname === "/" || url.pathname === "/index.html") {
    if (request.method !== "GET" && request.method !== "HEAD") return text(405, "Method Not Allowed", { allow: "GET, HEAD" });
    return new Response(request.method === "HEAD" ? null : opts.page, {
      headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-cache" },
    });
  }

  // the demo page's xterm.js, from ws-rpc (same token rules: the page adds it)
  const asset = /^\/ws\/xterm\/([^/]+)$/.exec(url.pathname)?.[1];
  if (asset !== undefined && !XTERM_ASSETS.has(asset)) return text(404, "Not Found");
  const route = asset !== undefined ? ROUTES.find((r) => r.path === "/ws/json") : ROUTES.find((r) => r.path === url.pathname);
  if (!route) return text(404, "Not Found");

  if (!opts.token) {
    log("WS_TOKEN is not set: refusing every WebSocket (set it with `wrangler secret put WS_TOKEN`)");
    return text(500, "Server misconfigured: no token");
  }
  const presented = presentedToken(request, url);
  if (presented === null || !(await tokenMatches(presented, opts.token))) {
    return text(401, "Unauthorized", { "www-authenticate": 'Bearer realm="sandbox-ws"' });
  }

  const sandboxId = sandboxIdOf(url);
  if (asset !== undefined) return fetchAsset(request, asset, sandboxId, route, backend, log);

  const notUpgrade = notAnUpgrade(request);
  if (notUpgrade) return text(426, notUpgrade, { upgrade: "websocket" });

  if (!SANDBOX_ID.test(sandboxId)) return text(400, "Invalid sandbox id: use 1-64 of A-Za-z0-9._:-");

  let who: Identity | null = null;
  if (route.jwt) {
    who = await (opts.identify ?? demoIdentity)(request, url);
    if (!who) return text(403, "Forbidden: no identity for this user (a user name is 1-64 of A-Za-z0-9._:-)");
  }

  try {
    await backend.ensure(sandboxId, route);
  } catch (e) {
    log(`${route.program} in sandbox ${sandboxId} could not be started`, e);
    return text(503, "WebSocket server unavailable", { "retry-after": "1" });
  }
  try {
    const forwarded = await forwardedRequest(request, url, route, opts.token, who);
    const response = await backend.connect(sandboxId, route, forwarded);
    // the server's own refusals (400, 401, 403, 503 when full) pass through;
    // a gateway failure between here and the server does not
    if (response.status === 500 || response.status === 502 || response.status === 504) {
      log(`${route.program} in sandbox ${sandboxId} answered ${response.status}`);
      return text(503, "WebSocket server unavailable", { "retry-after": "1" });
    }
    return response;
  } catch (e) {
    log(`${route.program} in sandbox ${sandboxId} could not be reached`, e);
    return text(503, "WebSocket server unavailable", { "retry-after": "1" });
  }
}

/** GET /ws/xterm/ASSET: ws-rpc's file (started if need be), its type and caching kept, nothing else of its answer. */
async function fetchAsset(request: Request, asset: string, sandboxId: string, route: ServerRoute, backend: Backend,
  log: (message: string, error?: unknown) => void): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") return text(405, "Method Not Allowed", { allow: "GET, HEAD" });
  if (!SANDBOX_ID.test(sandboxId)) return text(400, "Invalid sandbox id: use 1-64 of A-Za-z0-9._:-");
  try {
    await backend.ensure(sandboxId, route);
    const r = await backend.fetch(sandboxId, route, new Request(`http://container/ws/xterm/${asset}`, { method: request.method }));
    if (r.status !== 200) {
      await r.body?.cancel();
      return text(r.status === 404 ? 404 : 503, r.status === 404 ? "Not Found" : "WebSocket server unavailable");
    }
    return new Response(request.method === "HEAD" ? null : r.body, {
      headers: {
        "content-type": r.headers.get("content-type") ?? "application/octet-stream",
        "cache-control": "private, max-age=3600",
      },
    });
  } catch (e) {
    log(`${route.program} in sandbox ${sandboxId} could not serve ${asset}`, e);
    return text(503, "WebSocket server unavailable", { "retry-after": "1" });
  }
}
