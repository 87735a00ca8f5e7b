// The demo page's terminal tab in Debian's Chromium (playwright-core): the
// page served by ws-rpc, xterm.js bundled into ws-rpc from the pinned npm
// package, the shell on a pty behind ws-rpc's terminal endpoint. Typing,
// resizing the page, a full-screen program, and a reattach after the
// connection is dropped mid-program.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../node/lib/server.mjs';
import { launch } from './chromium.mjs';


// The xterm screen as text, one string per visible row.
function screen(page) {
  return page.evaluate(() => {
    const x = window.termDemo.xterm;
    const b = x.buffer.active;
    const rows = [];
    for (let i = 0; i < x.rows; i++) rows.push(b.getLine(b.viewportY + i)?.translateToString(true) ?? '');
    return rows;
  });
}

// Every line of the scrollback and screen (for output that scrolled).
function allLines(page) {
  return page.evaluate(() => {
    const b = window.termDemo.xterm.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    return out;
  });
}

async function waitForLine(page, pred, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = await allLines(page);
    if (lines.some(pred)) return lines;
    if (Date.now() > deadline) throw new Error(`${what}: not on screen:\n${lines.filter(Boolean).slice(-15).join('\n')}`);
    await page.waitForTimeout(50);
  }
}

async function type(page, text) {
  await page.evaluate(() => window.termDemo.xterm.focus());
  await page.keyboard.type(text);
}

describe('the demo page terminal in Chromium', { timeout: 180_000 }, () => {
  let server;
  let browser;
  let page;

  before(async () => {
    server = await startServer('rpc', ['--no-auth', '--rate-limit', '0', '--exec-timeout-max', '600']);
    browser = await launch({ viewport: { width: 1200, height: 900 } });
    page = browser.page;
    const response = await page.goto(server.httpUrl('/'));
    assert.equal(response.status(), 200);
    await page.click('#term-open');
    await page.waitForFunction(() => window.termDemo?.id && document.querySelector('#term-status').dataset.state === 'open');
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('xterm.js is served by ws-rpc itself, no CDN', async () => {
    const r = await page.request.get(server.httpUrl('/xterm/xterm.js'));
    assert.equal(r.status(), 200);
    assert.match(r.headers()['content-type'], /javascript/);
    assert.ok((await r.body()).length > 100_000, 'the real xterm.js, not a stub');
    assert.equal(await page.evaluate(() => window.XTERM_MISSING === undefined && typeof Terminal), 'function');
  });

  test('typing echo hi shows hi', async () => {
    await type(page, 'echo h""i\n');
    await waitForLine(page, (l) => l.trimEnd() === 'hi', 'the line "hi"');
  });

  test('resizing the page resizes the terminal: stty size says so', async () => {
    const before = await page.evaluate(() => [window.termDemo.xterm.rows, window.termDemo.xterm.cols]);
    await page.setViewportSize({ width: 700, height: 900 });
    await page.waitForFunction((b) => window.termDemo.xterm.cols !== b[1], before);
    const [rows, cols] = await page.evaluate(() => [window.termDemo.xterm.rows, window.termDemo.xterm.cols]);
    assert.ok(cols < before[1], `narrower: ${cols} < ${before[1]}`);
    await type(page, 'clear; stty size\n');
    await waitForLine(page, (l) => l.trim() === `${rows} ${cols}`, `stty size ${rows} ${cols}`);
  });

  test('a full-screen program (vi) draws', async () => {
    await type(page, 'clear; vi /tmp/term-test-$$.txt\n');
    await page.waitForFunction(() => {
      const x = window.termDemo.xterm;
      const b = x.buffer.active;
      let tildes = 0;
      for (let i = 0; i < x.rows; i++) if (b.getLine(b.viewportY + i)?.translateToString(true).startsWith('~')) tildes++;
      return tildes >= x.rows / 2;
    });
    await type(page, 'iwritten in vi');
    await waitForLine(page, (l) => l.startsWith('written in vi'), 'the typed text in vi');
  });

  test('the connection dropped mid-program: a reattach replays and redraws', async () => {
    const id = await page.evaluate(() => window.termDemo.id);
    // as a reloaded page would: a blank screen, the ring from 0, then a size nudge
    await page.evaluate(() => window.termDemo.reattach());
    await page.waitForFunction(() => document.querySelector('#term-status').dataset.state === 'open');
    assert.equal(await page.evaluate(() => window.termDemo.id), id, 'the same terminal');
    await page.waitForFunction(() => {
      const x = window.termDemo.xterm;
      const b = x.buffer.active;
      let tildes = 0, text = false;
      for (let i = 0; i < x.rows; i++) {
        const l = b.getLine(b.viewportY + i)?.translateToString(true) ?? '';
        if (l.startsWith('~')) tildes++;
        if (l.startsWith('written in vi')) text = true;
      }
      return text && tildes >= x.rows / 2;
    });
    // and it still takes keys: leave vi, and the shell answers
    await page.keyboard.press('Escape');
    await type(page, ':q!\n');
    // keys typed before vi has gone would be vi's: wait for its screen to leave
    await page.waitForFunction(() => {
      const x = window.termDemo.xterm;
      const b = x.buffer.active;
      for (let i = 0; i < x.rows; i++) if (b.getLine(b.viewportY + i)?.translateToString(true).startsWith('~')) return false;
      return b.type === 'normal';
    });
    await type(page, 'echo back-$((6*7))\n');
    await waitForLine(page, (l) => l.trimEnd() === 'back-42', 'the shell after vi');
  });

  test('exit ends the terminal and the page says so', async () => {
    await type(page, 'exit 3\n');
    await waitForLine(page, (l) => l.includes('[exited with code 3]'), 'the exit line');
    await page.waitForFunction(() => document.querySelector('#term-status').dataset.state === 'closed');
  });
});
