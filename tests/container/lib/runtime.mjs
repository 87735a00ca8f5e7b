// The "container runtime" behind the stand-in SDK (relay/sandbox-sdk.js): a
// loopback HTTP service in the test process that runs what a Worker asks the
// Sandbox to run. ws-* programs are the built servers, started with the
// Worker's environment where WS_PORT (a container port) becomes its loopback
// port; s6-svok and s6-svwait run against the test's s6 tree, whose
// /etc/sandbox-ws/service they see in place of the image's, or, with
// CONTAINER, in the real image through `podman exec`. Anything else fails
// to spawn, as a program missing from the image would.

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { within } from './harness.mjs';

const SERVICE_DIR = '/etc/sandbox-ws/service';

function hasUser(name) {
  try {
    return new RegExp(`^${name}:`, 'm').test(readFileSync('/etc/passwd', 'utf8'));
  } catch {
    return false;
  }
}

export class Runtime {
  /** BUILD: the meson build; PORTS: {container port: loopback port}; TREE: the s6 tree the image's supervisor stands for (optional). */
  constructor({ build, ports, tree = null, listen, external = false, containerEnv = {}, container = null }) {
    Object.assign(this, { build, ports, tree, listen, external, containerEnv, container });
    this.dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-runtime-'));
    this.logPath = join(this.dir, 'processes.log');
    this.procs = new Map(); // id -> {id, pid, command, child, exit, exited, processId}
    this.execs = []; // every exec/startProcess: {command, env}
    this.refuse = new Set(); // programs whose start fails (a broken image)
    this.next = 1;
    this.url = `http://127.0.0.1:${listen}`;
  }

  program(name) {
    const m = /^ws-(echo|broadcast|rpc)$/.exec(name);
    if (m) return join(this.build, 'servers', m[1], name);
    if (/^(s6-svok|s6-svwait|s6-svstat|sh)$/.test(name) && (this.tree || this.container)) return name;
    return null;
  }

