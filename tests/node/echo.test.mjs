// ws-echo against a real client, the npm `ws` package.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { startServer, within } from './lib/server.mjs';
import { Client } from './lib/client.mjs';

const MiB = 1024 * 1024;

/** Runs FN with a fresh client on SERVER at PATH, then closes it (1000). */
async function withClient(server, fn, path = '/', options = {}) {
  const client = await Client.connect(server.url(path), options);
  try {
    const result = await fn(client);
    assert.equal((await client.close(1000)).code, 1000);
    return result;
  } finally {
    client.terminate();
  }
}

describe('ws-echo', { timeout: 60_000 }, () => {
  let server;
  before(async () => {
    server = await startServer('echo');
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('a text message comes back as the same text', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      const msg = await c.roundTrip('hello, échø ✓');
      assert.equal(msg.isBinary, false);
      assert.equal(msg.data.toString('utf8'), 'hello, échø ✓');
    }));

  test('a binary message comes back as the same bytes, as binary', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      const bytes = Buffer.from([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff]);
      const msg = await c.roundTrip(bytes);
      assert.equal(msg.isBinary, true);
      assert.deepEqual(msg.data, bytes);
    }));

  test('empty text and empty binary messages come back empty, with their type', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      const text = await c.roundTrip('');
      assert.equal(text.isBinary, false);
      assert.equal(text.data.length, 0);
      const binary = await c.roundTrip(Buffer.alloc(0));
      assert.equal(binary.isBinary, true);
      assert.equal(binary.data.length, 0);
    }));

  test('a 1 MiB message (the default --max-message) comes back intact', { timeout: 20_000 }, () =>
    withClient(server, async (c) => {
      const bytes = randomBytes(MiB);
      const msg = await c.roundTrip(bytes, 15_000);
      assert.equal(msg.isBinary, true);
      assert.equal(msg.data.length, MiB);
      assert.ok(msg.data.equals(bytes), '1 MiB echo differs from what was sent');
    }));

  test('100 pipelined messages come back complete and in order', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      const sent = Array.from({ length: 100 }, (_, i) => `message ${i} ${'x'.repeat(i * 37)}`);
      for (const m of sent) c.send(m);
      const got = [];
      for (let i = 0; i < sent.length; i++) got.push((await c.next()).data.toString());
      assert.deepEqual(got, sent);
    }));

  test('a ping is answered by a pong with the same payload', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      const pong = once(c.ws, 'pong');
      c.ws.ping(Buffer.from('are you there'));
      const [payload] = await within(5_000, pong, 'pong');
      assert.equal(payload.toString(), 'are you there');
      // The connection still echoes afterwards.
      assert.equal((await c.roundTrip('after ping')).data.toString(), 'after ping');
    }));

  test('a client close with 4000 "bye" is answered with code 4000', { timeout: 10_000 }, async () => {
    const c = await Client.connect(server.url());
    assert.equal((await c.roundTrip('before close')).data.toString(), 'before close');
    const { code } = await c.close(4000, 'bye');
    assert.equal(code, 4000);
  });

  test('an upgrade on a path with a query string echoes', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      assert.equal((await c.roundTrip('via /ws/echo?id=abc')).data.toString(), 'via /ws/echo?id=abc');
    }, '/ws/echo?id=abc'));

  test('a client offering subprotocols gets one of them and echoes', { timeout: 10_000 }, () =>
    withClient(server, async (c) => {
      assert.ok(['echo.v1', 'chat'].includes(c.ws.protocol), `selected ${JSON.stringify(c.ws.protocol)}`);
      assert.equal((await c.roundTrip('with protocol')).data.toString(), 'with protocol');
    }, '/', { protocols: ['echo.v1', 'chat'] }));

  test('200 concurrent clients each get their own messages back', { timeout: 30_000 }, async () => {
    const clients = await Promise.all(
      Array.from({ length: 200 }, () => Client.connect(server.url('/ws/echo'), { timeoutMs: 15_000 })),
    );
    try {
      const replies = await Promise.all(clients.map((c, i) => c.roundTrip(`client ${i}`, 15_000)));
      replies.forEach((msg, i) => assert.equal(msg.data.toString(), `client ${i}`));
      const closes = await Promise.all(clients.map((c) => c.close(1000, '', 15_000)));
      for (const { code } of closes) assert.equal(code, 1000);
    } finally {
      for (const c of clients) c.terminate();
    }
  });
});

describe('ws-echo --max-message 1k', { timeout: 30_000 }, () => {
  let server;
  before(async () => {
    server = await startServer('echo', ['--max-message', '1k']);
  });
  after(async () => {
    if (server) await server.stop();
  });

  test('a 2 KiB message closes that client with 1009; another client keeps working', { timeout: 15_000 }, async () => {
    const big = await Client.connect(server.url());
    const other = await Client.connect(server.url());
    try {
      assert.equal((await other.roundTrip('before')).data.toString(), 'before');
      const limit = Buffer.alloc(1024, 0x61);
      assert.ok((await big.roundTrip(limit)).data.equals(limit), 'a message of exactly 1k is allowed');

      big.send(Buffer.alloc(2048, 0x62), { binary: true });
      const { code } = await big.waitClosed();
      assert.equal(code, 1009);

      assert.equal((await other.roundTrip('after')).data.toString(), 'after');
    } finally {
      big.terminate();
      other.terminate();
    }
  });
});

describe('ws-echo on SIGTERM', { timeout: 30_000 }, () => {
  test('clients get close 1001 and the process exits 0', { timeout: 20_000 }, async () => {
    const server = await startServer('echo');
    const clients = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await Client.connect(server.url(`/ws/echo?id=drain${i}`));
        clients.push(c);
        assert.equal((await c.roundTrip(`hi ${i}`)).data.toString(), `hi ${i}`);
      }
      const exit = server.signal('SIGTERM', 15_000);
      const closes = await Promise.all(clients.map((c) => c.waitClosed(10_000)));
      for (const { code } of closes) assert.equal(code, 1001);
      assert.deepEqual(await exit, { code: 0, signal: null });
    } finally {
      for (const c of clients) c.terminate();
      await server.stop().catch(() => {});
    }
  });
});
