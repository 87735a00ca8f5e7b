// Worker hop: both Workers of container/ — worker/ (@cloudflare/sandbox 0.12)
// and worker-next/ (0.13.0-next) — type-checked against their pinned SDKs,
// then run unchanged in Cloudflare's workerd with a stand-in SDK whose
// wsConnect() relays like the real one (@cloudflare/containers: message by
// message, pings answered on each side, 1005/1006 -> 1000, errors -> 1011,
// an open socket in flight). Every case runs through each Worker:
//   0.12: no supervisor (sandbox.Dockerfile's shape): the Worker starts each
//         server with startProcess() and waits with waitForPort();
//   next: the servers run under s6 (../Dockerfile's shape): the Worker starts
//         nothing and waits for s6's readiness; without s6 it exec()s them.

import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { request as httpRequest, createServer } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import WebSocket, { WebSocketServer } from 'ws';
import { broadcastCheck, Client, echoCheck, join as joinRoom, rpcCheck } from './lib/client.mjs';
import { assert, assertEqual, until, within } from './lib/harness.mjs';
import { compiledWorker, Relay, serverToken, WORKERS } from './lib/relay.mjs';
import { Runtime } from './lib/runtime.mjs';
import { Tree } from './lib/tree.mjs';

const exec = promisify(execFile);
const TOKEN = 'worker-hop-token';

/** router.ts broadcastJwtSecret(): the key ws-broadcast verifies the Worker's JWTs with. */
export const jwtKey = (secret) => createHmac('sha256', secret).update('ws-broadcast-jwt').digest('hex');

/** Verifies an HS256 JWT with KEY (node:crypto, not the Worker's code); returns its claims. */
function verifyJwt(jwt, key) {
  const [h, p, sig] = jwt.split('.');
  const want = createHmac('sha256', key).update(`${h}.${p}`).digest('base64url');
  assertEqual(sig, want, 'JWT signature');
  assertEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { alg: 'HS256', typ: 'JWT' }, 'JWT header');
  return JSON.parse(Buffer.from(p, 'base64url').toString());
}

/** A raw HTTP/1.1 request (Node's fetch cannot send Connection/Upgrade): {status, body, headers}. */
function rawRequest(url, headers) {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: '', headers: res.headers });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * A client of the Sandbox SDK's terminal protocol (0.13.0-next framing, as
 * ws-rpc serves it): text frames are JSON control, each binary frame of
 * output is announced by {"type":"chunk","cursor","byteLength"}.
 */
