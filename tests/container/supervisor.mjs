// Supervisor: container/s6 on the host against the built servers. Readiness
// through the notification fds, a restart after kill -9 timed against a
// second, clients back, and ws-broadcast's rooms and seq continuing from its
// database; then the no-restart rule for a refused configuration and the
// SIGTERM drain of the whole tree.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, echoCheck, join as joinRoom, rpcCheck } from './lib/client.mjs';
import { assert, assertEqual, until } from './lib/harness.mjs';
import { SERVICES, Tree } from './lib/tree.mjs';

const TOKEN = 'supervisor-test-token';

async function healthz(port) {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  await r.arrayBuffer();
  return r.status;
}

/** kill -9 the service's server; resolves with the ms until s6 has it up and ready again. */
async function crashAndTime(tree, name) {
  // s6-supervise waits until a second after the last start before restarting
  // (no crash loop faster than 1/s): measure a server that has been up longer
  const before = await until(2_500, async () => {
    const st = await tree.status(name);
    return st.updownfor >= 1 ? st : null;
  }, `${name} up for a second`, 50);
  assert(before.up && before.ready && before.pid > 0, `${name} not up and ready before the kill`);
  const t0 = performance.now();
  process.kill(before.pid, 'SIGKILL');
  const after = await until(3_000, async () => {
    const st = await tree.status(name);
    return st.pid > 0 && st.pid !== before.pid && st.up && st.ready ? st : null;
  }, `${name} restarted and ready`, 2);
  const ready = performance.now() - t0;
  await until(3_000, async () => (await healthz(tree.ports[name]).catch(() => 0)) === 200, `${name} /healthz`, 5);
  const serving = performance.now() - t0;
  return { ready, serving, pid: after.pid, old: before.pid };
}

