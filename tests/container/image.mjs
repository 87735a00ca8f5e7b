// Image: container/Dockerfile built with podman on a locally made Debian
// base, run with --network host on test ports, all three servers used from
// outside; the healthcheck, the users, `podman stop` (1001, exit 0 within
// the grace period), the room database on its volume. Then the Sandbox
// image's self-contained bundle (sandbox.Dockerfile) on a stand-in base.

import { createHmac } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { broadcastCheck, Client, echoCheck, execStream, join as joinRoom, rpcCheck } from './lib/client.mjs';
import { assert, assertEqual, until } from './lib/harness.mjs';
import { BASE, baseImage, build, configure, logs, podman } from './lib/podman.mjs';
import { Relay, serverToken } from './lib/relay.mjs';
import { Runtime } from './lib/runtime.mjs';

const TOKEN = 'image-test-token';
const IMAGE = 'localhost/sandbox-ws:test';
const STANDIN = 'localhost/sandbox-ws-sandbox-standin:test';
const GRACE = 10;

/**
 * The environment of the process COMM in CONTAINER, read on the host through
 * its host pid: inside the container even root cannot read a non-dumpable
 * server's /proc/PID/environ (no CAP_SYS_PTRACE), which would make a check
 * made there pass on an empty read.
 */
async function hostEnviron(container, comm) {
  const rows = (await podman(['top', container, 'hpid', 'comm'])).trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const row = rows.find((r) => r[1] === comm);
  if (!row) throw new Error(`no ${comm} in ${container}: ${JSON.stringify(rows)}`);
  const environ = readFileSync(`/proc/${row[0]}/environ`, 'utf8');
  if (!environ.includes('PATH=')) throw new Error(`${comm}'s environ read empty`);
  return environ.split('\0').filter(Boolean);
}

async function healthz(port) {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  await r.arrayBuffer();
  return r.status;
}

