// Supervisor: container/s6 on the host against the built servers. Readiness
// through the notification fds, a restart after kill -9 timed against a
// second, clients back, and ws-broadcast's rooms and seq continuing from its
// database; then the no-restart rule for a refused configuration and the
// SIGTERM drain of the whole tree.

import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, echoCheck, join as joinRoom, rpcCheck } from './lib/client.mjs';
import { assert, assertEqual, until } from './lib/harness.mjs';
import { SERVICES, Tree } from './lib/tree.mjs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const TOKEN = 'supervisor-test-token';

/** The environment a process was started with (/proc/PID/environ), as an object. */
export function environOf(pid) {
  const out = {};
  for (const kv of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    if (!kv) continue;
    const i = kv.indexOf('=');
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

/** container/bin/ws-healthcheck with ENV, run in CWD: {code, out}. */
async function healthcheck(root, env, cwd) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WS_')));
  try {
    const r = await execFileP('bash', [join(root, 'container', 'bin', 'ws-healthcheck')],
      { env: { ...clean, WS_ENVDIR: '/nonexistent', ...env }, cwd, timeout: 10_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    return { code: e.code, out: `${e.stdout}${e.stderr}` };
  }
}

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

  await h.check('each server gets only its own variables: no WS_RPC_TOKEN in echo\'s or broadcast\'s /proc/PID/environ', async () => {
    const envs = {};
    for (const s of SERVICES) envs[s] = environOf((await tree.status(s)).pid);
    for (const s of SERVICES) {
      const own = s.toUpperCase();
      for (const k of Object.keys(envs[s])) {
        const m = /^WS_(ECHO|BROADCAST|RPC)_/.exec(k);
        assert(!m, `ws-${s} has ${k} in its environment`);
        assert(!['WS_SERVICES', 'WS_ENVDIR', 'WS_ENVDIR_LOADED', 'WS_HEALTHCHECK_TIMEOUT'].includes(k),
          `ws-${s} has the tree's ${k}`);
      }
      assertEqual(envs[s].WS_PORT, String(ports[s]), `ws-${s} WS_PORT (from WS_${own}_PORT)`);
      for (const [k, v] of Object.entries(envs[s])) {
        if (s !== 'rpc') assert(!v.includes(TOKEN), `ws-${s}'s ${k} holds ws-rpc's token`);
      }
    }
    assertEqual(envs.echo.WS_TOKEN, undefined, 'WS_TOKEN of ws-echo');
    assertEqual(envs.broadcast.WS_TOKEN, undefined, 'WS_TOKEN of ws-broadcast');
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
    // the time is measured and noted, not asserted: a loaded machine is slow
    await h.check(`kill -9 ws-${name}: s6 restarts it and it is ready again`, async () => {
      const t = await crashAndTime(tree, name);
      h.note(`ws-${name} kill -9 to ready (s6-svstat): ${t.ready.toFixed(1)} ms, to /healthz 200: ${t.serving.toFixed(1)} ms`);
      assert(Number.isFinite(t.ready) && Number.isFinite(t.serving), 'never ready again');
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

  // hostile values: ws-service refuses them once (exit 100, one clear line)
  // and s6 leaves the service down; nothing dies in the script itself
  const refusedOnce = async (what, env, svc, message) => {
    const t = new Tree({ root: ctx.root, build: ctx.build, ports, services: [svc], env });
    ctx.cleanup(() => t.cleanup());
    await h.check(`hostile ${what}: ws-${svc} refused once with exit 100 and a clear message, left down`, async () => {
      await t.start();
      await until(4_000, () => /configuration refused/.test(t.log()), `the down line in the log:\n${t.log()}`);
      await new Promise((r) => setTimeout(r, 2_200)); // s6 would have restarted it by now
      const log = t.log();
      assert(message.test(log), `no message ${message} in:\n${log}`);
      assertEqual((log.match(new RegExp(`exit server=ws-${svc} code=`, 'g')) || []).length, 1, `starts of ws-${svc}:\n${log}`);
      assert(new RegExp(`exit server=ws-${svc} code=100`).test(log), `exit 100:\n${log}`);
      const st = await t.status(svc);
      assert(!st.up && !st.wantedup, `${svc}: ${JSON.stringify(st)}`);
      assertEqual((await t.stop(5_000)).code, 0, 's6-svscan exit');
    }, { timeout: 15_000 });
    await t.cleanup();
  };
  await refusedOnce('WS_RPC_LOG_LEVEL with a newline and "WS_RPC_X="', { WS_RPC_TOKEN: TOKEN, WS_RPC_LOG_LEVEL: 'info\nWS_RPC_X=1' },
    'rpc', /refused server=ws-rpc reason="WS_RPC_LOG_LEVEL holds a newline/);
  await refusedOnce('WS_LOG_FORMAT with a newline', { WS_LOG_FORMAT: 'text\nWS_ECHO_X=1' },
    'echo', /WS_LOG_FORMAT holds a newline/);
  await refusedOnce('WS_RPC_USER naming no user', { WS_RPC_TOKEN: TOKEN, WS_RPC_USER: 'no-such-user-$(touch /tmp/x)' },
    'rpc', /WS_RPC_USER: no such user 'no-such-user-\$\(touch \/tmp\/x\)'/);
  await refusedOnce('WS_RPC_USER = ws-broadcast\'s user', { WS_RPC_TOKEN: TOKEN, WS_RPC_USER: 'nobody', WS_BROADCAST_USER: 'nobody' },
    'rpc', /WS_RPC_USER=nobody is also ws-broadcast's user/);
  await refusedOnce('WS_RPC_RUN_AS = ws-echo\'s user', { WS_RPC_TOKEN: TOKEN, WS_RPC_RUN_AS: 'nobody', WS_ECHO_USER: 'nobody' },
    'rpc', /WS_RPC_RUN_AS=nobody is also ws-echo's user/);
  await refusedOnce('WS_BROADCAST_USER = the user of ws-rpc\'s commands', { WS_BROADCAST_USER: 'nobody', WS_RPC_RUN_AS: 'nobody' },
    'broadcast', /WS_BROADCAST_USER=nobody is the user of ws-rpc's commands/);
  await refusedOnce('WS_RPC_RUN_AS naming no user (ws-rpc would exit 111 and be restarted every second)',
    { WS_RPC_TOKEN: TOKEN, WS_RPC_RUN_AS: 'no-such-exec-user' },
    'rpc', /WS_RPC_RUN_AS: no such user 'no-such-exec-user'/);
  await refusedOnce("WS_SERVICES='e*' (would glob to the service dir's event/)", { WS_SERVICES: 'e*' },
    'echo', /WS_SERVICES names an unknown service 'e\*'/);

  const unpriv = new Tree({ root: ctx.root, build: ctx.build, ports, services: ['rpc'], env: { WS_RPC_TOKEN: TOKEN, WS_RPC_USER: 'nobody' } });
  ctx.cleanup(() => unpriv.cleanup());
  await h.check('WS_RPC_USER=nobody: ws-rpc runs unprivileged, no commands\' user forced on it (WS_RUN_AS needs root), exec works', async () => {
    await unpriv.start();
    await unpriv.waitReady(['rpc']);
    const pid = (await unpriv.status('rpc')).pid;
    assertEqual(environOf(pid).WS_RUN_AS, undefined, 'WS_RUN_AS of an unprivileged ws-rpc');
    assert(/^Uid:\s+65534\b/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')), 'ws-rpc runs as nobody');
    await rpcCheck(rpcUrl);
    assertEqual((await unpriv.stop(5_000)).code, 0, 's6-svscan exit');
  });

  const odd = new Tree({
    root: ctx.root, build: ctx.build, ports, services: ['echo', 'rpc'],
    env: { WS_SERVICES: ' echo ,, rpc\t', WS_RPC_TOKEN: TOKEN, HOSTILE: 'x\nWS_RPC_X=1\nWS_ECHO_Y=2\nWS_SERVICES=broadcast' },
  });
  ctx.cleanup(() => odd.cleanup());
  await h.check('a non-WS value holding "\\nWS_RPC_X=1" and WS_SERVICES with commas and spaces: echo and rpc run, broadcast stays down', async () => {
    await odd.start();
    await odd.waitReady(['echo', 'rpc']);
    await echoCheck(u('echo'));
    const env = environOf((await odd.status('rpc')).pid);
    assertEqual(env.WS_X, undefined, 'WS_X in ws-rpc');
    assertEqual(environOf((await odd.status('echo')).pid).WS_Y, undefined, 'WS_Y in ws-echo');
    const b = await odd.status('broadcast');
    assert(!b.up && !b.wantedup, `broadcast: ${JSON.stringify(b)}`);
    assert(!/refused/.test(odd.log()), `refused:\n${odd.log()}`);
  });

  await h.check('ws-healthcheck: WS_SERVICES with commas and spaces healthy; \'e*\' and \'*\' never globbed', async () => {
    const env = { WS_HOST: '127.0.0.1', WS_ECHO_PORT: String(ports.echo), WS_RPC_PORT: String(ports.rpc) };
    let r = await healthcheck(ctx.root, { ...env, WS_SERVICES: ' echo ,, rpc\t' }, '/');
    assertEqual(r.code, 0, `healthy with ' echo ,, rpc': ${r.out}`);
    r = await healthcheck(ctx.root, { ...env, WS_SERVICES: 'e*' }, '/'); // / holds etc
    assert(r.code === 1 && /unknown service 'e\*'/.test(r.out), `e*: ${r.code} ${r.out}`);
    const dir = mkdtempSync(join(tmpdir(), 'sandbox-ws-hc-'));
    ctx.cleanup(() => rmSync(dir, { recursive: true, force: true }));
    for (const f of ['echo', 'rpc']) mkdirSync(join(dir, f));
    r = await healthcheck(ctx.root, { ...env, WS_SERVICES: '*' }, dir); // * would glob to "echo rpc": healthy
    assert(r.code === 1 && /unknown service '\*'/.test(r.out), `*: ${r.code} ${r.out}`);
    r = await healthcheck(ctx.root, { ...env, WS_SERVICES: 'echo broadcast' }, '/');
    assert(r.code === 1 && /ws-broadcast/.test(r.out), `broadcast is down: ${r.code} ${r.out}`);
    assertEqual((await odd.stop(5_000)).code, 0, 's6-svscan exit');
  });

  if (existsSync(join(ctx.build, 'servers', 'sandbox-run', 'ws-sandbox-run'))) {
    h.note('ws-sandbox-run is built and on the tree\'s PATH');
  }
}