class Terminal {
  static async open(url) {
    const t = new Terminal(new WebSocket(url, { perMessageDeflate: false }));
    await within(5_000, new Promise((resolve, reject) => {
      t.ws.once('open', resolve);
      t.ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`)));
      t.ws.once('error', reject);
    }), `open ${url}`);
    t.ready = await t.until((c) => c.type === 'ready');
    t.cursor = Number(t.ready.cursor);
    return t;
  }

  constructor(ws) {
    this.ws = ws;
    this.screen = '';
    this.controls = [];
    this.header = null;
    this.waiters = [];
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve({ code })));
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        if (!this.header || this.header.byteLength !== data.length) throw new Error('a binary frame without its chunk header');
        this.screen += data.toString('latin1');
        this.cursor = Number(this.header.cursor);
        this.header = null;
      } else {
        const c = JSON.parse(data.toString());
        if (c.type === 'chunk') this.header = c;
        else this.controls.push(c);
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  type(text) {
    this.ws.send(Buffer.from(text));
  }

  control(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  async wait(pred, what) {
    const end = Date.now() + 10_000;
    for (;;) {
      const v = pred();
      if (v) return v;
      if (Date.now() > end) throw new Error(`${what}: not within 10 s; screen ends ${JSON.stringify(this.screen.slice(-200))}`);
      await within(end - Date.now(), new Promise((resolve) => this.waiters.push(resolve)), what).catch(() => {});
    }
  }

  until(pred) {
    return this.wait(() => this.controls.find(pred), 'control message');
  }

  expect(text) {
    return this.wait(() => this.screen.includes(text), JSON.stringify(text));
  }
}

/** Opens a raw `ws` socket that does not answer pings itself; records the pings and pongs it sees. */
async function quietSocket(url) {
  const ws = new WebSocket(url, { autoPong: false, perMessageDeflate: false });
  const seen = { pings: 0, pongs: 0, messages: [] };
  ws.on('ping', () => seen.pings++);
  ws.on('pong', () => seen.pongs++);
  ws.on('message', (d) => seen.messages.push(d.toString()));
  ws.on('error', () => {});
  const closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString(), at: Date.now() })));
  await within(5_000, new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('unexpected-response', (_q, r) => reject(new Error(`HTTP ${r.statusCode}`))); }), `open ${url}`);
  return { ws, seen, closed };
}

export async function run(h, ctx) {
  await routerFuzz(h, ctx);
  // WS_WORKER_LINES=next (or 0.12) runs one Worker only, when working on it
  const only = (process.env.WS_WORKER_LINES || '0.12 next').split(/[\s,]+/);
  for (const [line, offset] of [['0.12', 20], ['next', 40]].filter(([l]) => only.includes(l))) {
    const section = h.section;
    h.section = `${section} ${line}`;
    try {
      await runLine(h, ctx, line, offset);
    } finally {
      h.section = section;
    }
  }
}

async function runLine(h, ctx, line, base) {
  const dir = join(ctx.root, 'container', WORKERS[line].dir);
  await h.check(`tsc --noEmit on container/${WORKERS[line].dir} (npm @cloudflare/sandbox ${WORKERS[line].sdk} types)`, async () => {
    const t0 = performance.now();
    await exec(join(dir, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', dir], { timeout: 120_000 })
      .catch((e) => { throw new Error(`${e.stdout}${e.stderr}`); });
    h.note(`tsc --noEmit: ${Math.round(performance.now() - t0)} ms`);
  }, { timeout: 130_000 });

  const port = (n) => ctx.port(base + n);
  const ports = { echo: port(0), broadcast: port(1), rpc: port(2) };
  const cports = { 8080: ports.echo, 8081: ports.broadcast, 8082: ports.rpc };
  const s6 = line === 'next';
  // next: the image's s6 runs the servers, ws-rpc holding the token the
  // Worker derives (its Durable Object's envVars); 0.12: the Worker starts them
  const tree = s6 ? new Tree({
    root: ctx.root, build: ctx.build, ports,
    env: { WS_RPC_TOKEN: serverToken(TOKEN), WS_BROADCAST_JWT_SECRET: jwtKey(TOKEN), WS_LOG_LEVEL: 'info' },
  }) : null;
  if (tree) ctx.cleanup(() => tree.cleanup());
  const runtime = new Runtime({ build: ctx.build, ports: cports, tree, listen: port(3) });
  ctx.cleanup(() => runtime.cleanup());
  const relay = new Relay({
    root: ctx.root, here: ctx.here, line, token: TOKEN, listen: port(4), ports: cports, control: runtime.url,
    serverEnv: s6 ? {} : { WS_LOG_LEVEL: 'info' },
  });
  ctx.cleanup(() => relay.cleanup());
  const serverLog = () => (tree ? tree.log() : runtime.log());

  const up = await h.check(`the Worker in workerd with the stand-in SDK starts${s6 ? ', servers under s6' : ''}`, async () => {
    await runtime.start();
    if (tree) {
      await tree.start();
      await tree.waitReady();
    }
    await relay.start();
    h.note(`workerd start to serving: ${Math.round(relay.startMs)} ms`);
  }, { timeout: 90_000 });
  if (!up) return;

  const ws = (path) => relay.wsUrl(path);
  const withToken = (path) => `${path}${path.includes('?') ? '&' : '?'}token=${TOKEN}`;

  await h.check('GET / serves the demo page', async () => {
    const r = await fetch(`${relay.url}/`);
    const body = await r.text();
    assertEqual(r.status, 200, 'status');
    assert(/text\/html/.test(r.headers.get('content-type')), 'content-type');
    for (const id of ['echo-log', 'chat-count', 'cmd-kill']) assert(body.includes(`id="${id}"`), `page lacks #${id}`);
  });

  await h.check('no token, a wrong token: 401 before anything is started', async () => {
    const before = runtime.execs.length;
    for (const path of ['/ws/echo', '/ws/broadcast?id=x', '/ws/json?token=wrong', '/ws/terminal']) {
      const r = await Client.refusal(ws(path));
      assertEqual(r.status, 401, `${path}`);
    }
    const r = await Client.refusal(ws('/ws/echo'), { headers: { Authorization: 'Bearer nope' } });
    assertEqual(r.status, 401, 'wrong bearer token');
    assertEqual(runtime.execs.length, before, 'processes started for refused requests');
  });

  await h.check('unknown path 404; plain GET 426; Upgrade: websocket without Connection: upgrade 426 with the reason (not 503)', async () => {
    assertEqual((await fetch(`${relay.url}/ws/nope?token=${TOKEN}`)).status, 404, '/ws/nope');
    const g = await fetch(`${relay.url}/ws/echo?token=${TOKEN}`);
    assertEqual([g.status, (await g.text()).trim()], [426, 'Expected a WebSocket upgrade'], 'GET /ws/echo');
    const before = runtime.execs.length;
    for (const connection of ['keep-alive', 'close', 'notupgrade']) {
      const r = await rawRequest(`${relay.url}/ws/echo?token=${TOKEN}`, {
        Upgrade: 'websocket', Connection: connection, 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13',
      });
      assertEqual(r.status, 426, `Connection: ${connection}`);
      assert(/without Connection: upgrade/.test(r.body), `reason for Connection: ${connection}: ${r.body}`);
    }
    assertEqual(runtime.execs.length, before, 'processes started for a non-upgrade');
    // a Connection list holding upgrade is an upgrade
    const ok = await rawRequest(`${relay.url}/ws/echo?token=${TOKEN}`, {
      Upgrade: 'websocket', Connection: 'keep-alive, Upgrade', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version': '13',
    });
    assertEqual(ok.status, 101, 'Connection: keep-alive, Upgrade');
  }, { timeout: 30_000 });

  await h.check('echo through the Worker: text, binary, a 1 MiB binary message unchanged (token in the query)', async () => {
    await echoCheck(ws(withToken('/ws/echo?sandbox=hop')));
    const c = await Client.connect(ws(withToken('/ws/echo?sandbox=hop')));
    try {
      const big = Buffer.alloc(1 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 9)) & 0xff;
      c.send(big);
      const m = await c.next(10_000);
      assert(m.isBinary, '1 MiB came back as text');
      assert(m.data.equals(big), `1 MiB changed (length ${m.data.length})`);
      const text = 'é'.repeat(100_000);
      c.send(text);
      assertEqual((await c.next(10_000)).text === text, true, '200 kB text unchanged');
    } finally {
      await c.close().catch(() => c.terminate());
    }
  }, { timeout: 30_000 });

  await h.check('echo through the Worker (Authorization: Bearer)', async () => {
    const c = await Client.connect(ws('/ws/echo?id=hop'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    c.send('bearer');
    assertEqual((await c.next()).text, 'bearer', 'echoed');
    await c.close();
  });

  await h.check(s6 ? 'the servers run under s6: the Worker started none' : 'the Worker started each server once (startProcess), and reuses it', async () => {
    const programs = runtime.execs.map((e) => e.program).filter((p) => p.startsWith('ws-'));
    if (s6) assertEqual(programs, [], 'servers the Worker started');
    else assertEqual(programs, ['ws-echo'], 'servers the Worker started');
  });

  const room = `hop-${line}-${Date.now()}`;
  await h.check('broadcast with three clients through the Worker: welcome counts, joins, one message to all with one seq', async () => {
    const base = ws(withToken('/ws/broadcast?sandbox=hop'));
    const members = [];
    try {
      for (const [i, user] of ['ann', 'ben', 'cai'].entries()) {
        const [c, w] = await joinRoom(base, room, user);
        members.push(c);
        assertEqual(w.count, i + 1, `welcome count of ${user}`);
      }
      await members[0].json((m) => m.type === 'join' && m.id === 'cai' && m.count === 3, 5_000, 'join of cai to ann');
      members[1].sendJson({ type: 'message', text: 'to all three' });
      const got = await Promise.all(members.map((c) => c.json((m) => m.type === 'message', 5_000, 'message')));
      assertEqual(got.map((m) => [m.text, m.from]), Array(3).fill(['to all three', 'ben']), 'message to every member');
      assert(got.every((m) => m.seq === got[0].seq && m.seq >= 1), `seqs ${got.map((m) => m.seq)}`);
    } finally {
      for (const c of members) await c.close().catch(() => c.terminate());
    }
  }, { timeout: 30_000 });

  await h.check('signed identities: ws-broadcast holds the Worker\'s JWT key (0600 file, not in its environ) and refuses a client without a JWT', async () => {
    const [c] = await joinRoom(ws(withToken('/ws/broadcast?sandbox=hop')), `jwt-${line}`, 'ada');
    await c.close();
    const pid = s6 ? (await tree.status('broadcast')).pid : runtime.running('ws-broadcast')[0]?.pid;
    assert(pid, `no ws-broadcast: ${JSON.stringify([...runtime.procs.values()].map((p) => runtime.describe(p)))}\n${runtime.log().slice(-2000)}`);
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
    assert(!environ.includes(jwtKey(TOKEN)), 'the JWT key is in ws-broadcast\'s environment');
    const file = /(?:^|\0)WS_JWT_SECRET_FILE=([^\0]+)/.exec(environ)?.[1];
    assert(file, 'no WS_JWT_SECRET_FILE in ws-broadcast\'s environment');
    assertEqual(readFileSync(file, 'utf8'), `${jwtKey(TOKEN)}\n`, 'the key file');
    assertEqual((statSync(file).mode & 0o777).toString(8), '600', 'mode of the key file');
    const r = await Client.refusal(`ws://127.0.0.1:${ports.broadcast}/?id=jwt&user=mallory`);
    assertEqual(r.status, 401, 'straight to ws-broadcast without a JWT');
  });

  await h.check('signed identities through the Worker: from is the user the Worker vouched for, with its info; a user name the Worker will not vouch for gets 403', async () => {
    const r = `ident-${line}-${Date.now()}`;
    const [a] = await joinRoom(ws(withToken('/ws/broadcast?sandbox=hop')), r, 'ada.lovelace');
    const [b] = await joinRoom(ws(withToken('/ws/broadcast?sandbox=hop')), r, 'bob');
    try {
      a.sendJson({ type: 'message', text: 'hi', from: 'bob' });
      const m = await b.json((v) => v.type === 'message', 5_000, 'message');
      assertEqual([m.from, m.info?.name], ['ada.lovelace', 'ada.lovelace'], 'from and info of the message');
    } finally {
      await a.close().catch(() => a.terminate());
      await b.close().catch(() => b.terminate());
    }
    for (const user of ['%01evil', 'x'.repeat(65), '%0Aadmin', 'a%20b', '%C3%A9']) {
      const x = await Client.refusal(ws(withToken(`/ws/broadcast?sandbox=hop&id=${r}&user=${user}`)));
      assertEqual(x.status, 403, `user ${user.slice(0, 12)}`);
    }
    // the client's own Bearer (even a well-formed JWT) is the Worker's token check, never passed on
    const forged = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'root', exp: 4e9 })).toString('base64url')}.x`;
    assertEqual((await Client.refusal(ws(`/ws/broadcast?id=${r}`), { headers: { Authorization: `Bearer ${forged}` } })).status, 401, 'a client JWT instead of the token');
  });

  await h.check('exec through the Worker streams: output in several messages before the result, exit code, kill', async () => {
    const c = await Client.connect(ws(withToken('/ws/json?sandbox=hop')));
    try {
      c.sendJson({ type: 'exec', id: 'tick', command: 'for i in 1 2 3; do echo tick $i; sleep 0.2; done; exit 4', stream: true });
      const events = [];
      for (;;) {
        const m = await c.json((v) => v.id === 'tick', 10_000, 'exec events');
        events.push(m);
        if (m.type === 'result') break;
      }
      const outs = events.filter((e) => e.type === 'stdout');
      assert(outs.length >= 3, `stdout in ${outs.length} messages: not streamed`);
      assertEqual(outs.map((e) => e.data).join(''), 'tick 1\ntick 2\ntick 3\n', 'output');
      assertEqual(events.at(-1).exitCode, 4, 'exit code');
    } finally {
      await c.close().catch(() => c.terminate());
    }
    await rpcCheck(ws(withToken('/ws/json?sandbox=hop')));
  }, { timeout: 30_000 });

  await h.check('ws-rpc in the container does not take the clients\' token (401 straight to it)', async () => {
    assertEqual((await Client.refusal(`ws://127.0.0.1:${ports.rpc}/?token=${TOKEN}`)).status, 401, 'status');
  });

  await h.check('/ws/terminal is routed to ws-rpc with the derived token, path and query unchanged', async () => {
    const n = (await relay.seen()).length;
    const c = await Client.connect(ws(withToken('/ws/terminal?sandbox=hop&cols=80'))).catch((e) => e);
    if (c instanceof Client) c.terminate();
    const s = (await relay.seen()).slice(n);
    assertEqual(s.map((x) => [x.port, x.url, x.authorization]), [[8082, '/ws/terminal?sandbox=hop&cols=80', `Bearer ${serverToken(TOKEN)}`]], 'what wsConnect got');
  });

  await h.check('a terminal through the Worker (ws-rpc\'s SDK terminal protocol): a shell on a pty, resize, reattach by id from a cursor with every byte once, exit', async () => {
    const a = await Terminal.open(ws(withToken('/ws/terminal?sandbox=hop&cols=91&rows=17')));
    const id = a.ready.id;
    a.type("echo h''i; stty size\r");
    await a.expect('hi\r\n17 91\r\n');
    a.control({ type: 'resize', cols: 120, rows: 40 });
    a.type('stty size\r');
    await a.expect('40 120\r\n');
    const cut = a.cursor;
    const seen = a.screen;
    a.ws.terminate(); // the relay closes ws-rpc's side 1000; the shell goes on
    const b = await Terminal.open(ws(withToken(`/ws/terminal?sandbox=hop&id=${encodeURIComponent(id)}&cursor=${cut}`)));
    assertEqual([b.ready.id, Number(b.ready.cursor)], [id, cut], 'reattached where it left');
    b.type('echo two-$((40+3))\r');
    await b.expect('two-43\r\n');
    const all = await Terminal.open(ws(withToken(`/ws/terminal?sandbox=hop&id=${encodeURIComponent(id)}&cursor=0`)));
    await all.expect('two-43\r\n');
    assertEqual(all.screen, seen + b.screen.slice(0, all.screen.length - seen.length), 'replay from 0: what a saw, then what b saw');
    b.type('exit 7\r');
    const ex = await b.until((c) => c.type === 'exit');
    assertEqual([ex.code ?? ex.exit?.code, ex.exit?.code], [7, 7], 'exit code');
    assertEqual((await b.closed).code, 1000, 'close after exit');
    all.ws.terminate();
  }, { timeout: 30_000 });

  await h.check('GET /ws/xterm/FILE: ws-rpc\'s xterm.js for the page\'s terminal, byte for byte; token, file list and method enforced', async () => {
    for (const f of ['xterm.js', 'xterm.css', 'addon-fit.js']) {
      const direct = await fetch(`http://127.0.0.1:${ports.rpc}/xterm/${f}`);
      const want = Buffer.from(await direct.arrayBuffer());
      const r = await fetch(`${relay.url}/ws/xterm/${f}?token=${TOKEN}&sandbox=hop`);
      const got = Buffer.from(await r.arrayBuffer());
      assertEqual(r.status, 200, `${f} status`);
      assertEqual(r.headers.get('content-type'), direct.headers.get('content-type'), `${f} type`);
      assert(got.equals(want), `${f}: ${got.length} bytes, ws-rpc has ${want.length}`);
    }
    assertEqual((await fetch(`${relay.url}/ws/xterm/xterm.js`)).status, 401, 'without the token');
    for (const f of ['evil.js', '..%2F..%2Fetc%2Fpasswd', 'xterm.js%00', 'XTERM.JS']) {
      assertEqual((await fetch(`${relay.url}/ws/xterm/${f}?token=${TOKEN}`)).status, 404, f);
    }
    assertEqual((await fetch(`${relay.url}/ws/xterm/xterm.js?token=${TOKEN}`, { method: 'POST', body: 'x' })).status, 405, 'POST');
    assertEqual((await fetch(`${relay.url}/ws/xterm/xterm.js?token=${TOKEN}&sandbox=x%2Fy`)).status, 400, 'bad sandbox id');
  });

  await h.check('?tok%65n= is accepted, and the servers never see the token: not in their logs', async () => {
    const before = serverLog().length;
    await echoCheck(ws(`/ws/echo?sandbox=hop&tok%65n=${TOKEN}&mark=tok65n`));
    const c = await Client.connect(ws('/ws/echo?sandbox=hop&mark=header'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    await c.close();
    await until(3_000, () => /mark=header/.test(serverLog().slice(before)), 'ws-echo logged the connections (path with the query)');
    const log = serverLog().slice(before);
    assert(/mark=tok65n/.test(log), `no line for the tok%65n connection:\n${log}`);
    assert(!serverLog().includes(TOKEN), 'the token reached a server');
  });

  await h.check('sandbox ids: ?sandbox= names one, else "default"; ?id= (a room) never does', async () => {
    const n = (await relay.seen()).length;
    const r = `room-${Date.now()}`;
    const [a] = await joinRoom(ws(withToken('/ws/broadcast')), r, 'ida');
    await a.close();
    const [b] = await joinRoom(ws(withToken('/ws/broadcast?sandbox=s1')), r, 'idb');
    await b.close();
    const got = (await relay.seen()).slice(n).map((x) => [x.port, x.sandboxId]);
    assertEqual(got, [[8081, 'default'], [8081, 's1']], 'sandbox ids');
  });

  await h.check('an open WebSocket is in flight (keeps the container awake) until it closes', async () => {
    const c0 = await relay.counters();
    const cs = [];
    for (let i = 0; i < 3; i++) cs.push(await Client.connect(ws(withToken('/ws/echo?sandbox=hop'))));
    const c1 = await relay.counters();
    assertEqual(c1.inflight - c0.inflight, 3, 'in flight with three open');
    for (const c of cs) await c.close();
    await until(3_000, async () => (await relay.counters()).inflight === c0.inflight, 'in flight back after the closes');
  });

  await h.check('close codes as the client sees them: its own code reaches the server and comes back; a close without a code comes back as 1000', async () => {
    // the client closes: ws-echo logs the code it received
    const before = serverLog().length;
    const c = await Client.connect(ws(withToken('/ws/echo?sandbox=hop&mark=clientclose')));
    const closed = await c.close(4321, 'client says bye');
    assertEqual(closed.code, 4321, 'code echoed back to the client');
    await until(3_000, () => /4321/.test(serverLog().slice(before)), `ws-echo saw 4321:\n${serverLog().slice(before)}`);
    // a client that closes without a code: the relay sends 1000 on (1005
    // cannot be sent), the server answers 1000; straight to ws-echo it is 1005
    const d = await Client.connect(ws(withToken('/ws/echo?sandbox=hop')));
    d.ws.close();
    assertEqual((await d.waitClosed()).code, 1000, 'a close without a code, through the relay');
  });

  // a recording server behind a second Worker: what the relay carries
  await h.check('the relay: pings are not carried (each side is answered by the relay), messages are; headers as wsConnect sends them', async () => {
    const events = [];
    let seen = null;
    const http = createServer((req, res) => res.end('ok')); // /healthz for the Worker's readiness wait
    const wss = new WebSocketServer({ server: http, autoPong: false });
    wss.on('connection', (sock, req) => {
      seen = { method: req.method, url: req.url, headers: req.headers };
      sock.on('ping', (d) => events.push(`server got ping ${d}`));
      sock.on('pong', (d) => events.push(`server got pong ${d}`));
      sock.on('message', (d) => {
        const t = d.toString();
        if (t === 'ping me') sock.ping('from-server');
        else if (t === 'die') sock._socket.destroy();
        else if (t === 'close plain') sock.close();
        else sock.send(d);
      });
    });
    await new Promise((resolve) => http.listen(port(5), '127.0.0.1', resolve));
    const rt = new Runtime({ build: ctx.build, ports: { 8080: port(5), 8081: port(5), 8082: port(5) }, listen: port(6), external: true });
    const probe = new Relay({
      root: ctx.root, here: ctx.here, line, token: TOKEN, listen: port(7), control: rt.url, ports: { 8080: port(5), 8081: port(5), 8082: port(5) },
    });
    try {
      await rt.start();
      await probe.start();
      const q = await quietSocket(probe.wsUrl(withToken('/ws/echo?sandbox=hop&id=r1&x=%2F1')));
      // the client's ping: answered (by the relay), never reaches the server
      q.ws.ping('from-client');
      await until(3_000, () => q.seen.pongs === 1, 'pong to the client\'s ping');
      // the server's ping: answered although this client answers none, and the client never sees it
      q.ws.send('ping me');
      await until(3_000, () => events.includes('server got pong from-server'), 'pong to the server\'s ping');
      q.ws.send('after');
      await until(3_000, () => q.seen.messages.includes('after'), 'message after the pings');
      assertEqual(q.seen.pings, 0, 'pings the client saw');
      assert(!events.some((e) => e.startsWith('server got ping')), `the client's ping crossed: ${events}`);
      // the server's side dies without a close frame: the client gets 1000 (1006 rewritten)
      q.ws.send('die');
      const lost = await within(5_000, q.closed, 'close after the server died');
      assertEqual(lost.code, 1000, `a lost server as the client sees it (reason "${lost.reason}")`);
      const p = await quietSocket(probe.wsUrl(withToken('/ws/echo')));
      p.ws.send('close plain');
      assertEqual((await within(5_000, p.closed, 'close without a code')).code, 1000, 'a close without a code (1005) as the client sees it');
      // forwarding: method, path, query without the token, headers, the port
      assertEqual(seen.method, 'GET', 'method');
      assertEqual(seen.url, '/ws/echo', 'path (token stripped)');
      const r = await Client.connect(probe.wsUrl(`/ws/echo?sandbox=hop&tok%65n=${TOKEN}&a=1&TOKEN=x&y=a+b%20c&z=%7E&&e=`), { headers: { 'X-Test': 'kept' } });
      await r.close();
      assertEqual(seen.url, '/ws/echo?sandbox=hop&a=1&y=a+b%20c&z=%7E&&e=', '?tok%65n=, TOKEN= stripped, the rest byte for byte');
      assertEqual(seen.headers['x-test'], 'kept', 'X-Test header');
      assertEqual(seen.headers.authorization, undefined, 'Authorization to ws-echo');
      assertEqual(seen.headers['cf-container-target-port'], line === 'next' ? undefined : '8080', 'cf-container-target-port');
      const j = await Client.connect(probe.wsUrl('/ws/json'), { headers: { Authorization: `Bearer ${TOKEN}` } });
      await j.close();
      assertEqual(seen.headers.authorization, `Bearer ${serverToken(TOKEN)}`, 'ws-rpc gets the derived token');
      // ws-broadcast gets a JWT the Worker minted for the user, never the client's token
      const t0 = Math.floor(Date.now() / 1000);
      const b = await Client.connect(probe.wsUrl(withToken('/ws/broadcast?id=lobby&user=Grace')));
      await b.close();
      const auth = /^Bearer (.+)$/.exec(seen.headers.authorization ?? '')?.[1];
      assert(auth && auth !== TOKEN, `ws-broadcast's Authorization: ${seen.headers.authorization}`);
      const claims = verifyJwt(auth, jwtKey(TOKEN));
      assertEqual([claims.sub, claims.rooms, claims.info, claims.exp - claims.iat], ['Grace', ['lobby'], { name: 'Grace' }, 60], 'claims');
      assert(Math.abs(claims.iat - t0) <= 5, `iat ${claims.iat} vs now ${t0}`);
      assertEqual(seen.url, '/ws/broadcast?id=lobby&user=Grace', 'ws-broadcast URL (token stripped)');
    } finally {
      await probe.cleanup();
      await rt.cleanup();
      wss.close();
      http.close();
    }
  }, { timeout: 60_000 });

  await h.check('hostile requests through the Worker: bad sandbox ids 400, a 64 KiB query refused, invalid UTF-8 never reaches a server as such, an encoded ?id= cannot widen a JWT; the Worker keeps serving', async () => {
    for (const id of ['..%2Fetc', 'a'.repeat(65), '%00', 'x%20y', '']) {
      const r = await Client.refusal(ws(withToken(`/ws/echo?sandbox=${id}`)));
      assertEqual(r.status, 400, `sandbox=${id.slice(0, 12)}`);
    }
    const long = await Client.refusal(ws(withToken(`/ws/echo?sandbox=hop&pad=${'x'.repeat(64 * 1024)}`))).catch((e) => ({ status: `error ${e.message}` }));
    assert(long.status !== 101, `a 64 KiB query: ${long.status}`);
    // a text frame that is not UTF-8: straight to a server it is closed
    // 1007; the relay decodes it itself, so either it closes the socket or
    // the server gets (and echoes) valid text with U+FFFD in place of the
    // bad bytes: never the bytes themselves, and the socket stays usable
    const q = await quietSocket(ws(withToken('/ws/echo?sandbox=hop')));
    q.ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false });
    q.ws.send('after');
    const got = await Promise.race([
      q.closed.then((c) => `close ${c.code}`),
      until(5_000, () => q.seen.messages.includes('after') && q.seen.messages.slice()),
    ]);
    if (Array.isArray(got)) {
      assertEqual(got, ['h\ufffd\ufffd', 'after'], 'what came back');
      h.note('invalid UTF-8 through the relay: replaced with U+FFFD by workerd, the server saw valid text');
    } else {
      assert(/^close (1007|1011)$/.test(got), got);
      h.note(`invalid UTF-8 through the relay: ${got}`);
    }
    q.ws.terminate();
    // the Worker signs the room URLSearchParams decodes first (?i%64=); the
    // server must never admit the client into a room outside that claim
    const roomA = `jwt-a-${Date.now()}`;
    const roomB = `jwt-b-${Date.now()}`;
    const c = await Client.connect(ws(withToken(`/ws/broadcast?sandbox=hop&user=eve&i%64=${roomA}&id=${roomB}`))).catch((e) => e);
    if (c instanceof Client) {
      const w = await c.json((m) => m.type === 'welcome', 5_000, 'welcome');
      await c.close().catch(() => c.terminate());
      assert(w.room !== roomB, `admitted to ${roomB}, a room the JWT does not name`);
      h.note(`?i%64=A&id=B: admitted to ${w.room === roomA ? 'A (the signed room)' : w.room}`);
    } else {
      assert([401, 403].includes(c.status), `?i%64=A&id=B: ${c.message}`);
      h.note(`?i%64=A&id=B: refused ${c.status}`);
    }
    await echoCheck(ws(withToken('/ws/echo?sandbox=hop')));
  }, { timeout: 30_000 });

  await h.check('measured (noted, not asserted): echo round trips and 1 MiB messages straight to ws-echo and through the Worker', async () => {
    const measure = async (url) => {
      const c = await Client.connect(url);
      try {
        const rtt = [];
        for (let i = 0; i < 500; i++) {
          const t = performance.now();
          c.send(`m${i}`);
          await c.next();
          rtt.push(performance.now() - t);
        }
        rtt.sort((a, b) => a - b);
        const big = Buffer.alloc(1 << 20, 7);
        const t = performance.now();
        for (let i = 0; i < 10; i++) {
          c.send(big);
          await c.next(10_000);
        }
        return { p50: rtt[250], p99: rtt[495], mibs: 20 / ((performance.now() - t) / 1000) };
      } finally {
        await c.close().catch(() => c.terminate());
      }
    };
    const fmt = (m) => `p50 ${m.p50.toFixed(2)} ms, p99 ${m.p99.toFixed(2)} ms, 1 MiB echoes ${m.mibs.toFixed(0)} MiB/s`;
    const direct = await measure(`ws://127.0.0.1:${ports.echo}/`);
    const relayed = await measure(ws(withToken('/ws/echo?sandbox=hop')));
    h.note(`echo straight: ${fmt(direct)}; through workerd + relay: ${fmt(relayed)} (500 round trips, 10 x 1 MiB)`);
    // what a new WebSocket costs: the Worker's readiness check runs on every one
    const opens = async (url) => {
      const t = [];
      for (let i = 0; i < 50; i++) {
        const t0 = performance.now();
        const c = await Client.connect(url);
        t.push(performance.now() - t0);
        c.terminate();
      }
      return t.sort((a, b) => a - b)[25].toFixed(2);
    };
    h.note(`open to 101, p50 of 50: straight ${await opens(`ws://127.0.0.1:${ports.echo}/`)} ms, through the Worker ${await opens(ws(withToken('/ws/echo?sandbox=hop')))} ms (${s6 ? 's6 readiness asked once per 10 s' : 'getProcess + an HTTP /healthz probe each time'})`);
  }, { timeout: 60_000 });

  await keepalive(h, ctx, line, port);

  // a server restarted while clients are connected
  await h.check(`${s6 ? 's6-svc -r ws-broadcast' : 'ws-broadcast stopped (SIGTERM)'} with three members: each gets 1001 through the relay, reconnects with since= and misses nothing`, async () => {
    const base = ws(withToken('/ws/broadcast?sandbox=hop'));
    const r = `restart-${line}-${Date.now()}`;
    const members = [];
    for (const u of ['ann', 'ben', 'cai']) members.push((await joinRoom(base, r, u))[0]);
    members[0].sendJson({ type: 'message', text: 'before' });
    const last = await Promise.all(members.map((c) => c.json((m) => m.type === 'message' && m.text === 'before', 5_000, 'before')));
    const seq = last[0].seq;
    if (s6) await tree.svcCmd('broadcast', '-r');
    else {
      const procs = runtime.running('ws-broadcast');
      assertEqual(procs.length, 1, `ws-broadcast processes: ${JSON.stringify([...runtime.procs.values()].map((p) => runtime.describe(p)))}`);
      procs[0].child.kill('SIGTERM');
    }
    const closes = await Promise.all(members.map((c) => c.waitClosed(8_000)));
    assertEqual(closes.map((c) => c.code), [1001, 1001, 1001], 'close codes the members saw');
    // ann is back first and writes; ben and cai come back after, with since=
    const [a2, wa] = await until(10_000, () => joinRoom(base, r, 'ann', { since: seq }).catch(() => null), 'ann rejoins', 100);
    assertEqual(wa.history.length, 0, 'ann missed nothing');
    a2.sendJson({ type: 'message', text: 'while you were away' });
    const m2 = await a2.json((m) => m.type === 'message', 5_000, 'own message');
    const back = [];
    for (const u of ['ben', 'cai']) {
      const [c, w] = await joinRoom(base, r, u, { since: seq });
      back.push(c);
      assertEqual(w.history.map((m) => [m.seq, m.text]), [[m2.seq, 'while you were away']], `${u}'s history after since=${seq}`);
    }
    for (const c of [a2, ...back]) await c.close().catch(() => c.terminate());
  }, { timeout: 40_000 });

  await h.check('ws-broadcast killed (-9) with a member connected: the client sees 1000 (1006 rewritten by the relay), reconnects with since=, seq continues', async () => {
    const base = ws(withToken('/ws/broadcast?sandbox=hop'));
    const r = `crash-${line}-${Date.now()}`;
    const [a] = await joinRoom(base, r, 'alice');
    a.sendJson({ type: 'message', text: 'before' });
    const m1 = await a.json((m) => m.type === 'message', 5_000, 'own message');
    const pid = s6 ? (await tree.status('broadcast')).pid : runtime.running('ws-broadcast')[0].pid;
    process.kill(pid, 'SIGKILL');
    const closed = await a.waitClosed(5_000);
    assertEqual(closed.code, 1000, `close after the crash (reason "${closed.reason}")`);
    const [b, wb] = await until(10_000, () => joinRoom(base, r, 'alice', { since: m1.seq }).catch(() => null), 'rejoin', 100);
    try {
      assertEqual(wb.history.length, 0, 'history after since');
      b.sendJson({ type: 'message', text: 'after' });
      const m2 = await b.json((m) => m.type === 'message', 5_000, 'message after the restart');
      assertEqual(m2.seq, m1.seq + 1, 'seq');
    } finally {
      await b.close().catch(() => b.terminate());
    }
  }, { timeout: 30_000 });

  await h.check('a server that cannot run: 503 "WebSocket server unavailable" at once; back once it can', async () => {
    if (s6) await tree.svcCmd('echo', '-d');
    else {
      runtime.refuse.add('ws-echo');
      for (const p of runtime.running('ws-echo')) p.child.kill('SIGTERM');
      await until(5_000, () => runtime.running('ws-echo').length === 0, 'ws-echo gone');
    }
    if (s6) await until(5_000, async () => !(await tree.status('echo')).up, 'echo down');
    const t0 = performance.now();
    const r = await Client.refusal(ws(withToken('/ws/echo?sandbox=hop')), { timeoutMs: 15_000 });
    assertEqual(r.status, 503, 'status');
    assert(r.body.includes('WebSocket server unavailable'), `body ${r.body}`);
    h.note(`503 answered in ${Math.round(performance.now() - t0)} ms`);
    if (s6) {
      await tree.svcCmd('echo', '-u');
      // s6-svc returns before s6-supervise has taken the order
      await until(5_000, async () => (await tree.status('echo')).wantedup, 'echo wanted up');
    } else runtime.refuse.delete('ws-echo');
    await echoCheck(ws(withToken('/ws/echo?sandbox=hop')));
  }, { timeout: 30_000 });

  if (!s6) {
    await h.check('next-API shape without s6 is covered by the next Worker; the 0.12 Worker restarts a server that exited', async () => {
      for (const p of runtime.running('ws-rpc')) p.child.kill('SIGKILL');
      await until(5_000, () => runtime.running('ws-rpc').length === 0, 'ws-rpc gone');
      await rpcCheck(ws(withToken('/ws/json?sandbox=hop')));
      assertEqual(runtime.running('ws-rpc').length, 1, 'ws-rpc processes');
    });
  } else {
    await noSupervisor(h, ctx, port);
  }

  await h.check('workerd and the servers stop cleanly', async () => {
    await relay.stop();
    if (tree) assertEqual((await tree.stop(10_000)).code, 0, 's6-svscan exit');
  });
}

