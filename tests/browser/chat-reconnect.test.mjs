// The demo page's chat reconnect loop in Chromium (playwright-core): after
// its server goes away it reconnects with since + epoch; the same history
// (another server on the same database) is recovered in order, a fresh one
// (a new database: a sandbox that slept) is told recovered:false and the
// page reloads its view instead of trusting a gap.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { startServer, within } from '../node/lib/server.mjs';
import { launch } from './chromium.mjs';


/** Sends texts into ROOM on SERVER from a Node `ws` client; resolves with their seqs. */
async function say(server, room, texts) {
  const ws = new WebSocket(server.url(`/?id=${room}&user=node`));
  const seqs = [];
  const done = new Promise((resolve, reject) => {
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === 'welcome') for (const t of texts) ws.send(JSON.stringify({ type: 'message', text: t }));
      if (m.type === 'message' && texts.includes(m.text)) {
        seqs.push(m.seq);
        if (seqs.length === texts.length) resolve();
      }
    });
    ws.on('error', reject);
  });
  await within(10_000, done, 'node client messages');
  ws.close();
  return seqs;
}

describe('the demo chat reconnects with since and epoch', { timeout: 120_000 }, () => {
  let dir;
  let browser;
  let page;
  const servers = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ws-chat-'));
    browser = await launch();
    page = browser.page;
  });

  after(async () => {
    await browser?.close();
    for (const s of servers) await s.stop().catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (db) => {
    const s = await startServer('broadcast', ['--engine', `sqlite:${path.join(dir, db)}`, '--rate-limit', '0']);
    servers.push(s);
    return s;
  };
  const log = () => page.locator('#chat-log').textContent();

  test('same history: recovered in order; fresh history: reloaded', { timeout: 90_000 }, async () => {
    const a = await start('one.db');
    const b = await start('one.db'); // a second server on the same database: the same epoch
    const fresh = await start('fresh.db');
    assert.equal((await page.goto(a.httpUrl('/'))).status(), 200);
    await page.fill('#url-broadcast', a.url('/'));
    await page.fill('#chat-room', 'lobby');
    await page.click('#chat-join');
    await page.waitForFunction(() => document.getElementById('chat-status').dataset.state === 'open');
    await say(a, 'lobby', ['one', 'two']);
    await page.waitForFunction(() => document.getElementById('chat-seq').textContent === '2');

    // the page's server goes away; what is said meanwhile must come back on reconnect
    await page.fill('#url-broadcast', b.url('/'));
    await a.stop();
    servers.splice(servers.indexOf(a), 1);
    await page.waitForFunction(() => document.getElementById('chat-status').dataset.state === 'closed');
    await say(b, 'lobby', ['three', 'four']);
    await page.waitForFunction(() => document.getElementById('chat-seq').textContent === '4', null, { timeout: 30_000 });
    const text = await log();
    assert.ok(!text.includes('reloaded'), text);
    const order = ['one', 'two', 'three', 'four'].map((t) => text.indexOf(`: ${t}\n`));
    assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1])), `in order once: ${text}`);

    // now the history is gone (a fresh database) and the new room already
    // passed the page's since: only the epoch tells them apart
    await say(fresh, 'lobby', ['f1', 'f2', 'f3', 'f4', 'f5']);
    await page.fill('#url-broadcast', fresh.url('/'));
    await b.stop();
    servers.splice(servers.indexOf(b), 1);
    await page.waitForFunction(() => document.getElementById('chat-log').textContent.includes('reloaded'), null, { timeout: 30_000 });
    await page.waitForFunction(() => document.getElementById('chat-seq').textContent === '5');
    assert.ok(!(await log()).includes(': one\n'), 'the old history is gone from the view');
    await say(fresh, 'lobby', ['new']);
    await page.waitForFunction(() => document.getElementById('chat-seq').textContent === '6');
  });
});
