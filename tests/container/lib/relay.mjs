// workerd (npm) serving a Worker of container/ unchanged: its src/index.ts
// (container/worker for @cloudflare/sandbox 0.12, container/worker-next for
// 0.13.0-next) compiled with its own typescript, the module name
// "@cloudflare/sandbox" bound to the stand-in (relay/sandbox-sdk.js: the SDK's
// wsConnect() and the message-by-message relay of @cloudflare/containers),
// the demo page, and loopback in place of the container (lib/runtime.mjs).

import { execFile, spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until, within } from './harness.mjs';

const run = promisify(execFile);

/** router.ts serverToken(): what the Worker gives ws-rpc in place of the clients' token. */
export const serverToken = (secret) => createHmac('sha256', secret).update('sandbox-ws server token v1').digest('hex');

/** The Workers under test: the SDK line, its directory under container/. */
export const WORKERS = {
  '0.12': { dir: 'worker', sdk: '0.12.10' },
  next: { dir: 'worker-next', sdk: '0.13.0-next.751.1' },
};

const compiled = {}; // line -> directory holding worker/src/{index,router}.js, once per run

/** Compiles the Worker of LINE (index.ts and router.ts) to DIR with its own typescript. */
export async function compileWorker(root, line, dir) {
  const worker = join(root, 'container', WORKERS[line].dir);
  await run(join(worker, 'node_modules', '.bin', 'tsc'), [
    '-p', worker, '--noEmit', 'false', '--outDir', dir, '--rootDir', join(root, 'container'),
  ], { cwd: worker, timeout: 120_000 }).catch((e) => { throw new Error(`tsc ${WORKERS[line].dir}: ${e.stdout}${e.stderr}`); });
}

/** The Worker of LINE compiled once per run: the directory holding worker/src/router.js (and the index). */
export async function compiledWorker(root, line) {
  if (!compiled[line]) {
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-worker-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    await compileWorker(root, line, dir);
    compiled[line] = dir;
  }
  return compiled[line];
}

export function workerdBin(here) {
  return join(here, 'node_modules', '@cloudflare', 'workerd-linux-64', 'bin', 'workerd');
}

export class Relay {
  /**
   * LINE: '0.12' or 'next' (which Worker); PORTS: {8080: loopback port, ...};
   * CONTROL: the Runtime's URL; LISTEN: workerd's own port; SERVER_ENV: the
   * Worker's WS_SERVER_ENV var (an object).
   */
  constructor({ root, here, line = 'next', ports, token, listen, control, serverEnv = {} }) {
    Object.assign(this, { root, here, line, ports, token, listen, control, serverEnv });
    this.dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-relay-'));
    this.url = `http://127.0.0.1:${listen}`;
  }

  async start() {
    const d = this.dir;
    const out = await compiledWorker(this.root, this.line);
    const index = join(out, WORKERS[this.line].dir, 'src', 'index.js');
    const router = join(out, 'worker', 'src', 'router.js');
    for (const f of ['entry.js', 'sandbox-sdk.js', 'containers-relay.js']) copyFileSync(join(this.here, 'relay', f), join(d, f));
    copyFileSync(index, join(d, 'index.js'));
    copyFileSync(router, join(d, 'router.js'));
    copyFileSync(join(this.root, 'container', 'demo', 'index.html'), join(d, 'index.html'));
    const capnp = (s) => JSON.stringify(s);
    // module names are paths: index.js imports "./router" (or
    // "../../worker/src/router") and "../../demo/index.html" from worker/src/
    writeFileSync(join(d, 'config.capnp'), `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "relay", worker = .relay),
    # outbound fetches may reach loopback only
    (name = "loopback", network = (allow = ["local"])),
  ],
  sockets = [ (name = "http", address = ${capnp(`127.0.0.1:${this.listen}`)}, http = (), service = "relay") ],
);
const relay :Workerd.Worker = (
  modules = [
    (name = "entry.js", esModule = embed "entry.js"),
    (name = "worker/src/index.js", esModule = embed "index.js"),
    (name = "worker/src/router", esModule = embed "router.js"),
    (name = "worker/src/@cloudflare/sandbox", esModule = embed "sandbox-sdk.js"),
    (name = "worker/src/@cloudflare/containers-relay.js", esModule = embed "containers-relay.js"),
    (name = "demo/index.html", text = embed "index.html"),
  ],
  compatibilityDate = "2025-09-01",
  compatibilityFlags = ["nodejs_compat"],
  bindings = [
    (name = "WS_TOKEN", text = ${capnp(this.token)}),
    (name = "WS_SERVER_ENV", text = ${capnp(JSON.stringify(this.serverEnv))}),
    (name = "PORTS", text = ${capnp(JSON.stringify(this.ports))}),
    (name = "CONTROL", text = ${capnp(this.control)}),
    (name = "LINE", text = ${capnp(this.line)}),
  ],
  globalOutbound = "loopback",
);
`);
    this.logPath = join(d, 'workerd.log');
    const log = openSync(this.logPath, 'a');
    const t0 = performance.now();
    this.proc = spawn(workerdBin(this.here), ['serve', join(d, 'config.capnp')], { stdio: ['ignore', log, log] });
    closeSync(log);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    await until(10_000, async () => {
      if (this.proc.exitCode !== null) throw new Error(`workerd exited ${this.proc.exitCode}: ${this.log()}`);
      try {
        const r = await fetch(`${this.url}/`);
        await r.arrayBuffer();
        return r.status === 200;
      } catch {
        return false;
      }
    }, 'workerd serving', 10);
    this.startMs = performance.now() - t0;
  }

  /** What the Worker handed to wsConnect() so far: [{sandboxId, port, url, authorization}]. */
  async seen() {
    const r = await fetch(`${this.url}/__relay/seen`);
    return r.json();
  }

  /** The relay's counters: {inflight: open relayed WebSockets, relayed: all so far}. */
  async counters() {
    const r = await fetch(`${this.url}/__relay/counters`);
    return r.json();
  }

  wsUrl(path) {
    return `ws://127.0.0.1:${this.listen}${path}`;
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    await within(5_000, this.exited, 'workerd exit').catch(() => this.proc.kill('SIGKILL'));
  }

  /** Stops workerd and removes its directory (WS_KEEP_TMP=1 keeps it). */
  async cleanup() {
    await this.stop();
    if (!process.env.WS_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}
