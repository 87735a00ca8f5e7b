// workerd (npm) serving tests/container/relay/relay.js: the real Worker's
// router compiled from container/worker/src/router.ts, the demo page, and
// loopback in place of the Sandbox container.

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

let compiled = null; // the directory holding router.js, once per run

/** Compiles router.ts to DIR/router.js with the worker's own typescript. */
export async function compileRouter(root, dir) {
  const worker = join(root, 'container', 'worker');
  await run(join(worker, 'node_modules', '.bin', 'tsc'), [
    join(worker, 'src', 'router.ts'), '--outDir', dir, '--target', 'es2022', '--module', 'es2022',
    '--lib', 'es2022,dom', '--strict', '--skipLibCheck',
  ], { cwd: worker, timeout: 60_000 }).catch((e) => { throw new Error(`tsc router.ts: ${e.stdout}${e.stderr}`); });
}

export function workerdBin(here) {
  return join(here, 'node_modules', '@cloudflare', 'workerd-linux-64', 'bin', 'workerd');
}

export class Relay {
  /** PORTS: {8080: loopback port, ...}; LISTEN: the relay's own port. */
  constructor({ root, here, ports, token, listen }) {
    Object.assign(this, { root, here, ports, token, listen });
    this.dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-relay-'));
    this.url = `http://127.0.0.1:${listen}`;
  }

  async start() {
    const d = this.dir;
    if (!compiled) {
      const dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-router-'));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      await compileRouter(this.root, dir);
      compiled = dir;
    }
    copyFileSync(join(compiled, 'router.js'), join(d, 'router.js'));
    copyFileSync(join(this.here, 'relay', 'relay.js'), join(d, 'relay.js'));
    copyFileSync(join(this.root, 'container', 'demo', 'index.html'), join(d, 'index.html'));
    const capnp = (s) => JSON.stringify(s);
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
    (name = "relay.js", esModule = embed "relay.js"),
    (name = "router.js", esModule = embed "router.js"),
    (name = "index.html", text = embed "index.html"),
  ],
  compatibilityDate = "2025-09-01",
  bindings = [
    (name = "WS_TOKEN", text = ${capnp(this.token)}),
    (name = "PORTS", text = ${capnp(JSON.stringify(this.ports))}),
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

  /** What the Worker handed to the backend so far: [{sandboxId, path, url, authorization}]. */
  async seen() {
    const r = await fetch(`${this.url}/__relay/seen`);
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