export async function run(h, ctx) {
  mkdirSync(ctx.cache, { recursive: true });
  configure(ctx.cache);
  const tag = `${process.pid}`;
  const name = `sandbox-ws-test-${tag}`;
  const volume = `sandbox-ws-test-rooms-${tag}`;
  const ports = { echo: ctx.port(0), broadcast: ctx.port(1), rpc: ctx.port(2) };
  const u = (s, q = '') => `ws://127.0.0.1:${ports[s]}/${q}`;
  ctx.cleanup(async () => {
    // one by one: `podman rm` stops at the first name that is not there
    for (const n of [name, `${name}-2`, `${name}-3`, `${name}-4`, `${name}-5`, `${name}-standin`]) {
      await podman(['rm', '-f', '-v', '-t', '0', n]).catch(() => {}); // -v: its anonymous volume too
    }
    await podman(['volume', 'rm', '-f', volume]).catch(() => {});
  });

  const base = await h.check('base image: debootstrap minbase bookworm (cached tarball), imported as debian:bookworm(-slim)', async () => {
    const t0 = performance.now();
    const did = await baseImage(ctx.cache);
    h.note(`base image: ${did}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, { timeout: 900_000 });
  if (!base) return;

  const built = await h.check('podman build container/Dockerfile (--pull=never)', async () => {
    const t0 = performance.now();
    await build(ctx.root, { file: 'Dockerfile', tag: IMAGE, log: join(ctx.cache, 'build.log') });
    h.note(`image build: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const size = (await podman(['image', 'inspect', IMAGE, '--format', '{{.Size}}'])).trim();
    h.note(`image size: ${(Number(size) / 1e6).toFixed(0)} MB (base ${(Number((await podman(['image', 'inspect', BASE, '--format', '{{.Size}}'])).trim()) / 1e6).toFixed(0)} MB)`);
  }, { timeout: 900_000 });
  if (!built) return;

  await h.check('image metadata: ports, volume, healthcheck, s6-svscan entrypoint', async () => {
    const [img] = JSON.parse(await podman(['image', 'inspect', IMAGE]));
    const cfg = img.Config;
    assertEqual(Object.keys(cfg.ExposedPorts || {}).sort(), ['8080/tcp', '8081/tcp', '8082/tcp'], 'EXPOSE');
    assertEqual(Object.keys(cfg.Volumes || {}), ['/var/lib/sandbox-ws'], 'VOLUME');
    assertEqual(cfg.Entrypoint, ['/usr/bin/s6-svscan', '/etc/sandbox-ws/service'], 'ENTRYPOINT');
    const hc = img.Healthcheck || cfg.Healthcheck; // podman puts it beside Config
    assert(hc && hc.Test.join(' ').includes('ws-healthcheck'), 'HEALTHCHECK (build with --format docker)');
  });

  await h.check('the image holds the servers (and ws-sandbox-run when it is built)', async () => {
    const ls = await podman(['run', '--rm', '--network', 'host', '--entrypoint', '/bin/ls', IMAGE, '/usr/local/bin']);
    const want = ['ws-echo', 'ws-broadcast', 'ws-rpc'];
    if (existsSync(join(ctx.build, 'servers', 'sandbox-run', 'ws-sandbox-run'))) want.push('ws-sandbox-run');
    for (const b of want) assert(ls.split('\n').includes(b), `${b} missing from /usr/local/bin: ${ls}`);
    h.note(`in the image: ${ls.split('\n').filter((x) => x.startsWith('ws-')).join(' ')}`);
  }, { timeout: 60_000 });

  const sh = (script) => podman(['run', '--rm', '--network', 'host', '--entrypoint', '/bin/sh', IMAGE, '-c', script]);

  await h.check('no apt package cache or lists in the runtime image (apt-get clean in the install layer)', async () => {
    const out = await sh('ls /var/cache/apt/archives | grep -c "\\.deb$" || true; ls /var/lib/apt/lists | grep -vc "^partial$\\|^lock$" || true; du -sk /var/cache/apt | cut -f1');
    const [debs, lists, kb] = out.trim().split('\n').map(Number);
    h.note(`runtime image /var/cache/apt: ${kb} KiB`);
    assertEqual([debs, lists], [0, 0], '.deb files in /var/cache/apt/archives, files in /var/lib/apt/lists');
    assert(kb < 1024, `/var/cache/apt holds ${kb} KiB`);
  }, { timeout: 60_000 });

  await h.check('ws-exec: a system user and group of its own, no home, nologin shell, owning no file', async () => {
    const out = await sh('getent passwd ws-exec; getent group ws-exec; id -u ws; test -e /nonexistent && echo HOME-EXISTS; '
      + 'find / -xdev \\( -user ws-exec -o -group ws-exec \\) -print 2>/dev/null | head -5');
    const [pw, gr, wsUid, ...rest] = out.trim().split('\n');
    assert(pw, `no user ws-exec: ${out}`);
    const [, , uid, gid, , home, shell] = pw.split(':');
    assert(Number(uid) > 0 && Number(uid) < 1000 && uid !== wsUid, `uid ${uid} (ws ${wsUid})`);
    assertEqual(gr.split(':')[2], gid, 'its own group');
    assertEqual([home, shell], ['/nonexistent', '/usr/sbin/nologin'], 'home and shell');
    assertEqual(rest, [], 'a home, or files owned by ws-exec');
  }, { timeout: 60_000 });

  const env = ['-e', 'WS_HOST=127.0.0.1', '-e', `WS_ECHO_PORT=${ports.echo}`, '-e', `WS_BROADCAST_PORT=${ports.broadcast}`,
    '-e', `WS_RPC_PORT=${ports.rpc}`, '-e', `WS_RPC_TOKEN=${TOKEN}`];
  const runArgs = (n) => ['run', '-d', '--name', n, '--network', 'host', '--health-interval', 'disable',
    '-v', `${volume}:/var/lib/sandbox-ws`, ...env, IMAGE];

  const started = await h.check('podman run --network host: all three servers answer /healthz', async () => {
    await podman(['volume', 'rm', '-f', volume]).catch(() => {});
    const t0 = performance.now();
    await podman(runArgs(name));
    await until(15_000, async () => {
      for (const s of Object.keys(ports)) if ((await healthz(ports[s]).catch(() => 0)) !== 200) return false;
      return true;
    }, 'three /healthz 200', 20);
    h.note(`podman run to three servers serving: ${Math.round(performance.now() - t0)} ms`);
  }, { timeout: 30_000 });
  if (!started) {
    console.log(await logs(name).catch((e) => String(e)));
    return;
  }

  await h.check('podman healthcheck run: healthy', async () => {
    await podman(['healthcheck', 'run', name]);
  });

  await h.check('ws-echo and ws-broadcast run as user ws, ws-rpc as root, s6-svscan is PID 1', async () => {
    const top = await podman(['top', name, 'user', 'pid', 'args']);
    const rows = top.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    const userOf = (prog) => (rows.find((r) => r[2] === prog || r[2].endsWith(`/${prog}`)) || [])[0];
    assertEqual(userOf('ws-echo'), 'ws', 'ws-echo user');
    assertEqual(userOf('ws-broadcast'), 'ws', 'ws-broadcast user');
    assertEqual(userOf('ws-rpc'), 'root', 'ws-rpc user');
    const pid1 = rows.find((r) => r[1] === '1');
    assert(pid1 && pid1.slice(2).join(' ').includes('s6-svscan'), `PID 1: ${pid1}`);
  });

  await h.check('echo in the container', () => echoCheck(u('echo')));
  const room = `img-${tag}`;
  let seq = 0;
  await h.check('broadcast in the container', async () => {
    seq = await broadcastCheck(u('broadcast'), room);
  });
  await h.check('exec in the container: streamed output, exit code, kill', () => rpcCheck(u('rpc', `?token=${TOKEN}`)));
  await h.check('ws-rpc in the container serves the bundled xterm.js for the terminal tab (not the stub)', async () => {
    for (const f of ['xterm.js', 'xterm.css', 'addon-fit.js']) {
      const r = await fetch(`http://127.0.0.1:${ports.rpc}/xterm/${f}`);
      const body = await r.text();
      assertEqual(r.status, 200, `/xterm/${f}`);
      assert(body.length > 1000 && !body.includes('not bundled'), `/xterm/${f} is a stub (${body.length} bytes)`);
    }
  });
  await h.check('ws-rpc in the container refuses a missing token (401)', async () => {
    assertEqual((await Client.refusal(u('rpc'))).status, 401, 'status');
  });

  await h.check('ws-broadcast\'s state: /var/lib/sandbox-ws 0700 and rooms.db* 0600, owned by ws', async () => {
    const out = await podman(['exec', name, 'sh', '-c', 'stat -c "%a %U %G %n" /var/lib/sandbox-ws /var/lib/sandbox-ws/*']);
    const rows = out.trim().split('\n').map((l) => l.split(' '));
    assertEqual(rows[0].slice(0, 3), ['700', 'ws', 'ws'], '/var/lib/sandbox-ws');
    assert(rows.some((r) => r[3].endsWith('/rooms.db')), `no rooms.db: ${out}`);
    for (const r of rows.slice(1)) assertEqual(r.slice(0, 2), ['600', 'ws'], r[3]);
  });

  await h.check('a command run through ws-rpc runs as ws-exec: it cannot read, list or write the room database, nor any server\'s /proc/PID/environ', async () => {
    const c = await Client.connect(u('rpc', `?token=${TOKEN}`));
    try {
      const r = await execStream(c, 1, [
        'id -un',
        'cat /var/lib/sandbox-ws/rooms.db >/dev/null 2>&1 && echo READ-DB',
        'ls /var/lib/sandbox-ws >/dev/null 2>&1 && echo LIST-DB',
        // (not `:`: a failed redirection of a special built-in ends the shell)
        '{ true >>/var/lib/sandbox-ws/rooms.db; } 2>/dev/null && echo WRITE-DB',
        'for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null) || continue; case $c in ws-echo|ws-broadcast|ws-rpc|s6-svscan|s6-supervise)',
        '  if cat $p/environ >/dev/null 2>&1; then echo "ENV $c"; else echo "denied $c"; fi;; esac; done',
        'exit 0',
      ].join('\n'));
      assertEqual(r.result.exitCode, 0, `exit code (output: ${r.output})`);
      const lines = r.output.trim().split('\n');
      assertEqual(lines[0], 'ws-exec', 'the commands\' user');
      for (const bad of ['READ-DB', 'LIST-DB', 'WRITE-DB']) assert(!lines.includes(bad), `${bad}:\n${r.output}`);
      assert(!lines.some((l) => l.startsWith('ENV ')), `readable environ:\n${r.output}`);
      for (const s of ['ws-echo', 'ws-broadcast', 'ws-rpc']) assert(lines.includes(`denied ${s}`), `${s} not probed:\n${r.output}`);
    } finally {
      await c.close().catch(() => c.terminate());
    }
  });

  await h.check('WS_RPC_TOKEN (and every WS_RPC_* variable) is absent from ws-echo\'s and ws-broadcast\'s /proc/PID/environ', async () => {
    for (const comm of ['ws-echo', 'ws-broadcast']) {
      const bad = (await hostEnviron(name, comm)).filter((kv) => /^WS_RPC_|^WS_TOKEN=/.test(kv) || kv.includes(TOKEN));
      assertEqual(bad, [], `WS_RPC_*, WS_TOKEN or the token in ${comm}'s environment`);
    }
  });

  await h.check('ws-healthcheck in the container: WS_SERVICES=\' echo , rpc \' healthy, \'e*\' unhealthy naming \'e*\' (not a glob)', async () => {
    await podman(['exec', '-w', '/', '-e', 'WS_SERVICES= echo , rpc ', name, 'ws-healthcheck']);
    const bad = await podman(['exec', '-w', '/', '-e', 'WS_SERVICES=e*', name, 'ws-healthcheck']).then(() => null, (e) => String(e));
    assert(bad && /unknown service 'e\*'/.test(bad), `e*: ${bad}`);
  });

  await h.check(`podman stop: clients get 1001, the container exits 0 within the ${GRACE} s grace`, async () => {
    const clients = [await Client.connect(u('echo')), (await joinRoom(u('broadcast'), room, 'dave'))[0],
      await Client.connect(u('rpc', `?token=${TOKEN}`))];
    const t0 = performance.now();
    await podman(['stop', '-t', String(GRACE), name], { timeout: (GRACE + 10) * 1000 });
    const ms = performance.now() - t0;
    h.note(`podman stop with 3 clients: ${Math.round(ms)} ms`);
    const codes = await Promise.all(clients.map((c) => c.waitClosed(3_000).then((x) => x.code)));
    assertEqual(codes, [1001, 1001, 1001], 'close codes');
    const state = JSON.parse(await podman(['inspect', name, '--format', '{{json .State}}']));
    assertEqual(state.ExitCode, 0, 'exit code');
    assert(ms < GRACE * 1000, `stop took ${Math.round(ms)} ms, the grace is ${GRACE} s`);
    const out = await logs(name);
    for (const s of ['echo', 'broadcast', 'rpc']) {
      assert(new RegExp(`exit server=ws-${s} code=0`).test(out), `no clean exit of ws-${s} in the logs:\n${out}`);
    }
  }, { timeout: 30_000 });

  await h.check('a new container on the same volume: the room and its seq continue', async () => {
    await podman(runArgs(`${name}-2`));
    await until(15_000, async () => (await healthz(ports.broadcast).catch(() => 0)) === 200, 'broadcast up', 20);
    const r = await fetch(`http://127.0.0.1:${ports.broadcast}/rooms/${room}`);
    assertEqual((await r.json()).last_seq, seq, 'last_seq');
    const [a, w] = await joinRoom(u('broadcast'), room, 'erin', { since: 0 });
    assertEqual(w.history.map((m) => m.text), ['hi bob'], 'history');
    a.sendJson({ type: 'message', text: 'again' });
    const m = await a.json((v) => v.type === 'message' && v.text === 'again', 5_000, 'message');
    assertEqual(m.seq, seq + 1, 'seq');
    await a.close();
    await podman(['stop', '-t', String(GRACE), `${name}-2`], { timeout: (GRACE + 10) * 1000 });
  }, { timeout: 40_000 });

  await h.check('a hostile value (WS_RPC_LOG_LEVEL with a newline and WS_RPC_X=): ws-rpc refused once, exit 100, left down; echo and broadcast serve', async () => {
    await podman(['run', '-d', '--name', `${name}-3`, '--network', 'host', '--health-interval', 'disable', ...env,
      '-e', 'WS_RPC_LOG_LEVEL=info\nWS_RPC_X=1', IMAGE]);
    await until(15_000, async () => /configuration refused/.test(await logs(`${name}-3`)), 'the down line', 100);
    await until(5_000, async () => (await healthz(ports.echo).catch(() => 0)) === 200
      && (await healthz(ports.broadcast).catch(() => 0)) === 200, 'echo and broadcast up', 50);
    await new Promise((r) => setTimeout(r, 2_200)); // s6 would have restarted it by now
    const out = await logs(`${name}-3`);
    assert(/refused server=ws-rpc reason="WS_RPC_LOG_LEVEL holds a newline/.test(out), `no clear message:\n${out}`);
    assertEqual((out.match(/exit server=ws-rpc code=/g) || []).length, 1, `starts of ws-rpc:\n${out}`);
    const st = (await podman(['exec', `${name}-3`, 's6-svstat', '-o', 'up,wantedup', '/etc/sandbox-ws/service/rpc'])).trim();
    assertEqual(st, 'false false', 'ws-rpc up, wanted up');
    await podman(['stop', '-t', String(GRACE), `${name}-3`], { timeout: (GRACE + 10) * 1000 });
  }, { timeout: 45_000 });

  // the JWT key as the next Worker's Durable Object hands it in
  const JWT_KEY = createHmac('sha256', 'image-worker-secret').update('ws-broadcast-jwt').digest('hex');
  const mint = (claims) => {
    const b = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const head = `${b({ alg: 'HS256', typ: 'JWT' })}.${b(claims)}`;
    return `${head}.${createHmac('sha256', JWT_KEY).update(head).digest('base64url')}`;
  };
  await h.check('WS_BROADCAST_JWT_SECRET: written 0600 for ws into a 0700 data/, only WS_JWT_SECRET_FILE in ws-broadcast\'s environ, ws-exec cannot read it, JWTs required', async () => {
    await podman(['run', '-d', '--name', `${name}-4`, '--network', 'host', '--health-interval', 'disable', ...env,
      '-e', 'WS_SERVICES=broadcast rpc', '-e', `WS_BROADCAST_JWT_SECRET=${JWT_KEY}`, IMAGE]);
    await until(15_000, async () => (await healthz(ports.broadcast).catch(() => 0)) === 200 && (await healthz(ports.rpc).catch(() => 0)) === 200,
      'broadcast and rpc up', 50);
    try {
      const dir = '/etc/sandbox-ws/service/broadcast/data';
      const st = (await podman(['exec', `${name}-4`, 'stat', '-c', '%a %U', dir, `${dir}/jwt-secret`])).trim().split('\n');
      assertEqual(st, ['700 ws', '600 ws'], 'modes and owners');
      const env4 = (await hostEnviron(`${name}-4`, 'ws-broadcast')).join('\n');
      assert(env4.includes(`WS_JWT_SECRET_FILE=${dir}/jwt-secret`), `no WS_JWT_SECRET_FILE:\n${env4}`);
      assert(!env4.includes(JWT_KEY) && !/WS_(BROADCAST_)?JWT_SECRET=/.test(env4), 'the key is in ws-broadcast\'s environment');
      assert(!(await hostEnviron(`${name}-4`, 'ws-rpc')).some((kv) => kv.includes(JWT_KEY)), 'the key is in ws-rpc\'s environment');
      const c = await Client.connect(u('rpc', `?token=${TOKEN}`));
      try {
        const r = await execStream(c, 1, `cat ${dir}/jwt-secret >/dev/null 2>&1 && echo READ-KEY; ls ${dir} >/dev/null 2>&1 && echo LIST; exit 0`);
        assertEqual(r.output.trim(), '', 'what ws-exec could do with the key');
      } finally {
        await c.close().catch(() => c.terminate());
      }
      assertEqual((await Client.refusal(u('broadcast', '?id=r&user=mallory'))).status, 401, 'no JWT');
      const now = Math.floor(Date.now() / 1000);
      const [a, w] = await joinRoom(u('broadcast'), 'r', 'ignored', { extra: `&token=${mint({ sub: 'ada', exp: now + 60, info: { name: 'Ada' } })}` });
      assertEqual(w.type, 'welcome', 'welcome with a JWT');
      a.sendJson({ type: 'message', text: 'signed' });
      const m = await a.json((v) => v.type === 'message', 5_000, 'message');
      assertEqual([m.from, m.info?.name], ['ada', 'Ada'], 'from and info');
      await a.close();
    } finally {
      // its ports are the stand-in's below
      await podman(['rm', '-f', '-v', '-t', '0', `${name}-4`]).catch(() => {});
    }
  }, { timeout: 45_000 });

  // the next API's path end to end: container/worker-next in workerd (the
  // stand-in SDK, its relay) in front of this image, the container's
  // environment as its SandboxWs Durable Object sets it
  await h.check('the 1.0 path: worker-next in front of this image (s6 runs the servers, the Worker starts none): echo 1 MiB, three signed users, exec streaming, s6-svc -r with members connected', async () => {
    const WT = 'image-worker-secret'; // JWT_KEY is derived from it
    const cports = { 8080: ports.echo, 8081: ports.broadcast, 8082: ports.rpc };
    await podman(['run', '-d', '--name', `${name}-5`, '--network', 'host', '--health-interval', 'disable',
      '-e', 'WS_HOST=127.0.0.1', '-e', `WS_ECHO_PORT=${ports.echo}`, '-e', `WS_BROADCAST_PORT=${ports.broadcast}`, '-e', `WS_RPC_PORT=${ports.rpc}`,
      '-e', `WS_RPC_TOKEN=${serverToken(WT)}`, '-e', `WS_BROADCAST_JWT_SECRET=${JWT_KEY}`, IMAGE]);
    const runtime = new Runtime({ build: ctx.build, ports: cports, listen: ctx.port(3), container: `${name}-5` });
    const relay = new Relay({ root: ctx.root, here: ctx.here, line: 'next', token: WT, listen: ctx.port(4), ports: cports, control: runtime.url });
    try {
      await until(15_000, async () => {
        for (const p of Object.values(ports)) if ((await healthz(p).catch(() => 0)) !== 200) return false;
        return true;
      }, 'three /healthz 200', 50);
      await runtime.start();
      await relay.start();
      const w = (path) => relay.wsUrl(`${path}${path.includes('?') ? '&' : '?'}token=${WT}`);
      const e = await Client.connect(w('/ws/echo'));
      const big = Buffer.alloc(1 << 20, 0x5a);
      e.send(big);
      const back = await e.next(10_000);
      assert(back.isBinary && back.data.equals(big), '1 MiB through the Worker into the container');
      await e.close();
      const r = `img-next-${tag}`;
      const members = [];
      for (const user of ['ann', 'ben', 'cai']) members.push((await joinRoom(w('/ws/broadcast'), r, user))[0]);
      members[0].sendJson({ type: 'message', text: 'signed by the Worker', from: 'cai' });
      const got = await Promise.all(members.map((c) => c.json((v) => v.type === 'message', 5_000, 'message')));
      assertEqual(got.map((m) => m.from), ['ann', 'ann', 'ann'], 'from (the JWT\'s sub)');
      await rpcCheck(w('/ws/json'));
      assertEqual(runtime.execs.filter((x) => x.program.startsWith('ws-')).length, 0, 'servers the Worker started');
      // a restart under the image's s6 with the members connected
      await podman(['exec', `${name}-5`, 's6-svc', '-r', '/etc/sandbox-ws/service/broadcast']);
      const closes = await Promise.all(members.map((c) => c.waitClosed(8_000)));
      assertEqual(closes.map((c) => c.code), [1001, 1001, 1001], 'close codes through the relay');
      const [a2] = await until(10_000, () => joinRoom(w('/ws/broadcast'), r, 'ann', { since: got[0].seq }).catch(() => null), 'ann back', 100);
      a2.sendJson({ type: 'message', text: 'while you were away' });
      const m2 = await a2.json((v) => v.type === 'message', 5_000, 'own message');
      const [b2, wb] = await joinRoom(w('/ws/broadcast'), r, 'ben', { since: got[0].seq });
      assertEqual(wb.history.map((m) => [m.seq, m.text, m.from]), [[m2.seq, 'while you were away', 'ann']], 'what ben missed');
      await a2.close();
      await b2.close();
      h.note(`worker-next + image: s6 readiness checks through podman exec: ${runtime.execs.length}`);
    } finally {
      await relay.cleanup();
      await runtime.cleanup();
      await podman(['rm', '-f', '-v', '-t', '0', `${name}-5`]).catch(() => {});
    }
  }, { timeout: 120_000 });

  // sandbox.Dockerfile's base cannot be pulled here: its bundle is checked on
  // the bare minbase image instead, which has none of the runtime libraries
  const standin = await h.check('sandbox.Dockerfile builds on a stand-in base (bare Debian, no runtime libraries)', async () => {
    const t0 = performance.now();
    await build(ctx.root, {
      file: 'sandbox.Dockerfile', tag: STANDIN, log: join(ctx.cache, 'build-sandbox.log'),
      args: ['--build-arg', `SANDBOX_IMAGE=${BASE}`],
    });
    h.note(`sandbox.Dockerfile (stand-in base) build: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, { timeout: 900_000 });
  if (standin) {
    await h.check('the bundled servers run there: echo, broadcast, exec', async () => {
      const libs = await podman(['run', '--rm', '--network', 'host', '--entrypoint', '/bin/sh', STANDIN, '-c',
        'dpkg-query -W -f "\\${Package}\\n" | grep -c "^libwebsockets\\|^libjansson\\|^libuv1" || true']);
      assertEqual(libs.trim(), '0', 'runtime libraries installed in the stand-in base');
      await podman(['run', '-d', '--name', `${name}-standin`, '--network', 'host', '--entrypoint', '/bin/bash',
        '-e', 'WS_HOST=127.0.0.1', '-e', `WS_TOKEN=${TOKEN}`, STANDIN, '-c',
        `WS_PORT=${ports.echo} ws-echo & WS_PORT=${ports.broadcast} WS_TOKEN= ws-broadcast & WS_PORT=${ports.rpc} ws-rpc & wait`]);
      await until(10_000, async () => {
        for (const s of Object.keys(ports)) if ((await healthz(ports[s]).catch(() => 0)) !== 200) return false;
        return true;
      }, 'bundled servers serving', 20);
      await echoCheck(u('echo', `?token=${TOKEN}`));
      await broadcastCheck(u('broadcast'), `standin-${tag}`);
      await rpcCheck(u('rpc', `?token=${TOKEN}`));
      const out = await logs(`${name}-standin`);
      assert(/loop=libuv/.test(out), 'the libuv event-loop plugin was not loaded from the bundle');
      const perms = await podman(['exec', `${name}-standin`, 'sh', '-c',
        'getent passwd ws-exec | cut -d: -f6,7; stat -c %a /var/lib/sandbox-ws; ls /var/lib/sandbox-ws/rooms.db; ls ws-broadcast.db 2>&1 | grep -c "No such"']);
      // the image's ENV WS_DB puts the rooms on /var/lib/sandbox-ws for a
      // ws-broadcast started without the s6 run script (the Worker's way)
      assertEqual(perms.trim().split('\n'), ['/nonexistent:/usr/sbin/nologin', '700', '/var/lib/sandbox-ws/rooms.db', '1'],
        'ws-exec, the state directory, the database where WS_DB says');
    }, { timeout: 30_000 });
  }
}