  spawnProcess({ command, env = {}, processId }) {
    // 0.12's startProcess(command) is a shell command line, the Workers'
    // own launch script is ["sh", "-c", SCRIPT]: a server started through
    // one (`... exec ws-broadcast`) is that server
    const line = command.length === 1 && /\s/.test(command[0]);
    const script = line ? `exec ${command[0]}` : (command[0] === 'sh' && command[1] === '-c' ? command[2] : null);
    const shell = script !== null;
    const name = shell ? (/\bexec (ws-[a-z]+)'?\s*$/.exec(script)?.[1] ?? 'sh') : command[0];
    const args = shell ? ['-c', script.replaceAll('/run/sandbox-ws', join(this.dir, 'run')), ...command.slice(line ? 1 : 3)] : command.slice(1);
    if (this.external && name.startsWith('ws-')) return this.externalProcess(name);
    const bin = shell && name.startsWith('ws-') ? (this.program(name) ? 'sh' : null) : this.program(shell ? 'sh' : name);
    if (!bin || this.refuse.has(name)) throw new Error(`ProcessSpawnFailedError: ${name}: not found in the image`);
    if (this.container) return this.podmanExec(command, name, processId);
    const servers = ['echo', 'broadcast', 'rpc'].map((s) => join(this.build, 'servers', s));
    // the container's own environment first (0.13.0-next merges the Durable
    // Object's envVars into every exec), then the process's
    const cenv = { PATH: [...servers, process.env.PATH].join(':'), ...this.containerEnv, ...env };
    if (cenv.WS_JWT_SECRET_FILE) cenv.WS_JWT_SECRET_FILE = cenv.WS_JWT_SECRET_FILE.replaceAll('/run/sandbox-ws', join(this.dir, 'run'));
    if (name.startsWith('ws-')) {
      const port = this.ports[String(env.WS_PORT)];
      if (!port) throw new Error(`no loopback port for container port ${env.WS_PORT}`);
      cenv.WS_PORT = String(port);
      cenv.WS_HOST = '127.0.0.1';
      cenv.WS_DB ??= join(this.dir, 'rooms.db'); // sandbox.Dockerfile's ENV WS_DB
      if (cenv.WS_RUN_AS === 'ws-exec' && !hasUser('ws-exec')) cenv.WS_RUN_AS = 'nobody';
    }
    const argv = args.map((a) => (this.tree && a.startsWith(SERVICE_DIR) ? this.tree.scandir + a.slice(SERVICE_DIR.length) : a));
    const log = openSync(this.logPath, 'a');
    const child = spawn(bin, argv, { env: cenv, stdio: ['ignore', log, log] });
    closeSync(log);
    return this.track(child, command, name, processId, env);
  }

  /** CONTAINER: the image's s6 runs the servers; s6-svok, s6-svwait and sh run in it through `podman exec`. */
  podmanExec(command, name, processId) {
    if (name.startsWith('ws-')) throw new Error(`ProcessSpawnFailedError: ${name}: this runtime only asks the image's s6`);
    const log = openSync(this.logPath, 'a');
    const child = spawn('podman', ['exec', this.container, ...command], { env: process.env, stdio: ['ignore', log, log] });
    closeSync(log);
    return this.track(child, command, name, processId, {});
  }

  track(child, command, name, processId, env) {
    const id = processId ?? `proc-${this.next++}`;
    const p = { id, pid: child.pid ?? 0, command, program: name, child, exit: null, startedAt: new Date().toISOString() };
    p.exited = new Promise((resolve) => {
      child.once('error', () => { p.exit = { code: 127, timedOut: false }; resolve(); });
      child.once('exit', (code, signal) => {
        p.exit = { code: code ?? 128 + 15, ...(signal ? { signal: 15 } : {}), timedOut: false };
        resolve();
      });
    });
    this.procs.set(id, p);
    this.execs.push({ command, program: name, env });
    return p;
  }

  /** EXTERNAL: the servers were started by someone else (a test's own server); they show as running. */
  externalProcess(name) {
    const id = `external-${name}`;
    let p = this.procs.get(id);
    if (!p) {
      p = { id, pid: 1, command: [name], program: name, exit: null, startedAt: new Date().toISOString(), exited: new Promise(() => {}), child: null };
      this.procs.set(id, p);
    }
    return p;
  }

  /** A process as both SDK generations describe it. */
  describe(p) {
    const running = p.exit === null;
    return {
      id: p.id, pid: p.pid, command: p.command, startedAt: p.startedAt,
      status: running ? 'running' : (p.exit.code === 0 ? 'completed' : 'failed'), // 0.12
      state: running ? 'running' : 'exited', // 0.13.0-next
      ...(running ? {} : { exit: p.exit, exitCode: p.exit.code, endedAt: new Date().toISOString() }),
    };
  }

  async handle(req, res) {
    const url = new URL(req.url, this.url);
    let body = {};
    if (req.method === 'POST') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      body = raw ? JSON.parse(raw) : {};
    }
    const send = (status, v) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(v));
    };
    const id = url.searchParams.get('id');
    switch (url.pathname) {
    case '/exec':
      try {
        return send(200, this.describe(this.spawnProcess(body)));
      } catch (e) {
        return send(500, { error: String(e.message) });
      }
    case '/process': {
      const p = this.procs.get(id);
      return p ? send(200, this.describe(p)) : send(404, null);
    }
    case '/processes':
      if (this.external) for (const n of ['ws-echo', 'ws-broadcast', 'ws-rpc']) this.externalProcess(n);
      return send(200, [...this.procs.values()].map((p) => this.describe(p)));
    case '/wait': {
      const p = this.procs.get(id);
      if (!p) return send(404, null);
      await p.exited;
      return send(200, this.describe(p));
    }
    case '/kill': {
      const p = this.procs.get(body.id);
      if (p && p.exit === null && p.child) p.child.kill(body.signal === 9 ? 'SIGKILL' : 'SIGTERM');
      return send(200, {});
    }
    case '/cleanup':
      for (const [k, p] of this.procs) if (p.exit !== null) this.procs.delete(k);
      return send(200, {});
    default:
      return send(404, null);
    }
  }

  async start() {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        res.writeHead(500);
        res.end(String(e));
      });
    });
    await new Promise((resolve) => this.server.listen(this.listen, '127.0.0.1', resolve));
  }

  /** The running server processes started for PROGRAM (e.g. 'ws-echo'). */
  running(program) {
    return [...this.procs.values()].filter((p) => (p.program ?? p.command[0]) === program && p.exit === null);
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops every process it started (SIGTERM, then SIGKILL) and the service. */
  async cleanup() {
    const live = [...this.procs.values()].filter((p) => p.exit === null && p.child);
    for (const p of live) p.child.kill('SIGTERM');
    await within(5_000, Promise.all(live.map((p) => p.exited)), 'runtime processes exit').catch(() => {
      for (const p of live) p.child.kill('SIGKILL');
    });
    this.server?.closeAllConnections?.();
    this.server?.close();
    if (!process.env.WS_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}
