// Peer for the benchmarks: a Node echo server on the npm `ws` package
// (tests/node_modules).
//   node node_echo.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1)
// Echoes text as text and binary as binary, compression off. When it is
// listening it prints "listening HOST:PORT" and, if NOTIFY_FD is set, writes
// "\n" to that fd and closes it (the readiness protocol ws-echo's
// --notify-fd uses, so the bench times every server the same way).
"use strict";
const fs = require("node:fs");
const { WebSocketServer } = require("ws");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`node_echo: bad port ${process.argv[2] ?? process.env.PORT}`);
  process.exit(100);
}

const wss = new WebSocketServer({
  host,
  port,
  perMessageDeflate: false,
  maxPayload: 16 * 1024 * 1024,
});

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on("error", () => {}); // a peer's protocol error closes it; nothing to log per connection
});

wss.on("listening", () => {
  const a = wss.address();
  console.log(`listening ${a.address}:${a.port}`);
  const notifyFd = Number(process.env.NOTIFY_FD);
  if (Number.isInteger(notifyFd) && notifyFd > 2) {
    fs.writeSync(notifyFd, "\n");
    fs.closeSync(notifyFd);
  }
});

wss.on("error", (err) => {
  console.error(`node_echo: ${err.message}`);
  process.exit(111);
});
