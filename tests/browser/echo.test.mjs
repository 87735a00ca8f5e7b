// ws-echo from a real browser: Debian's Chromium driven by playwright-core.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../node/lib/server.mjs';
import { launch } from './chromium.mjs';


describe('ws-echo from Chromium', { timeout: 120_000 }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer('echo');
    browser = await launch();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
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
