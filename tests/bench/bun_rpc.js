// Peer for run-rooms: Bun RPC in ws-rpc's `type` dialect, minimal.
//   {"type":"ping","id":N} -> {"type":"pong","id":N,"timestamp":MS}
//   {"type":"exec","id":N,"command":C} -> /bin/sh -c C (Bun.spawn), then
//   {"type":"result","id":N,"stdout","stderr","exitCode","signal","timedOut","truncated","durationMs"}
//   bun bun_rpc.js [PORT]   (or PORT=N; HOST defaults to 127.0.0.1). Readiness: "\n" on NOTIFY_FD.
const fs = require("node:fs");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.argv[2] ?? process.env.PORT ?? 0);

async function exec(ws, id, command) {
  const t0 = performance.now();
  const p = Bun.spawn(["/bin/sh", "-c", command], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  ws.send(JSON.stringify({
    type: "result", id, stdout, stderr, exitCode, signal: p.signalCode ?? null, timedOut: false,
    truncated: false, durationMs: Math.round(performance.now() - t0) }));
}

const server = Bun.serve({
  hostname: host,
  port,
  fetch(req, srv) {
    if (srv.upgrade(req)) return undefined;
    return new Response("bun rpc\n");
  },
  websocket: {
    perMessageDeflate: false,
    maxPayloadLength: 1024 * 1024,
    message(ws, message) {
      let m;
      try { m = JSON.parse(message); } catch { ws.send('{"type":"error","error":"Invalid JSON"}'); return; }
      if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", id: m.id, timestamp: Date.now() }));
      else if (m.type === "exec" && typeof m.command === "string") exec(ws, m.id, m.command);
      else ws.send(JSON.stringify({ type: "error", id: m.id, error: "Unknown type" }));
    },
  },
});

console.log(`listening ${server.hostname}:${server.port}`);
const notifyFd = Number(process.env.NOTIFY_FD);
if (Number.isInteger(notifyFd) && notifyFd > 2) {
  fs.writeSync(notifyFd, "\n");
  fs.closeSync(notifyFd);
}
