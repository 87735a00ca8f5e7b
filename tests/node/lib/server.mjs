// Starts a sandbox-ws server binary for a test and stops it afterwards.
//
// Readiness is the servers' --notify-fd protocol: the child gets a pipe as
// fd 3 and writes "\n" to it once every listener is bound. No sleeps.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The build directory the binaries come from: $WS_BIN_DIR, else build/. */
export const binDir = process.env.WS_BIN_DIR || path.join(repoRoot, 'build');

/** Path of server NAME's binary ('echo' -> BINDIR/servers/echo/ws-echo). */
export function serverPath(name) {
  return path.join(binDir, 'servers', name, `ws-${name}`);
}

const EXIT_SYSCALL = 111; // docs/configuration.md: start-up system call failed
const STDERR_KEEP = 64 * 1024;
const running = new Set();

// A child outliving the test runner would hold its port: kill what is left.
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port that was free a moment ago on HOST. */
export async function freePort(host = '127.0.0.1') {
  const srv = net.createServer();
  srv.listen(0, host);
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Rejects with a timeout error after MS unless PROMISE settles first. */
export function within(ms, promise, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class Server {
  constructor(name, child, host, port) {
    this.name = name;
    this.child = child;
    this.host = host;
    this.port = port;
    this.stderrTail = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => {
      if (process.env.WS_TEST_VERBOSE) process.stderr.write(s);
      this.stderrTail = (this.stderrTail + s).slice(-STDERR_KEEP);
    });
    child.stdout.resume();
    /** Settles with {code, signal} when the process has exited. */
    this.exited = new Promise((resolve) => {
      const done = (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      };
      child.once('exit', done);
      child.once('error', () => done(null, null)); // could not spawn: no 'exit'
    });
  }

  get pid() {
    return this.child.pid;
  }

  /** ws:// URL of PATH (default '/'). */
  url(p = '/') {
    return `ws://${this.#hostPort()}${p}`;
  }

  /** http:// URL of PATH (default '/'). */
  httpUrl(p = '/') {
    return `http://${this.#hostPort()}${p}`;
  }

  #hostPort() {
    return `${this.host.includes(':') ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** Sends SIGNAL and resolves with {code, signal} once the process exits. */
  async signal(sig = 'SIGTERM', timeoutMs = 10_000) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(sig);
    return within(timeoutMs, this.exited, `${this.name} exit after ${sig}`);
  }

  /**
   * Stops the server: SIGTERM, then SIGKILL if it has not exited in time.
   * Rejects unless it drained and exited 0, so a server that crashed during
   * a test fails the test's hook, with its stderr.
   */
  async stop(timeoutMs = 10_000) {
    let result;
    try {
      result = await this.signal('SIGTERM', timeoutMs);
    } catch (err) {
      this.child.kill('SIGKILL');
      await this.exited;
      throw this.withStderr(err);
    }
    if (result.code !== 0) {
      throw this.withStderr(new Error(`${this.name} exited with code ${result.code}, signal ${result.signal}`));
    }
    return result;
  }

  withStderr(err) {
    err.message += `\n--- ${serverPath(this.name)} stderr (tail) ---\n${this.stderrTail.slice(-8192)}`;
    return err;
  }
}

/**
 * Starts server NAME (echo, broadcast, rpc) on 127.0.0.1 and a free port,
 * with extra command-line ARGS, and resolves once it reports readiness.
 * The child's environment has no WS_* variables unless given in ENV, so the
 * developer's shell cannot change the server under test.
 */
export async function startServer(name, args = [], { env = {}, host = '127.0.0.1', readyTimeoutMs = 15_000 } = {}) {
  const bin = serverPath(name);
  if (!existsSync(bin)) throw new Error(`${bin} does not exist: build it first (./dev test builds it)`);
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_')));
  // The free port can be taken between our probe and the server's bind.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort(host);
    const child = spawn(
      bin,
      ['--host', host, '--port', String(port), '--notify-fd', '3', ...args],
      { env: { ...cleanEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] },
    );
    running.add(child);
    const server = new Server(name, child, host, port);
    try {
      await within(readyTimeoutMs, ready(child, server.exited), `${name} readiness`);
      return server;
    } catch (err) {
      child.kill('SIGKILL');
      const { code } = await server.exited;
      if (code === EXIT_SYSCALL && attempt < 3) continue;
      throw server.withStderr(err);
    }
  }
}

function ready(child, exited) {
  return new Promise((resolve, reject) => {
    const notify = child.stdio[3];
    let got = '';
    notify.on('data', (chunk) => {
      got += chunk.toString('latin1');
      if (got.includes('\n')) resolve();
    });
    child.once('error', reject);
    exited.then(({ code, signal }) => reject(new Error(`exited before ready (code ${code}, signal ${signal})`)));
  });
}
