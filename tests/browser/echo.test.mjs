// ws-echo from a real browser: Debian's Chromium driven by playwright-core.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../node/lib/server.mjs';

const CHROMIUM = '/usr/bin/chromium';
// Headless Chromium that stays off the network: the flags known to work here.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('ws-echo from Chromium', { timeout: 120_000 }, () => {
  let server;
  let userDataDir;
  let context;
  let page;

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (./dev test does)`);
    server = await startServer('echo');
    userDataDir = await mkdtemp(path.join(tmpdir(), 'ws-browser-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
  });

  after(async () => {
    await context?.close();
    if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
    await server?.stop();
  });

  test('GET / loads with status 200', { timeout: 30_000 }, async () => {
    const response = await page.goto(server.httpUrl('/'));
    assert.equal(response.status(), 200);
  });

  test('the page round-trips text and an ArrayBuffer, then closes with 1000', { timeout: 30_000 }, async () => {
    const response = await page.goto(server.httpUrl('/'));
    assert.equal(response.status(), 200);

    const result = await page.evaluate(async ({ url, timeoutMs }) => {
      const ws = new WebSocket(url);
      ws.binaryType = 'arraybuffer';
      const inbox = [];
      const waiters = [];
      ws.onmessage = (e) => (waiters.length ? waiters.shift()(e.data) : inbox.push(e.data));
      const closed = new Promise((resolve) => {
        ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
      });
      const bounded = (promise, what) =>
        Promise.race([
          promise,
          new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timed out`)), timeoutMs)),
        ]);
      const next = (what) =>
        bounded(inbox.length ? Promise.resolve(inbox.shift()) : new Promise((r) => waiters.push(r)), what);

      await bounded(
        new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = () => reject(new Error('WebSocket error before open'));
        }),
        'open',
      );

      ws.send('hello from chromium ✓');
      const text = await next('text echo');

      const sent = new Uint8Array([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
      ws.send(sent.buffer);
      const binary = await next('binary echo');

      ws.close(1000, 'done');
      const close = await bounded(closed, 'close');
      return {
        text,
        binaryIsArrayBuffer: binary instanceof ArrayBuffer,
        binary: binary instanceof ArrayBuffer ? Array.from(new Uint8Array(binary)) : String(binary),
        close,
      };
    }, { url: server.url('/ws/echo?id=b'), timeoutMs: 10_000 });

    assert.equal(result.text, 'hello from chromium ✓');
    assert.equal(result.binaryIsArrayBuffer, true, 'binary echo arrives as an ArrayBuffer');
    assert.deepEqual(result.binary, [0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
    assert.equal(result.close.code, 1000);
    assert.equal(result.close.wasClean, true);
  });
});
