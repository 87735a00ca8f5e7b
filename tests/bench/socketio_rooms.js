// Peer for run-redis: Socket.IO 4 with @socket.io/redis-adapter on one Redis,
// the shape of ws-broadcast on Redis: a socket joins the room of its
// ?room=, a "message" event is emitted to the whole room (the sender too)
// as {type, from, room, text, ts}, through Redis to every node.
//   REDIS_URL=redis://127.0.0.1:6379 node socketio_rooms.js PORT
"use strict";
const fs = require("node:fs");
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6379";
if (!/^redis:\/\/(127\.|\[::1\]|localhost)/.test(redisUrl)) {
  console.error("socketio_rooms: REDIS_URL must be on loopback");
  process.exit(100);
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  pub.on("error", (e) => console.error(`redis pub: ${e.message}`));
  sub.on("error", (e) => console.error(`redis sub: ${e.message}`));
  await Promise.all([pub.connect(), sub.connect()]);
  const srv = http.createServer();
  const io = new Server(srv, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    perMessageDeflate: false,
    maxHttpBufferSize: 256 * 1024,
  });
  let n = 0;
  io.on("connection", (socket) => {
    const room = String(socket.handshake.query.room || "default");
    const user = `u${++n}`;
    socket.join(room);
    socket.on("message", (text) => {
      io.to(room).emit("message", { type: "message", from: user, room, text: String(text), ts: Date.now() });
    });
  });
  srv.listen(port, host, () => {
    const a = srv.address();
    console.log(`listening ${a.address}:${a.port}`);
    const notifyFd = Number(process.env.NOTIFY_FD);
    if (Number.isInteger(notifyFd) && notifyFd > 2) {
      fs.writeSync(notifyFd, "\n");
      fs.closeSync(notifyFd);
    }
  });
  srv.on("error", (err) => { console.error(`socketio_rooms: ${err.message}`); process.exit(111); });
}

main().catch((e) => { console.error(`socketio_rooms: ${e.message}`); process.exit(111); });
