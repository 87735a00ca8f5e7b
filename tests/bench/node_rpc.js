// Peer for run-rooms: Node `ws` + child_process.spawn RPC in ws-rpc's `type`
// dialect, minimal (see bun_rpc.js for the messages).
//   node node_rpc.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1). Readiness: "\n" on NOTIFY_FD.
"use strict";
const fs = require("node:fs");
const { spawn } = require("node:child_process");
const { WebSocketServer } = require("ws");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

function exec(ws, id, command) {
  const t0 = performance.now();
  const p = spawn("/bin/sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"] });
  const out = [], err = [];
  p.stdout.on("data", (d) => out.push(d));
  p.stderr.on("data", (d) => err.push(d));
  p.on("error", () => {});
  p.on("close", (exitCode, signal) => {
    ws.send(JSON.stringify({
      type: "result", id, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(),
      exitCode, signal, timedOut: false, truncated: false, durationMs: Math.round(performance.now() - t0) }));
  });
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 1024 * 1024 });
wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    let m;
    try { m = JSON.parse(data.toString()); } catch { ws.send('{"type":"error","error":"Invalid JSON"}'); return; }
    if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", id: m.id, timestamp: Date.now() }));
    else if (m.type === "exec" && typeof m.command === "string") exec(ws, m.id, m.command);
    else ws.send(JSON.stringify({ type: "error", id: m.id, error: "Unknown type" }));
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
wss.on("error", (err) => { console.error(`node_rpc: ${err.message}`); process.exit(111); });