/**
 * Keepalive when pings do not cross: ws-echo pinging every second and closing
 * a connection idle for 3 s. Straight to the server, a client that answers no
 * ping is closed "ping timeout"; through the relay the same client is closed
 * "idle timeout" (the relay answered the server's pings for it, so only the
 * data-based idle timeout finds it), and a client that sends messages stays.
 */
async function keepalive(h, ctx, line, port) {
  const eport = port(8);
  const cports = { 8080: eport, 8081: port(1), 8082: port(2) };
  const s6 = line === 'next';
  const env = { WS_PING_INTERVAL: '1', WS_IDLE_TIMEOUT: '3' };
  const tree = s6 ? new Tree({
    root: ctx.root, build: ctx.build, ports: { echo: eport, broadcast: port(1), rpc: port(2) }, services: ['echo'],
    env: { WS_ECHO_PING_INTERVAL: env.WS_PING_INTERVAL, WS_ECHO_IDLE_TIMEOUT: env.WS_IDLE_TIMEOUT },
  }) : null;
  const runtime = new Runtime({ build: ctx.build, ports: cports, tree, listen: port(9) });
  const relay = new Relay({
    root: ctx.root, here: ctx.here, line, token: TOKEN, listen: port(10), ports: cports, control: runtime.url, serverEnv: s6 ? {} : env,
  });
  ctx.cleanup(() => relay.cleanup());
  ctx.cleanup(() => runtime.cleanup());
  if (tree) ctx.cleanup(() => tree.cleanup());
  await h.check('server keepalive through the relay: ping timeout straight, idle timeout through the relay (pings answered by it), a talking client stays', async () => {
    await runtime.start();
    if (tree) {
      await tree.start();
      await tree.waitReady(['echo']);
    }
    await relay.start();
    // the relayed ones first: the Worker may have to start ws-echo
    const relayed = await quietSocket(relay.wsUrl(`/ws/echo?token=${TOKEN}`));
    const talker = await quietSocket(relay.wsUrl(`/ws/echo?token=${TOKEN}`));
    const direct = await quietSocket(`ws://127.0.0.1:${eport}/`);
    const t0 = Date.now();
    let n = 0;
    const talk = setInterval(() => talker.ws.send(`m${n++}`), 500);
    try {
      const d = await within(8_000, direct.closed, 'direct client closed');
      assertEqual([d.code, d.reason], [1001, 'ping timeout'], 'direct client that answers no ping');
      assert(direct.seen.pings >= 1, 'the direct client saw the server\'s pings');
      const r = await within(8_000, relayed.closed, 'relayed client closed');
      assertEqual([r.code, r.reason], [1001, 'idle timeout'], 'relayed client that answers no ping');
      assertEqual(relayed.seen.pings, 0, 'pings that reached the relayed client');
      assert(r.at - t0 >= 2_500, `closed after ${r.at - t0} ms: before the idle timeout`);
      assert(talker.ws.readyState === WebSocket.OPEN, 'the talking client was closed');
      await until(3_000, () => talker.seen.messages.includes(`m${n - 1}`), 'the talker\'s echo');
      h.note(`keepalive: ping timeout after ${d.at - t0} ms straight, idle timeout after ${r.at - t0} ms through the relay`);
    } finally {
      clearInterval(talk);
      talker.ws.terminate();
    }
  }, { timeout: 40_000 });
}

