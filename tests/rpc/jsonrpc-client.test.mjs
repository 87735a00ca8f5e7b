// ws-rpc's JSON-RPC 2.0 dialect against an unmodified, off-the-shelf JSON-RPC
// 2.0 client: the npm package `json-rpc-2.0`, used exactly as its README
// shows (JSONRPCServerAndClient over a WebSocket from the npm `ws` package;
// request, notify, requestAdvanced with an array for a batch; addMethod to
// receive the server's exec.start / exec.output notifications).
//
// Run:  cd tests && node --test rpc/
// Environment: WS_BIN_DIR (default: build/ in this repository), WS_VALGRIND=1.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import {
  JSONRPCClient,
  JSONRPCServer,
  JSONRPCServerAndClient,
  JSONRPCErrorException,
  createJSONRPCRequest,
  createJSONRPCNotification,
} from 'json-rpc-2.0';

const BIN_DIR = process.env.WS_BIN_DIR || fileURLToPath(new URL('../../build', import.meta.url));
const BINARY = join(BIN_DIR, 'servers', 'rpc', 'ws-rpc');
const VALGRIND = process.env.WS_VALGRIND === '1';
const SCALE = VALGRIND ? 10 : 1;
const TOKEN = 'node-client-token-' + process.pid;
const SANITIZER = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];

/** Rejects after MS with WHAT unless PROMISE settles first. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms * SCALE);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Starts ws-rpc on 127.0.0.1 and a free port; readiness is the "\n" on fd 3. */
async function startRpc(args = []) {
  let cmd = BINARY;
  let argv = ['--host', '127.0.0.1', '--port', '0', '--notify-fd', '3', ...args];
  if (VALGRIND) {
    argv = ['--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite',
      '--trace-children=no', cmd, ...argv];
    cmd = 'valgrind';
  }
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_')));
  env.WS_TOKEN = TOKEN;
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    let got = '';
    child.stdio[3].on('data', (d) => {
      got += d;
      if (got.includes('\n')) resolve();
    });
    child.stdio[3].on('end', () => { if (!got.includes('\n')) reject(new Error('notify fd closed without "\\n"')); });
    exited.then(({ code }) => reject(new Error(`ws-rpc exited with ${code} before readiness:\n${log}`)));
  });
  await within(10_000, ready, 'ws-rpc readiness');
  // the listen line is logged before readiness; stderr may trail fd 3 a little
  const port = await within(5_000, (async () => {
    for (;;) {
      const m = /listen server=ws-rpc host=\S+ port=(\d+)/.exec(log);
      if (m) return Number(m[1]);
      await new Promise((r) => setTimeout(r, 10));
    }
  })(), 'the listen line');
  return {
    port,
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      const { code, signal } = await within(20_000, exited, 'ws-rpc to exit on SIGTERM');
      assert.equal(signal, null, `ws-rpc died of ${signal}\n${log}`);
      assert.equal(code, 0, `ws-rpc exited with ${code}\n${log}`);
      for (const p of SANITIZER) assert.ok(!log.includes(p), `sanitizer report in the log:\n${log}`);
    },
  };
}

/**
 * A JSON-RPC connection the way json-rpc-2.0's README wires one to a
 * WebSocket ("Bi-directional JSON-RPC"). Server-sent notifications land in
 * the methods registered with addMethod; `raw` counts every message.
 */
