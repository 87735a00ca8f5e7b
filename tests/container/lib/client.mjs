// A WebSocket client (npm `ws`) for the container suite; every wait is bounded.

import WebSocket from 'ws';
import { within } from './harness.mjs';

const MS = 5_000;

export class Client {
  /** Opens URL; resolves once open, rejects with the HTTP status when refused. */
  static async connect(url, { timeoutMs = MS, headers = {} } = {}) {
    const ws = new WebSocket(url, { handshakeTimeout: timeoutMs, headers, perMessageDeflate: false });
    const c = new Client(ws);
    const opened = new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          const e = new Error(`HTTP ${res.statusCode} instead of 101: ${body.trim()}`);
          e.status = res.statusCode;
          e.body = body;
          reject(e);
        });
      });
    });
    try {
      await within(timeoutMs, opened, `connect ${url}`);
    } catch (err) {
      ws.terminate();
      throw err;
    }
    return c;
  }

  /** Resolves with {status, body} of a refused upgrade (fails when it is accepted). */
  static async refusal(url, opts) {
    try {
      const c = await Client.connect(url, opts);
      c.terminate();
    } catch (err) {
      if (err.status) return { status: err.status, body: err.body };
      throw err;
    }
    throw new Error(`${url}: upgrade accepted, expected a refusal`);
  }

  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary, text: isBinary ? null : data.toString() };
      const w = this.waiters.shift();
      if (w) w(msg);
      else this.inbox.push(msg);
    });
    ws.on('error', () => {}); // shows as the close code
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  next(timeoutMs = MS) {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    return within(timeoutMs, new Promise((resolve) => this.waiters.push(resolve)), 'next message');
  }

  /** The next JSON message for which PRED is true; others are dropped. */
  async json(pred = () => true, timeoutMs = MS, what = 'matching message') {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`${what}: none within ${timeoutMs} ms`);
      const m = await this.next(left).catch(() => {
        throw new Error(`${what}: none within ${timeoutMs} ms`);
      });
      if (m.isBinary) continue;
      const v = JSON.parse(m.text);
      if (pred(v)) return v;
    }
  }

  send(data) {
    this.ws.send(data);
  }

  sendJson(v) {
    this.ws.send(JSON.stringify(v));
  }

  close(code = 1000, reason = '', timeoutMs = MS) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.waitClosed(timeoutMs);
  }

  waitClosed(timeoutMs = MS) {
    return within(timeoutMs, this.closed, 'close').catch((err) => {
      this.ws.terminate();
      throw err;
    });
  }

  terminate() {
    this.ws.terminate();
  }
}

// ---- the three servers' protocols, as the checks use them ----

/** One text and one binary message come back unchanged. */
export async function echoCheck(url) {
  const c = await Client.connect(url);
  try {
    c.send('hello from the container suite');
    const a = await c.next();
    if (a.isBinary || a.text !== 'hello from the container suite') throw new Error(`echo: got ${a.text}`);
    const bin = Buffer.from([0, 1, 2, 255, 254]);
    c.send(bin);
    const b = await c.next();
    if (!b.isBinary || !b.data.equals(bin)) throw new Error('echo: binary message changed');
  } finally {
    await c.close().catch(() => c.terminate());
  }
}

/** Joins ROOM as USER (optionally since SEQ); resolves with [client, welcome]. */
export async function join(base, room, user, { since, extra = '' } = {}) {
  const u = new URL(base);
  u.searchParams.set('id', room);
  u.searchParams.set('user', user);
  if (since !== undefined) u.searchParams.set('since', String(since));
  const c = await Client.connect(u.href + extra);
  const welcome = await c.json((m) => m.type === 'welcome', MS, 'welcome');
  return [c, welcome];
}

/** Two members of a fresh room: join events with counts, a message with its seq to both. */
export async function broadcastCheck(base, room) {
  const [a, wa] = await join(base, room, 'alice');
  const [b, wb] = await join(base, room, 'bob');
  try {
    if (wa.count !== 1 || wb.count !== 2) throw new Error(`counts ${wa.count}, ${wb.count}`);
    const j = await a.json((m) => m.type === 'join' && m.id === 'bob', MS, 'join of bob');
    if (j.count !== 2) throw new Error(`join count ${j.count}`);
    a.sendJson({ type: 'message', text: 'hi bob' });
    const [ma, mb] = await Promise.all([
      a.json((m) => m.type === 'message', MS, 'own message'),
      b.json((m) => m.type === 'message', MS, 'message to bob'),
    ]);
    if (ma.seq !== mb.seq || mb.text !== 'hi bob' || mb.from !== 'alice') {
      throw new Error(`message ${JSON.stringify(mb)}`);
    }
    await b.close();
    const l = await a.json((m) => m.type === 'leave' && m.id === 'bob', MS, 'leave of bob');
    if (l.count !== 1) throw new Error(`leave count ${l.count}`);
    return mb.seq;
  } finally {
    await a.close().catch(() => a.terminate());
    b.terminate();
  }
}

/** Runs COMMAND with streamed output; resolves with {start, output, result}. */
export async function execStream(c, id, command, timeoutMs = 10_000) {
  c.sendJson({ type: 'exec', id, command, stream: true });
  let output = '';
  let start = null;
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = await c.json((v) => v.id === id, end - Date.now(), `exec ${id}`);
    if (m.type === 'start') start = m;
    else if (m.type === 'stdout' || m.type === 'stderr') output += m.data;
    else if (m.type === 'result') return { start, output, result: m };
    else if (m.type === 'error') throw new Error(`exec ${id}: ${m.error}`);
  }
}

/** exec with streaming: start (pid), stdout in order, exit code; then a kill. */
export async function rpcCheck(url) {
  const c = await Client.connect(url);
  try {
    const r = await execStream(c, 1, 'for i in 1 2 3; do echo line $i; done; echo oops >&2; exit 7');
    if (!r.start || !(r.start.pid > 0)) throw new Error('no start event with a pid');
    if (!r.output.includes('line 1\nline 2\nline 3\n') || !r.output.includes('oops')) {
      throw new Error(`output ${JSON.stringify(r.output)}`);
    }
    if (r.result.exitCode !== 7) throw new Error(`exit code ${r.result.exitCode}`);
    // kill: a long command ends with SIGTERM's 143
    c.sendJson({ type: 'exec', id: 2, command: 'echo started; sleep 30', stream: true });
    await c.json((m) => m.id === 2 && m.type === 'stdout', MS, 'output of the sleeper');
    c.sendJson({ type: 'kill', id: 2, signal: 'SIGTERM' });
    const k = await c.json((m) => m.id === 2 && m.type === 'result', MS, 'result of the killed command');
    if (k.signal !== 'SIGTERM' || k.exitCode !== 143) throw new Error(`killed: ${JSON.stringify(k)}`);
  } finally {
    await c.close().catch(() => c.terminate());
  }
}