export async function run(h, ctx) {
  const ports = { echo: ctx.port(10), broadcast: ctx.port(11), rpc: ctx.port(12) };
  const tree = new Tree({ root: ctx.root, build: ctx.build, ports, env: { WS_RPC_TOKEN: TOKEN } });
  ctx.cleanup(() => tree.cleanup());
  const u = (name, q = '') => `ws://127.0.0.1:${ports[name]}/${q}`;
  const rpcUrl = u('rpc', `?token=${TOKEN}`);

  const started = await h.check('s6-svscan starts a supervisor per service', () => tree.start());
  if (!started) return;

  await h.check('all three ready through their notification fds (s6-svwait -U)', async () => {
    const t0 = performance.now();
    await tree.waitReady();
    h.note(`tree start to all three ready: ${Math.round(performance.now() - t0)} ms after the supervisors`);
    for (const s of SERVICES) {
      const st = await tree.status(s);
      assert(st.up && st.ready, `${s}: ${JSON.stringify(st)}`);
      assertEqual(await healthz(ports[s]), 200, `${s} /healthz`);
    }
  });

  await h.check('echo, broadcast and exec work under s6', async () => {
    await echoCheck(u('echo'));
    await rpcCheck(rpcUrl);
  });

  // a room with history, and members connected while the server dies
  const room = `sv-${Date.now()}`;
  let lastSeq = 0;
  let members = [];
  await h.check('a room with three messages and two members', async () => {
    const [a] = await joinRoom(u('broadcast'), room, 'alice');
    const [b] = await joinRoom(u('broadcast'), room, 'bob');
    members = [a, b];
    for (const text of ['one', 'two', 'three']) {
      a.sendJson({ type: 'message', text });
      const m = await b.json((v) => v.type === 'message' && v.text === text, 5_000, `message ${text}`);
      lastSeq = m.seq;
    }
    assert(lastSeq >= 3, `seq ${lastSeq}`);
  });

  for (const name of ['broadcast', 'echo', 'rpc']) {
    const echoClient = name === 'echo' ? await Client.connect(u('echo')).catch(() => null) : null;
    await h.check(`kill -9 ws-${name}: s6 restarts it, ready again in under a second`, async () => {
      const t = await crashAndTime(tree, name);
      h.note(`ws-${name} kill -9 to ready (s6-svstat): ${t.ready.toFixed(1)} ms, to /healthz 200: ${t.serving.toFixed(1)} ms`);
      assert(t.ready < 1000, `ready after ${t.ready.toFixed(0)} ms`);
      if (echoClient) {
        const c = await echoClient.waitClosed(3_000);
        assert(c.code === 1006, `echo client saw close ${c.code}, expected 1006 (connection lost)`);
      }
    }, { timeout: 12_000 });
  }

  await h.check('the finish script logged each exit', async () => {
    await until(2_000, () => /exit server=ws-broadcast signal=9/.test(tree.log()), 'finish log line');
    const log = tree.log();
    for (const s of SERVICES) assert(new RegExp(`exit server=ws-${s} signal=9`).test(log), `no finish line for ws-${s}`);
  });

  await h.check('broadcast members were cut off and reconnect with since: rooms and seq continue', async () => {
    for (const m of members) {
      const c = await m.waitClosed(3_000);
      assert(c.code === 1006, `member saw close ${c.code}`);
    }
    const r = await fetch(`http://127.0.0.1:${ports.broadcast}/rooms/${room}`);
    const info = await r.json();
    assertEqual(info.last_seq, lastSeq, 'last_seq from the database after the restart');
    // alice comes back having seen everything; bob missed the last message
    const [a, wa] = await joinRoom(u('broadcast'), room, 'alice', { since: lastSeq });
    const [b, wb] = await joinRoom(u('broadcast'), room, 'bob', { since: lastSeq - 1 });
    try {
      assertEqual(wa.history.length, 0, 'history after since=last');
      assertEqual(wb.history.map((m) => m.seq), [lastSeq], 'history after since=last-1');
      a.sendJson({ type: 'message', text: 'after the crash' });
      const m = await b.json((v) => v.type === 'message' && v.text === 'after the crash', 5_000, 'new message');
      assertEqual(m.seq, lastSeq + 1, 'seq of the first message after the restart');
    } finally {
      await a.close().catch(() => a.terminate());
      await b.close().catch(() => b.terminate());
    }
  });

  await h.check('clients reconnect to the restarted echo and rpc', async () => {
    await echoCheck(u('echo'));
    await rpcCheck(rpcUrl);
  });

  await h.check('SIGTERM to s6-svscan: clients get 1001, every server exits 0, s6-svscan exits 0', async () => {
    const clients = [await Client.connect(u('echo')), (await joinRoom(u('broadcast'), room, 'carol'))[0],
      await Client.connect(rpcUrl)];
    const t0 = performance.now();
    const exit = await tree.stop(10_000);
    h.note(`tree stop (SIGTERM to exit) with 3 clients: ${Math.round(performance.now() - t0)} ms`);
    const codes = await Promise.all(clients.map((c) => c.waitClosed(3_000).then((x) => x.code)));
    assertEqual(codes, [1001, 1001, 1001], 'close codes');
    assertEqual(exit, { code: 0, signal: null }, 's6-svscan exit');
    const log = tree.log();
    for (const s of SERVICES) assert(new RegExp(`exit server=ws-${s} code=0`).test(log), `ws-${s} did not exit 0`);
  });

  // exit 100 (bad usage or configuration) must not become a restart loop
  const bad = new Tree({ root: ctx.root, build: ctx.build, ports, services: ['rpc'], env: {} });
  ctx.cleanup(() => bad.cleanup());
  await h.check('ws-rpc without a token exits 100 once and stays down (finish exits 125)', async () => {
    await bad.start();
    await until(3_000, () => /configuration refused/.test(bad.log()), 'the down line in the log');
    const st = await bad.status('rpc');
    assert(!st.up && !st.wantedup, `rpc: ${JSON.stringify(st)}`);
    const tries = (bad.log().match(/exit server=ws-rpc code=100/g) || []).length;
    assertEqual(tries, 1, 'starts of ws-rpc');
    for (const s of ['echo', 'broadcast']) {
      await until(2_000, () => new RegExp(`event=disabled|disabled server=ws-${s}`).test(bad.log()), `${s} disabled`);
      const x = await bad.status(s);
      assert(!x.up && !x.wantedup, `${s} should stay down: ${JSON.stringify(x)}`);
    }
    const exit = await bad.stop(5_000);
    assertEqual(exit.code, 0, 's6-svscan exit');
  });
  // configuration from an envdir (s6-envdir), mapped per service, JSON logs
  const envdir = mkdtempSync(join(tmpdir(), 'sandbox-ws-envdir-'));
  ctx.cleanup(() => rmSync(envdir, { recursive: true, force: true }));
  writeFileSync(join(envdir, 'WS_ECHO_PORT'), `${ctx.port(15)}\n`);
  writeFileSync(join(envdir, 'WS_LOG_FORMAT'), 'json\n');
  const fromDir = new Tree({ root: ctx.root, build: ctx.build, ports, services: ['echo'], env: { WS_ENVDIR: envdir } });
  ctx.cleanup(() => fromDir.cleanup());
  await h.check('an envdir configures the tree: WS_ECHO_PORT and WS_LOG_FORMAT from files', async () => {
    await fromDir.start();
    await fromDir.waitReady(['echo']);
    await echoCheck(`ws://127.0.0.1:${ctx.port(15)}/`);
    assertEqual((await fromDir.stop(5_000)).code, 0, 's6-svscan exit');
    const lines = fromDir.log().trim().split('\n').map((l) => JSON.parse(l));
    assert(lines.some((l) => l.event === 'listen' && l.port === String(ctx.port(15))), 'a JSON listen line on the envdir port');
    assert(lines.some((l) => l.src === 's6' && l.event === 'exit' && l.server === 'ws-echo' && l.code === '0'),
      'a JSON exit line from finish');
  });

  if (existsSync(join(ctx.build, 'servers', 'sandbox-run', 'ws-sandbox-run'))) {
    h.note('ws-sandbox-run is built and on the tree\'s PATH');
  }
}