/** The next Worker on an image without s6: it exec()s the servers itself, once. */
async function noSupervisor(h, ctx, port) {
  const cports = { 8080: port(11), 8081: port(12), 8082: port(13) };
  // the container's environment as SandboxWs sets it: exec() merges it into every process
  const containerEnv = { WS_RPC_TOKEN: serverToken(TOKEN), WS_BROADCAST_JWT_SECRET: jwtKey(TOKEN) };
  const runtime = new Runtime({ build: ctx.build, ports: cports, listen: port(14), containerEnv });
  const relay = new Relay({
    root: ctx.root, here: ctx.here, line: 'next', token: TOKEN, listen: port(15), ports: cports, control: runtime.url,
  });
  ctx.cleanup(() => relay.cleanup());
  ctx.cleanup(() => runtime.cleanup());
  await h.check('no supervisor in the image: the next Worker starts each server with exec() once, waits on its handle, reuses it; the container-wide secrets stay out of the servers\' environ', async () => {
    await runtime.start();
    await relay.start();
    await echoCheck(relay.wsUrl(`/ws/echo?token=${TOKEN}`));
    await rpcCheck(relay.wsUrl(`/ws/json?token=${TOKEN}`));
    await echoCheck(relay.wsUrl(`/ws/echo?token=${TOKEN}`));
    await broadcastCheck(relay.wsUrl(`/ws/broadcast?token=${TOKEN}`), `nosup-${Date.now()}`);
    const started = runtime.execs.filter((e) => e.program.startsWith('ws-'));
    assertEqual(started.map((e) => e.program), ['ws-echo', 'ws-rpc', 'ws-broadcast'], 'servers the Worker exec()ed');
    assert(started.every((e) => e.command[0] === 'sh' && e.command[1] === '-c'), 'started through the launch script');
    for (const prog of ['ws-echo', 'ws-rpc', 'ws-broadcast']) {
      assertEqual(runtime.running(prog).length, 1, `${prog} running`);
      const environ = readFileSync(`/proc/${runtime.running(prog)[0].pid}/environ`, 'utf8');
      assert(!environ.includes(jwtKey(TOKEN)) && !/(^|\0)WS_RPC_TOKEN=/.test(environ) && !/(^|\0)WS_BROADCAST_JWT_SECRET=/.test(environ),
        `${prog} holds a container-wide secret`);
    }
    const rpcEnv = started[1].env;
    assertEqual([rpcEnv.WS_TOKEN, rpcEnv.WS_PORT, rpcEnv.WS_RUN_AS], [serverToken(TOKEN), '8082', 'ws-exec'], 'ws-rpc environment');
    const bEnv = readFileSync(`/proc/${runtime.running('ws-broadcast')[0].pid}/environ`, 'utf8');
    const file = /(?:^|\0)WS_JWT_SECRET_FILE=([^\0]+)/.exec(bEnv)?.[1];
    assertEqual((statSync(file).mode & 0o777).toString(8), '600', 'mode of the key file');
    assertEqual((await Client.refusal(`ws://127.0.0.1:${cports[8081]}/?id=x&user=mallory`)).status, 401, 'straight to ws-broadcast without a JWT');
  }, { timeout: 40_000 });
}

