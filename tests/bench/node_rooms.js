// Peer for run-rooms: Node `ws` rooms (a Set per room, a send loop), the
// shape of ws-broadcast. See bun_rooms.js for the protocol.
//   node node_rooms.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1)
"use strict";
const fs = require("node:fs");
const { WebSocketServer } = require("ws");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const rooms = new Map(); // room -> { members: Set, seq }

function broadcast(r, s) {
  for (const m of r.members) m.send(s);
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 256 * 1024 });

wss.on("connection", (ws, req) => {
  const u = new URL(req.url, "http://x");
  const room = u.searchParams.get("id") || "default";
  const user = u.searchParams.get("user") || `u-${Math.random().toString(16).slice(2, 10)}`;
  let r = rooms.get(room);
  if (!r) rooms.set(room, (r = { members: new Set(), seq: 0 }));
  r.members.add(ws);
  ws.send(JSON.stringify({ type: "welcome", id: user, room, count: r.members.size, history: [] }));
  broadcast(r, JSON.stringify({ type: "join", id: user, room, count: r.members.size }));
  ws.on("message", (data, isBinary) => {
    if (isBinary) return;
    let text = data.toString();
    if (text.startsWith("{")) {
      try { text = String(JSON.parse(text).text); } catch { ws.send('{"type":"error","error":"Invalid message format"}'); return; }
    }
    broadcast(r, JSON.stringify({ type: "message", from: user, room, text, seq: ++r.seq, ts: Date.now() }));
  });
  ws.on("close", () => {
    r.members.delete(ws);
    broadcast(r, JSON.stringify({ type: "leave", id: user, room, count: r.members.size }));
  });
  ws.on("error", () => {});
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
wss.on("error", (err) => { console.error(`node_rooms: ${err.message}`); process.exit(111); });
