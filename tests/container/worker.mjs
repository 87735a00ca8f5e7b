// Worker hop: the Worker's routing (container/worker/src/router.ts) in
// Cloudflare's workerd, forwarding upgrades the way the Sandbox SDK's
// wsConnect() does to the s6-supervised servers on loopback; echo,
// broadcast and exec through it with the Node `ws` client. Plus tsc on the
// Worker against the npm @cloudflare/sandbox types.

import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';
import { broadcastCheck, Client, echoCheck, join as joinRoom, rpcCheck } from './lib/client.mjs';
import { assert, assertEqual, until } from './lib/harness.mjs';
import { Relay, serverToken } from './lib/relay.mjs';
import { Tree } from './lib/tree.mjs';

const exec = promisify(execFile);
const TOKEN = 'worker-hop-token';

export async function run_(h, ctx) {} // (keeps the export list obvious)

export async function run(h, ctx) {
  const worker = join(ctx.root, 'container', 'worker');
  await h.check('tsc --noEmit on container/worker (npm @cloudflare/sandbox types)', async () => {
    const t0 = performance.now();
    await exec(join(worker, 'node_modules', '.bin', 'tsc'), ['--noEmit', '-p', worker], { timeout: 120_000 })
      .catch((e) => { throw new Error(`${e.stdout}${e.stderr}`); });
    h.note(`tsc --noEmit: ${Math.round(performance.now() - t0)} ms`);
  }, { timeout: 130_000 });

  const ports = { echo: ctx.port(20), broadcast: ctx.port(21), rpc: ctx.port(22) };
  // ws-rpc holds the token the Worker derives, never the clients' one
  const tree = new Tree({ root: ctx.root, build: ctx.build, ports, env: { WS_RPC_TOKEN: serverToken(TOKEN), WS_LOG_LEVEL: 'info' } });
  ctx.cleanup(() => tree.cleanup());
  const relay = new Relay({
    root: ctx.root, here: ctx.here, token: TOKEN, listen: ctx.port(23),
    ports: { 8080: ports.echo, 8081: ports.broadcast, 8082: ports.rpc },
  });
  ctx.cleanup(() => relay.cleanup());

  const up = await h.check('servers under s6 and the relay Worker in workerd start', async () => {
    await tree.start();
    await tree.waitReady();
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

  await h.check('no token, a wrong token: 401 before anything is routed', async () => {
    for (const path of ['/ws/echo', '/ws/broadcast?id=x', '/ws/json?token=wrong']) {
      const r = await Client.refusal(ws(path));
      assertEqual(r.status, 401, `${path}`);
    }
    const r = await Client.refusal(ws('/ws/echo'), { headers: { Authorization: 'Bearer nope' } });
    assertEqual(r.status, 401, 'wrong bearer token');
  });

  await h.check('unknown path 404, plain GET on a route 426', async () => {
    assertEqual((await fetch(`${relay.url}/ws/nope?token=${TOKEN}`)).status, 404, '/ws/nope');
    assertEqual((await fetch(`${relay.url}/ws/echo?token=${TOKEN}`)).status, 426, 'GET /ws/echo');
  });

  await h.check('echo through the Worker (token in the query)', () => echoCheck(ws(withToken('/ws/echo?sandbox=hop'))));

  await h.check('echo through the Worker (Authorization: Bearer)', async () => {
    const c = await Client.connect(ws('/ws/echo?id=hop'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    c.send('bearer');
    assertEqual((await c.next()).text, 'bearer', 'echoed');
    await c.close();
  });

  await h.check('broadcast through the Worker: room from ?id=, counts, seq', async () => {
    await broadcastCheck(ws(withToken('/ws/broadcast?sandbox=hop')), `hop-${Date.now()}`);
  });

  await h.check('exec through the Worker: streamed output, exit code, kill (ws-rpc checks the token the Worker derives)', () =>
    rpcCheck(ws(withToken('/ws/json?sandbox=hop'))));

  await h.check('ws-rpc in the container does not take the clients\' token (401 straight to it)', async () => {
    assertEqual((await Client.refusal(`ws://127.0.0.1:${ports.rpc}/?token=${TOKEN}`)).status, 401, 'status');
  });

  await h.check('?tok%65n= (URLSearchParams decodes names) is accepted, and the servers never see the token: not in ws-echo\'s log', async () => {
    const before = tree.log().length;
    await echoCheck(ws(`/ws/echo?sandbox=hop&tok%65n=${TOKEN}&mark=tok65n`));
    const c = await Client.connect(ws('/ws/echo?sandbox=hop&mark=header'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    await c.close();
    await until(3_000, () => /mark=header/.test(tree.log().slice(before)), 'ws-echo logged the connections (path with the query)');
    const log = tree.log().slice(before);
    assert(/mark=tok65n/.test(log), `no line for the tok%65n connection:\n${log}`);
    assert(!log.includes(TOKEN), `the token reached ws-echo:\n${log}`);
  });

  await h.check('sandbox ids: ?sandbox= names one, else "default"; ?id= (a room) never does', async () => {
    const n = (await relay.seen()).length;
    const room = `room-${Date.now()}`;
    const [a] = await joinRoom(ws(withToken('/ws/broadcast')), room, 'ida');
    await a.close();
    const [b] = await joinRoom(ws(withToken('/ws/broadcast?sandbox=s1')), room, 'idb');
    await b.close();
    const got = (await relay.seen()).slice(n).map((x) => [x.path, x.sandboxId]);
    assertEqual(got, [['/ws/broadcast', 'default'], ['/ws/broadcast', 's1']], 'sandbox ids');
  });

  await h.check('close codes pass through the hop (server 1001 on drain reaches the client)', async () => {
    const c = await Client.connect(ws(withToken('/ws/echo?sandbox=hop')));
    await tree.svcCmd('echo', '-d'); // SIGTERM: the server drains with 1001
    const closed = await c.waitClosed(5_000);
    assertEqual(closed.code, 1001, 'close code through workerd');
  });

  await h.check('a server that is down: 503 "WebSocket server unavailable", back once s6 restarts it', async () => {
    const r = await Client.refusal(ws(withToken('/ws/echo?sandbox=hop')));
    assertEqual(r.status, 503, 'status');
    assert(r.body.includes('WebSocket server unavailable'), `body ${r.body}`);
    await tree.svcCmd('echo', '-u');
    await tree.waitReady(['echo']);
    await echoCheck(ws(withToken('/ws/echo?sandbox=hop')));
  });

  await h.check('the relay forwards like wsConnect: method, path, query without the token, headers, cf-container-target-port', async () => {
    // a recording server stands in for ws-echo and ws-rpc on a second relay
    let seen = null;
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (sock, req) => {
      seen = { method: req.method, url: req.url, headers: req.headers };
      sock.close(1000);
    });
    await new Promise((resolve) => http.listen(ctx.port(24), '127.0.0.1', resolve));
    http.on('request', (req, res) => { res.end('ok'); }); // /healthz for ensure()
    const probe = new Relay({
      root: ctx.root, here: ctx.here, token: TOKEN, listen: ctx.port(25), ports: { 8080: ctx.port(24), 8082: ctx.port(24) },
    });
    const through = async (path, headers = {}) => {
      seen = null;
      // (a Sec-WebSocket-Protocol set by hand makes the client refuse the answer: what was sent counts)
      const c = await Client.connect(probe.wsUrl(path), { headers }).catch(() => null);
      if (c) await c.waitClosed(3_000).catch(() => c.terminate());
      assert(seen, `${path}: the upgrade did not reach the server`);
      return seen;
    };
    try {
      await probe.start();
      let s = await through(`/ws/echo?sandbox=hop&id=r1&token=${TOKEN}&x=%2F1`, { 'X-Test': 'kept', 'Sec-WebSocket-Protocol': 'chat' });
      assertEqual(s.method, 'GET', 'method');
      assertEqual(s.url, '/ws/echo?sandbox=hop&id=r1&x=%2F1', 'path and query (token stripped)');
      assertEqual(s.headers['x-test'], 'kept', 'X-Test header');
      assertEqual(s.headers['cf-container-target-port'], '8080', 'cf-container-target-port');
      assertEqual(s.headers['sec-websocket-protocol'], 'chat', 'subprotocol offer');
      assertEqual(s.headers.authorization, undefined, 'Authorization to ws-echo');
      // the encoded name the Worker accepts, every repeat, any case; the rest byte for byte
      s = await through(`/ws/echo?tok%65n=${TOKEN}&a=1&TOKEN=x&y=a+b%20c&token=${TOKEN}&z=%7E&&e=`);
      assertEqual(s.url, '/ws/echo?a=1&y=a+b%20c&z=%7E&&e=', '?tok%65n=, TOKEN=, token= stripped');
      s = await through('/ws/echo?x=1', { Authorization: `Bearer ${TOKEN}` });
      assertEqual([s.url, s.headers.authorization], ['/ws/echo?x=1', undefined], 'Authorization: Bearer stripped');
      s = await through(`/ws/echo?token=${TOKEN}`);
      assertEqual(s.url, '/ws/echo', 'the only parameter stripped');
      // ws-rpc gets the derived token in a header, never the clients' one
      s = await through(`/ws/json?sandbox=hop&token=${TOKEN}`);
      assertEqual([s.url, s.headers.authorization], ['/ws/json?sandbox=hop', `Bearer ${serverToken(TOKEN)}`], 'ws-rpc request');
      s = await through('/ws/json', { Authorization: `Bearer ${TOKEN}` });
      assertEqual(s.headers.authorization, `Bearer ${serverToken(TOKEN)}`, 'ws-rpc Authorization');
    } finally {
      await probe.cleanup();
      wss.close();
      http.close();
    }
  }, { timeout: 60_000 });

  await h.check('reconnect through the Worker after kill -9: broadcast seq continues', async () => {
    const room = `hop-crash-${Date.now()}`;
    const base = ws(withToken('/ws/broadcast?sandbox=hop'));
    const [a] = await joinRoom(base, room, 'alice');
    a.sendJson({ type: 'message', text: 'before' });
    const m1 = await a.json((m) => m.type === 'message', 5_000, 'own message');
    const st = await tree.status('broadcast');
    process.kill(st.pid, 'SIGKILL');
    const closed = await a.waitClosed(5_000);
    assert([1006, 1011, 1000].includes(closed.code), `close after the crash ${closed.code}`);
    await tree.waitReady(['broadcast']);
    const [b, wb] = await until(5_000, () => joinRoom(base, room, 'alice', { since: m1.seq }).catch(() => null), 'rejoin');
    try {
      assertEqual(wb.history.length, 0, 'history after since');
      b.sendJson({ type: 'message', text: 'after' });
      const m2 = await b.json((m) => m.type === 'message', 5_000, 'message after the restart');
      assertEqual(m2.seq, m1.seq + 1, 'seq');
    } finally {
      await b.close().catch(() => b.terminate());
    }
  }, { timeout: 20_000 });

  await h.check('tree stops cleanly', async () => {
    await relay.stop();
    const exit = await tree.stop(10_000);
    assertEqual(exit.code, 0, 's6-svscan exit');
  });
}
