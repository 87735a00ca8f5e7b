// Peer for run-rooms: Bun rooms with server.publish, the shape of ws-broadcast.
//   bun bun_rooms.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1)
// Connect to /?id=ROOM&user=NAME: the client gets a welcome, every member a
// join; a text message goes to every member, the sender included, as
// {"type":"message","from","room","text","seq","ts"} (one server.publish).
// No persistence, no rate limit. Readiness: "\n" on NOTIFY_FD.
const fs = require("node:fs");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const rooms = new Map(); // room -> { count, seq }

const server = Bun.serve({
  hostname: host,
  port,
  fetch(req, srv) {
    const u = new URL(req.url);
    const room = u.searchParams.get("id") || "default";
    const user = u.searchParams.get("user") || `u-${Math.random().toString(16).slice(2, 10)}`;
    if (srv.upgrade(req, { data: { room, user } })) return undefined;
    return new Response("bun rooms\n");
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 256 * 1024,
    open(ws) {
      const { room, user } = ws.data;
      let r = rooms.get(room);
      if (!r) rooms.set(room, (r = { count: 0, seq: 0 }));
      r.count++;
      ws.subscribe(room);
      ws.send(JSON.stringify({ type: "welcome", id: user, room, count: r.count, history: [] }));
      server.publish(room, JSON.stringify({ type: "join", id: user, room, count: r.count }));
    },
    message(ws, message) {
      if (typeof message !== "string") return;
      const { room, user } = ws.data;
      const r = rooms.get(room);
      let text = message;
      if (text.startsWith("{")) {
        try { text = String(JSON.parse(text).text); } catch { ws.send('{"type":"error","error":"Invalid message format"}'); return; }
      }
      server.publish(room, JSON.stringify({ type: "message", from: user, room, text, seq: ++r.seq, ts: Date.now() }));
    },
    close(ws) {
      const { room, user } = ws.data;
      const r = rooms.get(room);
      r.count--;
      server.publish(room, JSON.stringify({ type: "leave", id: user, room, count: r.count }));
    },
  },
});

console.log(`listening ${server.hostname}:${server.port}`);
const notifyFd = Number(process.env.NOTIFY_FD);
if (Number.isInteger(notifyFd) && notifyFd > 2) {
  fs.writeSync(notifyFd, "\n");
  fs.closeSync(notifyFd);
}
