// Peer for the benchmarks: a Bun WebSocket echo server.
//   bun bun_echo.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1)
// Echoes text as text and binary as binary, compression off. When it is
// listening it prints "listening HOST:PORT" and, if NOTIFY_FD is set, writes
// "\n" to that fd and closes it (the readiness protocol ws-echo's
// --notify-fd uses, so the bench times every server the same way).
const fs = require("node:fs");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`bun_echo: bad port ${process.argv[2] ?? process.env.PORT}`);
  process.exit(100);
}

const server = Bun.serve({
  hostname: host,
  port,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("bun echo\n");
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 16 * 1024 * 1024,
    // ws.send() keeps a string a text frame and a Buffer a binary frame
    message(ws, message) {
      ws.send(message);
    },
  },
});

console.log(`listening ${server.hostname}:${server.port}`);
const notifyFd = Number(process.env.NOTIFY_FD);
if (Number.isInteger(notifyFd) && notifyFd > 2) {
  fs.writeSync(notifyFd, "\n");
  fs.closeSync(notifyFd);
}
