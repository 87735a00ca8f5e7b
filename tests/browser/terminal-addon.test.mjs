// The Sandbox SDK's own xterm addon (`@cloudflare/sandbox/xterm`, both
// generations: 0.12.10 and 0.13.0-next) against ws-rpc's terminal endpoint,
// unmodified, in Node: `ws` as the WebSocket, a minimal stand-in for the
// xterm Terminal it drives (write/clear/focus/onData/onResize/cols/rows).
// What the addon writes to its terminal is what a browser's xterm would
// show; its state changes and errors are what a page would see.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer } from '../node/lib/server.mjs';

globalThis.WebSocket = WebSocket;

class FakeTerminal {
  constructor(cols, rows) {
    this.cols = cols; this.rows = rows;
    this.out = Buffer.alloc(0); this.clears = 0;
    this.dataCb = null; this.resizeCb = null;
  }
  write(bytes) { this.out = Buffer.concat([this.out, Buffer.from(bytes)]); }
  clear() { this.clears++; this.out = Buffer.alloc(0); }
  focus() {}
  onData(cb) { this.dataCb = cb; return { dispose: () => { this.dataCb = null; } }; }
  onResize(cb) { this.resizeCb = cb; return { dispose: () => { this.resizeCb = null; } }; }
  type(text) { this.dataCb?.(text); }
  resize(cols, rows) { this.cols = cols; this.rows = rows; this.resizeCb?.({ cols, rows }); }
  text() { return this.out.toString('utf8'); }
}

async function until(pred, what, ms = 15_000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: timed out`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const [version, pkg] of [['0.12.10', 'sdk-addon-0.12'], ['0.13.0-next', 'sdk-addon-0.13']]) {
  describe(`the SDK's xterm addon ${version} against ws-rpc`, { timeout: 60_000 }, () => {
    let server;
    let SandboxAddon;

    before(async () => {
      ({ SandboxAddon } = await import(`${pkg}/xterm`));
      server = await startServer('rpc', ['--no-auth', '--rate-limit', '0']);
      globalThis.location = { protocol: 'http:', host: `127.0.0.1:${server.port}` };
    });

    after(async () => {
      await server?.stop();
    });

    test('connects, types, resizes, reconnects to the same terminal, sees its exit', async () => {
      const states = [];
      const errors = [];
      let terminalId = '';
      const addon = new SandboxAddon({
        // 0.12 passes sessionId, 0.13 terminalId and its cursor: ?session= names the
        // terminal (started on first use, attached after), ?id= is ws-rpc's own id
        getWebSocketUrl: ({ origin, sessionId, terminalId: tid, cursor }) => {
          const u = new URL('/ws/terminal', origin);
          const name = tid || sessionId;
          if (/^p[0-9]+$/.test(name)) u.searchParams.set('id', name);
          else u.searchParams.set('session', name);
          if (cursor) u.searchParams.set('cursor', cursor);
          return u.href;
        },
        onStateChange: (state, err) => { states.push(state); if (err) errors.push(err.message); },
        reconnect: true,
      });
      const term = new FakeTerminal(90, 20);
      addon.activate(term);
      const session = `addon-${version}`;
      addon.connect({ sandboxId: 'default', sessionId: session, terminalId: session });
      await until(() => addon.state === 'connected', 'connected');

      term.type("echo f''rom-addon; stty size\r");
      await until(() => term.text().includes('from-addon\r\n20 90\r\n'), 'echo and the size sent after ready');
      term.resize(100, 30);
      term.type('stty size\r');
      await until(() => term.text().includes('30 100\r\n'), 'the resized terminal');

      // the connection drops: the addon reconnects by itself (0.13 with its cursor,
      // 0.12 clearing and taking the replay), and every byte shows exactly once
      term.type("echo m''ark-$((7*6))\r");
      await until(() => term.text().includes('mark-42\r\n'), 'the marker');
      addon.socket.terminate();
      await until(() => addon.state !== 'connected', 'noticed the drop');
      await until(() => addon.state === 'connected', 'reconnected by itself', 20_000);
      term.type('echo after-$((2+2))\r');
      await until(() => term.text().includes('after-4\r\n'), 'typing after the reconnect');
      assert.equal(term.text().split('mark-42\r\n').length - 1, 1, 'the marker once: no byte replayed twice');

      // which terminal it is, from ws-rpc's own list (the addon reconnects by the id it was given)
      const list = await new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
        ws.on('open', () => ws.send(JSON.stringify({ type: 'list', id: 1 })));
        ws.on('message', (m) => { resolve(JSON.parse(m.toString())); ws.close(); });
        ws.on('error', reject);
      });
      assert.equal(list.processes.length, 1, 'the reconnect reached the same terminal');
      assert.equal(list.processes[0].name, session);
      terminalId = list.processes[0].id;
      addon.connect({ sandboxId: 'default', sessionId: terminalId, terminalId });
      await until(() => addon.state === 'connected' && term.text().includes('30 100'), 'reattached with replay');
      term.type('echo again-$((1+1))\r');
      await until(() => term.text().includes('again-2\r\n'), 'typing after the reattach');

      term.type('exit 5\r');
      await until(() => errors.some((e) => e.includes('exited with code 5')), 'the exit reported');
      assert.deepEqual(errors.filter((e) => !e.includes('exited with code 5') && e !== 'WebSocket error'), []);
      addon.dispose();
    });
  });
}
