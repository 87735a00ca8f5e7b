// A WebSocket test client (npm `ws`) whose every wait is bounded.

import WebSocket from 'ws';
import { within } from './server.mjs';

const DEFAULT_MS = 5_000;

export class Client {
  /** Connects to URL; resolves once open. PROTOCOLS: subprotocols to offer. */
  static async connect(url, { protocols = [], timeoutMs = DEFAULT_MS, ...options } = {}) {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: timeoutMs, ...options });
    const client = new Client(ws);
    const opened = new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} instead of 101`)));
    });
    try {
      await within(timeoutMs, opened, `connect ${url}`);
    } catch (err) {
      ws.terminate();
      throw err;
    }
    return client;
  }

  constructor(ws) {
    this.ws = ws;
    this.inbox = [];
    this.waiters = [];
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary };
      const waiter = this.waiters.shift();
      if (waiter) waiter(msg);
      else this.inbox.push(msg);
    });
    ws.on('error', () => {}); // surfaces as 'close'; tests assert on codes
    /** Settles with {code, reason} when the connection has closed. */
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  /** The next message as {data: Buffer, isBinary}. */
  next(timeoutMs = DEFAULT_MS) {
    if (this.inbox.length) return Promise.resolve(this.inbox.shift());
    return within(timeoutMs, new Promise((resolve) => this.waiters.push(resolve)), 'next message');
  }

  send(data, options = {}) {
    this.ws.send(data, options);
  }

  /** Sends DATA and resolves with the next message. */
  async roundTrip(data, timeoutMs = DEFAULT_MS) {
    this.send(data, { binary: typeof data !== 'string' });
    return this.next(timeoutMs);
  }

  /** Closes with CODE and REASON; resolves with the {code, reason} received. */
  close(code, reason, timeoutMs = DEFAULT_MS) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, reason);
    return this.waitClosed(timeoutMs);
  }

  waitClosed(timeoutMs = DEFAULT_MS) {
    return within(timeoutMs, this.closed, 'close').catch((err) => {
      this.ws.terminate();
      throw err;
    });
  }

  /** Drops the TCP connection without a close handshake. */
  terminate() {
    this.ws.terminate();
  }
}