/**
 * The router's functions that read client bytes (the query, Upgrade and
 * Connection, the user name), compiled from router.ts and run in Node on
 * generated hostile input with a fixed seed: invariants, not examples.
 */
async function routerFuzz(h, ctx) {
  await h.check('router fuzz: withoutToken, notAnUpgrade, demoIdentity, mintJwt on 20,000 generated inputs hold their invariants', async () => {
    const dir = await compiledWorker(ctx.root, 'next');
    const { copyFileSync, mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const tmp = mkdtempSync(join(tmpdir(), 'sandbox-ws-fuzz-'));
    try {
      copyFileSync(join(dir, 'worker', 'src', 'router.js'), join(tmp, 'router.mjs'));
      const r = await import(join(tmp, 'router.mjs'));
      let seed = 0x5eed;
      const rnd = (n) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      const atoms = ['token', 'TOKEN', 'tok%65n', 'to%6Ben', '%74oken', 'token%00', 'tok', 'en', '=', '&', '&&', '+', '%', '%2', '%zz',
        '%26', '%3D', 'a', 'id', 'user', 'é', '%C3%A9', '%FF', ';', ' ', '?', '#x', '\u0000', 'sandbox', '=='];
      const pick = (k) => Array.from({ length: 1 + rnd(k) }, () => atoms[rnd(atoms.length)]).join('');
      let n = 0;
      for (let i = 0; i < 20_000; i++) {
        const query = pick(12).replace(/#.*/, '');
        let url;
        try {
          url = new URL(`http://w/ws/echo?${query}`);
        } catch {
          continue;
        }
        n++;
        const out = r.withoutToken(url);
        const parts = url.search.length > 1 ? url.search.slice(1).split('&') : [];
        const keep = parts.filter((p) => {
          let bad = false;
          new URLSearchParams(p).forEach((_v, name) => { if (name.toLowerCase() === 'token') bad = true; });
          return !bad;
        });
        assertEqual(out.search, keep.length ? `?${keep.join('&')}` : '', `withoutToken(${url.search})`);
        for (const k of out.searchParams.keys()) assert(k.toLowerCase() !== 'token', `token left in ${out.search}`);
        assertEqual(out.pathname, url.pathname, 'path');
        // Upgrade / Connection: never throws, upgrade only with both
        const up = atoms[rnd(atoms.length)] + (rnd(2) ? 'websocket' : '');
        const conn = [pick(3), rnd(2) ? 'Upgrade' : '', pick(2)].join(rnd(2) ? ',' : ' ');
        const headers = new Headers();
        try {
          headers.set('upgrade', up);
          headers.set('connection', conn);
        } catch {
          continue; // not a header value at all
        }
        const why = r.notAnUpgrade(new Request('http://w/', { headers }));
        const isUp = up.trim().toLowerCase() === 'websocket' && conn.toLowerCase().split(',').map((t) => t.trim()).includes('upgrade');
        assertEqual(why === null, isUp, `notAnUpgrade(${JSON.stringify([up, conn])})`);
        // a user name is vouched for only in ws-broadcast's alphabet
        const who = r.demoIdentity(new Request(url), url);
        const user = url.searchParams.get('user');
        const ok = user === null || /^[A-Za-z0-9._:-]{1,64}$/.test(user);
        assertEqual(who !== null, ok || user === '', `demoIdentity(${JSON.stringify(user)})`);
        if (who && i % 20 === 0) {
          const jwt = await r.mintJwt('k'.repeat(64), who, url.searchParams.get('id'), 1_700_000_000);
          const [hd, pl, sig] = jwt.split('.');
          assertEqual(sig, createHmac('sha256', 'k'.repeat(64)).update(`${hd}.${pl}`).digest('base64url'), 'signature');
          const c = JSON.parse(Buffer.from(pl, 'base64url').toString());
          assertEqual([c.sub, c.exp - c.iat], [who.sub, 60], 'claims');
          if (url.searchParams.get('id') !== null) assertEqual(c.rooms, [url.searchParams.get('id')], 'rooms');
        }
      }
      h.note(`router fuzz: ${n} URLs`);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, { timeout: 120_000 });
}