async function connect(server, { token = TOKEN, createID } = {}) {
  const webSocket = new WebSocket(`ws://127.0.0.1:${server.port}/`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const serverAndClient = new JSONRPCServerAndClient(
    new JSONRPCServer(),
    new JSONRPCClient((request) => {
      try {
        webSocket.send(JSON.stringify(request));
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    }, createID),
  );
  const conn = { webSocket, rpc: serverAndClient, raw: [], starts: [], outputs: [] };
  webSocket.onmessage = (event) => {
    const payload = JSON.parse(event.data.toString());
    conn.raw.push({ payload, at: performance.now() });
    serverAndClient.receiveAndSend(payload);
  };
  webSocket.onclose = (event) => {
    serverAndClient.rejectAllPendingRequests(`Connection is closed (${event.reason}).`);
  };
  serverAndClient.addMethod('exec.start', (params) => { conn.starts.push(params); });
  serverAndClient.addMethod('exec.output', (params) => {
    conn.outputs.push({ ...params, at: performance.now() });
  });
  await within(5_000, new Promise((resolve, reject) => {
    webSocket.once('open', resolve);
    webSocket.once('error', reject);
  }), 'WebSocket open');
  return conn;
}

function close(conn) {
  conn.webSocket.close();
  return within(5_000, new Promise((r) => conn.webSocket.once('close', r)), 'close');
}

describe('ws-rpc with the json-rpc-2.0 npm client', { timeout: 120_000 * SCALE }, () => {
  let server;
  let c;
  before(async () => {
    assert.ok(existsSync(BINARY), `ws-rpc is not built: ${BINARY}`);
    server = await startRpc(['--rate-limit', '0', '--deny-command', '^rm( |$)']);
    c = await connect(server);
  });
  after(async () => {
    if (c) await close(c);
    if (server) await server.stop();
  });

  test('request: ping', async () => {
    const before = Date.now();
    const result = await within(5_000, c.rpc.request('ping'), 'ping');
    assert.ok(result.timestamp >= before - 1000 && result.timestamp <= Date.now() + 1000, JSON.stringify(result));
  });

  test('request: info', async () => {
    const info = await within(5_000, c.rpc.request('info'), 'info');
    assert.equal(info.platform, 'linux');
    assert.equal(info.server.name, 'ws-rpc');
    assert.equal(typeof info.server.pid, 'number');
    assert.equal(info.server.limits.max_exec_per_conn, 4);
    assert.equal(info.memory.total > 0, true);
  });

  test('request: exec with command and with argv', async () => {
    const r = await within(10_000, c.rpc.request('exec', { command: 'echo out; echo err >&2; exit 3' }), 'exec');
    assert.deepEqual([r.stdout, r.stderr, r.exitCode, r.signal, r.timedOut, r.truncated],
      ['out\n', 'err\n', 3, null, false, false]);
    const a = await within(10_000, c.rpc.request('exec', { argv: ['printf', '%s|', 'a b', 'c"d'] }), 'exec argv');
    assert.equal(a.stdout, 'a b|c"d|');
    const b = await within(10_000, c.rpc.request('exec', { command: "printf '\\377\\000'", encoding: 'base64' }), 'base64');
    assert.deepEqual(Buffer.from(b.stdout, 'base64'), Buffer.from([0xff, 0]));
  });

  test('streamed exec: exec.start and exec.output notifications arrive before the result', async () => {
    c.starts.length = 0;
    c.outputs.length = 0;
    const sent = performance.now();
    const result = await within(15_000, c.rpc.request('exec', {
      command: 'echo first; sleep 1; echo second >&2', stream: true,
    }), 'streamed exec');
    const done = performance.now();
    assert.equal(c.starts.length, 1);
    assert.ok(c.starts[0].pid > 0);
    const out = c.outputs.filter((o) => o.stream === 'stdout').map((o) => o.data).join('');
    const err = c.outputs.filter((o) => o.stream === 'stderr').map((o) => o.data).join('');
    assert.equal(out, 'first\n');
    assert.equal(err, 'second\n');
    assert.equal(result.stdout, '');
    assert.equal(result.exitCode, 0);
    // the first chunk came during the sleep, not with the result
    assert.ok(done - c.outputs[0].at >= 500, `first chunk at +${c.outputs[0].at - sent} ms, result at +${done - sent} ms`);
    assert.equal(c.starts[0].id, c.outputs[0].id);
  });

  test('list and kill a running command (its id is the exec request id)', async () => {
    const running = c.rpc.request('exec', { command: 'sleep 30' });
    let listed;
    await within(5_000, (async () => {
      for (;;) {
        listed = await c.rpc.request('list');
        if (listed.commands.length) return;
      }
    })(), 'the command to be listed');
    assert.equal(listed.commands.length, 1);
    const cmd = listed.commands[0];
    assert.equal(cmd.command, 'sleep 30');
    assert.equal(cmd.stream, false);
    assert.ok(cmd.pid > 0 && cmd.durationMs >= 0);
    const killed = await within(5_000, c.rpc.request('kill', { id: cmd.id, signal: 'KILL' }), 'kill');
    assert.deepEqual(killed, { ok: true, signal: 'SIGKILL' });
    const r = await within(10_000, running, 'the killed command');
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.exitCode, 137);
    assert.deepEqual(await c.rpc.request('list'), { commands: [], processes: [] });
  });

  test('stdin to a running command, then eof', async () => {
    const running = c.rpc.request('exec', { argv: ['cat'], stdinOpen: true });
    let id;
    await within(5_000, (async () => {
      for (;;) {
        const { commands } = await c.rpc.request('list');
        if (commands.length) { id = commands[0].id; return; }
      }
    })(), 'cat to be listed');
    assert.deepEqual(await c.rpc.request('stdin', { id, data: 'hello ' }), { ok: true });
    assert.deepEqual(await c.rpc.request('stdin', { id, data: 'wörld', eof: true }), { ok: true });
    const r = await within(10_000, running, 'cat');
    assert.equal(r.stdout, 'hello wörld');
    assert.equal(r.exitCode, 0);
  });

  test('errors reject with JSONRPCErrorException and the spec/server codes', async () => {
    const cases = [
      [() => c.rpc.request('nope'), -32601, 'Method not found'],
      [() => c.rpc.request('exec', {}), -32602, 'Invalid params'],
      [() => c.rpc.request('exec', ['ls']), -32602, 'Invalid params'],
      [() => c.rpc.request('kill', { id: 'ghost' }), -32003, 'No such command'],
      [() => c.rpc.request('stdin', { id: 12345, data: 'x' }), -32003, 'No such command'],
      [() => c.rpc.request('exec', { command: 'rm -rf /nothing' }), -32004, 'Invalid command'],
    ];
    for (const [call, code, message] of cases) {
      await assert.rejects(within(5_000, call(), message), (e) => {
        assert.ok(e instanceof JSONRPCErrorException, String(e));
        assert.equal(e.code, code);
        assert.equal(e.message, message);
        return true;
      });
    }
    // the connection is still fine
    assert.ok((await c.rpc.request('ping')).timestamp > 0);
  });

  test('notify: notifications get no reply', async () => {
    const n = c.raw.length;
    c.rpc.notify('ping');
    c.rpc.notify('info', {});
    c.rpc.notify('nope');
    c.rpc.notify('exec', {});
    // the next request's reply is the only message that comes back
    await c.rpc.request('ping');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.raw.length, n + 1, JSON.stringify(c.raw.slice(n).map((m) => m.payload)));
  });

  test('batch: requestAdvanced with an array (a notification inside gets no reply)', async () => {
    const reqs = [
      createJSONRPCRequest(9001, 'ping'),
      createJSONRPCNotification('ping'),
      createJSONRPCRequest(9002, 'exec', { argv: ['echo', 'batched'] }),
      createJSONRPCRequest(9003, 'nope'),
      createJSONRPCRequest('s-9004', 'info'),
    ];
    const n = c.raw.length;
    const responses = await within(10_000, c.rpc.requestAdvanced(reqs), 'batch');
    assert.equal(responses.length, 4);
    const byId = new Map(responses.map((r) => [r.id, r]));
    assert.ok(byId.get(9001).result.timestamp > 0);
    assert.equal(byId.get(9002).result.stdout, 'batched\n');
    assert.equal(byId.get(9003).error.code, -32601);
    assert.equal(byId.get('s-9004').result.platform, 'linux');
    // one array came back for the one batch
    const batch = c.raw.slice(n).map((m) => m.payload);
    assert.equal(batch.length, 1);
    assert.ok(Array.isArray(batch[0]) && batch[0].length === 4);
  });

  test('string ids from a custom ID factory (README: advanced client) are echoed', async () => {
    let n = 0;
    const s = await connect(server, { createID: () => `req-${++n}` });
    try {
      const ids = [];
      s.webSocket.on('message', (d) => { ids.push(JSON.parse(d.toString()).id); });
      await s.rpc.request('ping');
      const r = await s.rpc.request('exec', { command: 'echo $((6*7))' });
      assert.equal(r.stdout, '42\n');
      assert.deepEqual(ids, ['req-1', 'req-2']);
    } finally {
      await close(s);
    }
  });

  test('20 concurrent requests resolve to their own results', async () => {
    const calls = Array.from({ length: 20 }, (_, i) => (i % 5 === 0
      ? c.rpc.request('exec', { argv: ['echo', String(i)] }).then((r) => r.stdout)
      : c.rpc.request('ping').then((r) => typeof r.timestamp)));
    const got = await within(15_000, Promise.all(calls), 'concurrent requests');
    got.forEach((v, i) => assert.equal(v, i % 5 === 0 ? `${i}\n` : 'number'));
  });

  test('a wrong token is refused before the upgrade (401)', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`, { headers: { Authorization: 'Bearer wrong' } });
    const status = await within(5_000, new Promise((resolve) => {
      ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); req.destroy(); });
      ws.on('open', () => resolve('open'));
      ws.on('error', () => {});
    }), 'the refusal');
    assert.equal(status, 401);
  });
});
