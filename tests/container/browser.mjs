// Browser: headless Chromium (Debian's, driven by playwright-core) opens the
// demo page served by the next Worker in workerd (every WebSocket through the
// stand-in SDK's message-by-message relay, lib/relay.mjs), echoes, chats between two
// pages (members, counts, a server crash and the reconnect with since=), and
// runs a command with streamed output, its exit code, and a kill.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';
import { assert, assertEqual, until } from './lib/harness.mjs';
import { Relay, serverToken } from './lib/relay.mjs';
import { Runtime } from './lib/runtime.mjs';
import { Tree } from './lib/tree.mjs';
import { jwtKey } from './worker.mjs';

const TOKEN = 'browser-token';
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const text = (page, sel) => page.locator(sel).innerText();

export async function run(h, ctx) {
  if (!existsSync(CHROMIUM)) {
    await h.check('chromium is installed', () => { throw new Error(`${CHROMIUM} missing (apt-get install chromium)`); });
    return;
  }
  const ports = { echo: ctx.port(30), broadcast: ctx.port(31), rpc: ctx.port(32) };
  const tree = new Tree({
    root: ctx.root, build: ctx.build, ports, env: { WS_RPC_TOKEN: serverToken(TOKEN), WS_BROADCAST_JWT_SECRET: jwtKey(TOKEN) },
  });
  ctx.cleanup(() => tree.cleanup());
  // the next Worker (container/worker-next) in workerd, the servers under s6,
  // every WebSocket through the stand-in SDK's message-by-message relay
  const cports = { 8080: ports.echo, 8081: ports.broadcast, 8082: ports.rpc };
  const runtime = new Runtime({ build: ctx.build, ports: cports, tree, listen: ctx.port(35) });
  ctx.cleanup(() => runtime.cleanup());
  const relay = new Relay({
    root: ctx.root, here: ctx.here, line: 'next', token: TOKEN, listen: ctx.port(33), ports: cports, control: runtime.url,
  });
  ctx.cleanup(() => relay.cleanup());
  const profile = mkdtempSync(join(tmpdir(), 'sandbox-ws-chromium-'));
  ctx.cleanup(() => rmSync(profile, { recursive: true, force: true }));
  let browser;
  ctx.cleanup(() => browser?.close());
  const sockets = []; // every WebSocket URL the pages opened

  const up = await h.check('servers, relay Worker and Chromium start', async () => {
    await tree.start();
    await tree.waitReady();
    await runtime.start();
    await relay.start();
    const t0 = performance.now();
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 60_000,
    });
    browser.setDefaultTimeout(10_000);
    h.note(`chromium launch: ${Math.round(performance.now() - t0)} ms`);
  }, { timeout: 120_000 });
  if (!up) return;

  const pageUrl = `${relay.url}/?token=${TOKEN}&sandbox=browser`;
  const open = async () => {
    const page = await browser.newPage();
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const r = await page.goto(pageUrl);
    assertEqual(r.status(), 200, 'GET /');
    await page.locator('#echo-status[data-state="open"]').waitFor();
    await page.locator('#cmd-status[data-state="open"]').waitFor();
    return page;
  };

  let a;
  let b;
  await h.check('the demo page loads from the Worker and connects echo and the console', async () => {
    a = await open();
  });
  if (!a) return;

  await h.check('echo panel: a message comes back', async () => {
    await a.fill('#echo-input', 'hello from chromium');
    await a.press('#echo-input', 'Enter');
    await a.locator('#echo-log', { hasText: '< hello from chromium' }).waitFor();
  });

  const room = `browser-${process.pid}`;
  const joinAs = async (page, name) => {
    await page.fill('#chat-name', name);
    await page.fill('#chat-room', room);
    await page.click('#chat-join');
    await page.locator('#chat-status[data-state="open"]').waitFor();
  };
  let seq = 0;
  await h.check('chat between two pages: members, live count, messages with seq', async () => {
    await joinAs(a, 'ann');
    await until(5_000, async () => (await text(a, '#chat-count')) === '1', 'count 1 on ann');
    b = await open();
    await joinAs(b, 'ben');
    await until(5_000, async () => (await text(a, '#chat-count')) === '2' && (await text(b, '#chat-count')) === '2',
      'count 2 on both pages');
    assert((await text(a, '#chat-members')).includes('ben'), 'ben in ann\'s member list');
    await a.fill('#chat-input', 'hello ben');
    await a.press('#chat-input', 'Enter');
    await b.locator('#chat-log', { hasText: 'ann: hello ben' }).waitFor();
    seq = Number(await text(b, '#chat-seq'));
    assert(seq >= 1, `seq ${seq}`);
    await b.close();
    await until(5_000, async () => (await text(a, '#chat-count')) === '1', 'count back to 1 after ben left');
    b = await open();
    await joinAs(b, 'ben');
    await until(5_000, async () => (await text(a, '#chat-count')) === '2', 'count 2 again');
  }, { timeout: 40_000 });

  await h.check('without ?sandbox= every panel (the chat too) uses the sandbox "default": a room is not a sandbox', async () => {
    const n = (await relay.seen()).length;
    const page = await browser.newPage();
    const urls = [];
    page.on('websocket', (w) => urls.push(w.url()));
    try {
      await page.goto(`${relay.url}/?token=${TOKEN}`);
      await page.locator('#echo-status[data-state="open"]').waitFor();
      await page.locator('#cmd-status[data-state="open"]').waitFor();
      await page.fill('#chat-room', `room-of-its-own-${process.pid}`);
      await page.click('#chat-join');
      await page.locator('#chat-status[data-state="open"]').waitFor();
      const seen = (await relay.seen()).slice(n);
      assertEqual([...new Set(seen.map((x) => x.url.split('?')[0]))].sort(), ['/ws/broadcast', '/ws/echo', '/ws/json'], 'routes');
      assertEqual([...new Set(seen.map((x) => x.sandboxId))], ['default'], 'sandbox ids the Worker saw');
      assert(urls.length >= 3 && urls.every((u) => new URL(u).searchParams.get('sandbox') === 'default'),
        `the page's URLs without sandbox=default: ${urls.join(' ')}`);
    } finally {
      await page.close();
    }
  }, { timeout: 30_000 });

  await h.check('a foreign ?json= / ?broadcast= host is ignored (the token goes nowhere else); a same-origin ?echo= is honoured', async () => {
    let stolen = 0;
    const http = createServer((req, res) => res.end('ok'));
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (s) => { stolen++; s.close(1000); });
    await new Promise((resolve) => http.listen(ctx.port(34), '127.0.0.1', resolve));
    const page = await browser.newPage();
    const urls = [];
    page.on('websocket', (w) => urls.push(w.url()));
    try {
      const q = new URLSearchParams({
        token: TOKEN, json: `ws://127.0.0.1:${ctx.port(34)}/collect`, broadcast: `ws://localhost:${ctx.port(34)}/`,
        echo: '/ws/echo?via=param',
      });
      await page.goto(`${relay.url}/?${q}`);
      await page.locator('#echo-status[data-state="open"]').waitFor();
      await page.locator('#cmd-status[data-state="open"]').waitFor();
      await page.fill('#chat-room', 'r');
      await page.click('#chat-join');
      await page.locator('#chat-status[data-state="open"]').waitFor();
      assertEqual(stolen, 0, 'connections to the foreign host');
      assert(urls.every((u) => new URL(u).host === `127.0.0.1:${ctx.port(33)}`), `URLs: ${urls.join(' ')}`);
      assert(urls.some((u) => u.includes('/ws/echo?via=param')), `?echo= not used: ${urls.join(' ')}`);
      const notice = await text(page, '#notice');
      assert(/\?json=/.test(notice) && /\?broadcast=/.test(notice) && !/\?echo=/.test(notice), `notice: ${notice}`);
    } finally {
      await page.close();
      wss.close();
      http.close();
    }
  }, { timeout: 30_000 });

  await h.check('ws-broadcast killed: both pages reconnect by themselves with since=, seq continues', async () => {
    const before = sockets.length;
    const st = await tree.status('broadcast');
    process.kill(st.pid, 'SIGKILL');
    await until(10_000, async () => (await a.locator('#chat-status').getAttribute('data-state')) !== 'open', 'ann sees the loss');
    await a.locator('#chat-status[data-state="open"]').waitFor({ timeout: 15_000 });
    await b.locator('#chat-status[data-state="open"]').waitFor({ timeout: 15_000 });
    await until(5_000, async () => (await text(a, '#chat-count')) === '2', 'count 2 after the reconnect');
    const again = sockets.slice(before).filter((u) => u.includes('/ws/broadcast'));
    assert(again.length >= 2 && again.every((u) => /[?&]since=\d+/.test(u)),
      `reconnect URLs without since=: ${again.join(' ')}`);
    await b.fill('#chat-input', 'back again');
    await b.press('#chat-input', 'Enter');
    await a.locator('#chat-log', { hasText: `[${seq + 1}] ben: back again` }).waitFor();
    const lines = (await text(a, '#chat-log')).split('\n').filter((l) => l.includes('hello ben'));
    assertEqual(lines.length, 1, 'the old message shown once (no replay after since)');
  }, { timeout: 40_000 });

  await h.check('command console: output streams in, then the exit code', async () => {
    await a.fill('#cmd-input', 'for i in 1 2 3; do echo tick $i; sleep 0.4; done; exit 3');
    await a.click('#cmd-run');
    await a.locator('#cmd-log', { hasText: 'tick 1' }).waitFor();
    assertEqual(await text(a, '#cmd-exit'), '…', 'exit code shown before the end');
    assert(!(await text(a, '#cmd-log')).includes('tick 3'), 'all output at once: not streamed');
    await until(5_000, async () => (await text(a, '#cmd-exit')) === '3', 'exit code 3');
    assert((await text(a, '#cmd-log')).includes('tick 3'), 'last line');
  });

  await h.check('command console: kill stops a running command (143)', async () => {
    await a.fill('#cmd-input', 'echo sleeping; sleep 30');
    await a.click('#cmd-run');
    await a.locator('#cmd-log', { hasText: 'sleeping' }).waitFor();
    await a.click('#cmd-kill');
    await until(5_000, async () => (await text(a, '#cmd-exit')) === '143', 'exit code 143');
    assert((await text(a, '#cmd-info')).includes('SIGTERM'), 'signal shown');
  });

  await h.check('the echo panel reconnects with backoff after its server restarts', async () => {
    const echoSockets = () => sockets.filter((u) => u.includes('/ws/echo')).length;
    const before = echoSockets();
    await tree.svcCmd('echo', '-r'); // SIGTERM: drain with 1001, s6 starts it again
    await until(15_000, () => echoSockets() > before, 'a new echo WebSocket from the page');
    await a.locator('#echo-status[data-state="open"]').waitFor({ timeout: 15_000 });
    await a.fill('#echo-input', 'after restart');
    await a.press('#echo-input', 'Enter');
    await a.locator('#echo-log', { hasText: '< after restart' }).waitFor();
  }, { timeout: 30_000 });

  await h.check('terminal tab through the Worker: xterm.js from ws-rpc via /ws/xterm/, a shell on /ws/terminal, echo hi', async () => {
    const page = await browser.newPage();
    const urls = [];
    page.on('websocket', (w) => urls.push(w.url()));
    try {
      await page.goto(pageUrl);
      await page.click('#term-open');
      await page.waitForFunction(() => window.termDemo?.id && document.querySelector('#term-status').dataset.state === 'open', null, { timeout: 20_000 });
      assertEqual(await page.evaluate(() => typeof window.Terminal), 'function', 'xterm.js loaded');
      await page.evaluate(() => window.termDemo.xterm.focus());
      await page.keyboard.type("echo h''i\n");
      await until(10_000, async () => (await page.evaluate(() => {
        const b = window.termDemo.xterm.buffer.active;
        const out = [];
        for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
        return out;
      })).some((l) => l.trimEnd() === 'hi'), 'the line "hi" on the terminal');
      const terms = urls.filter((u) => new URL(u).pathname === '/ws/terminal');
      assert(terms.length >= 1 && terms.every((u) => new URL(u).host === `127.0.0.1:${ctx.port(33)}`), `terminal sockets: ${urls}`);
    } finally {
      await page.close();
    }
  }, { timeout: 40_000 });

  // the 0.12 Worker too: it starts the servers itself (no s6), the same page
  const ports12 = { 8080: ctx.port(56), 8081: ctx.port(57), 8082: ctx.port(58) };
  const runtime12 = new Runtime({ build: ctx.build, ports: ports12, listen: ctx.port(59) });
  ctx.cleanup(() => runtime12.cleanup());
  const relay12 = new Relay({
    root: ctx.root, here: ctx.here, line: '0.12', token: TOKEN, listen: ctx.port(60), ports: ports12, control: runtime12.url,
  });
  ctx.cleanup(() => relay12.cleanup());
  await h.check('the 0.12 Worker (it starts the servers): echo, chat between two pages, a command that streams', async () => {
    await runtime12.start();
    await relay12.start();
    const url12 = `${relay12.url}/?token=${TOKEN}&sandbox=b12`;
    const open12 = async () => {
      const page = await browser.newPage();
      assertEqual((await page.goto(url12)).status(), 200, 'GET /');
      await page.locator('#echo-status[data-state="open"]').waitFor({ timeout: 20_000 });
      await page.locator('#cmd-status[data-state="open"]').waitFor({ timeout: 20_000 });
      return page;
    };
    const p1 = await open12();
    const p2 = await open12();
    try {
      await p1.fill('#echo-input', 'hello 0.12');
      await p1.press('#echo-input', 'Enter');
      await p1.locator('#echo-log', { hasText: '< hello 0.12' }).waitFor();
      const r12 = `b12-${process.pid}`;
      for (const [page, who] of [[p1, 'ann'], [p2, 'ben']]) {
        await page.fill('#chat-name', who);
        await page.fill('#chat-room', r12);
        await page.click('#chat-join');
        await page.locator('#chat-status[data-state="open"]').waitFor();
      }
      await until(5_000, async () => (await text(p1, '#chat-count')) === '2', 'count 2');
      await p2.fill('#chat-input', 'hi ann');
      await p2.press('#chat-input', 'Enter');
      await p1.locator('#chat-log', { hasText: 'ben: hi ann' }).waitFor();
      await p1.fill('#cmd-input', 'for i in 1 2 3; do echo tock $i; sleep 0.4; done; exit 5');
      await p1.click('#cmd-run');
      await p1.locator('#cmd-log', { hasText: 'tock 1' }).waitFor();
      assert(!(await text(p1, '#cmd-log')).includes('tock 3'), 'all output at once: not streamed');
      await until(5_000, async () => (await text(p1, '#cmd-exit')) === '5', 'exit code 5');
      assertEqual(runtime12.execs.map((e) => e.program).sort(), ['ws-broadcast', 'ws-echo', 'ws-rpc'], 'servers the Worker started');
    } finally {
      await p1.close();
      await p2.close();
    }
  }, { timeout: 60_000 });

  await h.check('browser, relay and tree stop', async () => {
    await browser.close();
    browser = null;
    await relay12.stop();
    await relay.stop();
    assertEqual((await tree.stop(10_000)).code, 0, 's6-svscan exit');
  });
}
