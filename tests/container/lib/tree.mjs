// The s6 service tree of container/s6, run on the host against the built
// servers: a temporary copy, s6-svscan on it, the servers found through PATH
// and configured through the same WS_* variables as in the image.

import { spawn, execFile } from 'node:child_process';
import { closeSync, cpSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { until, within } from './harness.mjs';

const run = promisify(execFile);
export const SERVICES = ['echo', 'broadcast', 'rpc'];

/** ws-rpc (root here) runs commands as ws-exec; a host without that user lends nobody. */
function execUser() {
  try {
    if (/^ws-exec:/m.test(readFileSync('/etc/passwd', 'utf8'))) return {};
  } catch { /* no passwd: let ws-service say so */ }
  return { WS_RPC_RUN_AS: 'nobody' };
}

/** `s6-svstat -o up,ready,pid,wantedup,updownfor`, parsed (updownfor: whole seconds). */
export async function status(svcDir) {
  const { stdout } = await run('s6-svstat', ['-o', 'up,ready,pid,wantedup,updownfor', svcDir]);
  const [up, ready, pid, wantedup, updownfor] = stdout.trim().split(/\s+/);
  return {
    up: up === 'true', ready: ready === 'true', pid: Number(pid), wantedup: wantedup === 'true',
    updownfor: Number(updownfor),
  };
}

export class Tree {
  /**
   * ROOT: the repository; BUILD: the meson build dir; PORTS: {echo, broadcast, rpc};
   * ENV: more variables (WS_RPC_TOKEN, WS_BROADCAST_DB, ...); SERVICES: which to keep.
   */
  constructor({ root, build, ports, env = {}, services = SERVICES }) {
    this.dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-s6-'));
    this.scandir = join(this.dir, 'service');
    cpSync(join(root, 'container', 's6'), this.scandir, { recursive: true });
    this.services = services;
    this.logPath = join(this.dir, 'svscan.log');
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_')));
    const bins = ['echo', 'broadcast', 'rpc', 'sandbox-run'].map((s) => join(build, 'servers', s));
    this.env = {
      ...clean,
      PATH: [...bins, clean.PATH || '/usr/bin:/bin'].join(':'),
      WS_ENVDIR: join(this.dir, 'no-envdir'),
      WS_HOST: '127.0.0.1',
      WS_SERVICES: services.join(' '),
      WS_ECHO_PORT: String(ports.echo),
      WS_BROADCAST_PORT: String(ports.broadcast),
      WS_RPC_PORT: String(ports.rpc),
      WS_BROADCAST_DB: join(this.dir, 'rooms.db'),
      ...(env.WS_RPC_USER ? {} : execUser()), // an unprivileged ws-rpc runs commands as itself
      ...env,
    };
    this.ports = ports;
  }

  svc(name) {
    return join(this.scandir, name);
  }

  /** Starts s6-svscan; resolves once every service's supervisor is there. */
  async start() {
    const log = openSync(this.logPath, 'a');
    // its own process group, so that a failed stop can take the whole tree down
    this.proc = spawn('s6-svscan', [this.scandir], { env: this.env, stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    await until(5_000, async () => {
      for (const s of SERVICES) {
        try {
          await run('s6-svok', [this.svc(s)]);
        } catch {
          return false;
        }
      }
      return true;
    }, 's6-supervise on every service');
  }

  /** s6-svwait -U: every named service up and ready (its server wrote to the notification fd). */
  async waitReady(names = this.services, ms = 5_000) {
    await run('s6-svwait', ['-U', '-t', String(ms), ...names.map((n) => this.svc(n))], { timeout: ms + 1_000 });
  }

  status(name) {
    return status(this.svc(name));
  }

  svcCmd(name, ...flags) {
    return run('s6-svc', [...flags, this.svc(name)]);
  }

  log() {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  /** SIGTERM to s6-svscan (what a container stop does): resolves with its exit. */
  async stop(ms = 10_000) {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.exited;
    this.proc.kill('SIGTERM');
    try {
      return await within(ms, this.exited, 's6-svscan exit');
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Kills what is left of the tree and removes its directory (WS_KEEP_TMP=1 keeps it). */
  async cleanup() {
    await this.kill();
    if (!process.env.WS_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Kills the tree and its servers at once (cleanup after a failure). */
  async kill() {
    const pids = [];
    for (const s of SERVICES) {
      const st = await this.status(s).catch(() => null);
      if (st && st.pid > 0) pids.push(st.pid);
    }
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      try { process.kill(-this.proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
}
