// Table for run-redis: reads its JSON lines, writes the results file and
// prints markdown: deliveries/s (best window), the servers' CPU while
// measuring, paced latency, and ws-broadcast/Socket.IO at equal nodes.
//   node report_redis.js RESULTS.jsonl OUT.json META_JSON
"use strict";
const fs = require("node:fs");

const [, , input, output, metaText] = process.argv;
const rows = fs.readFileSync(input, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
const meta = JSON.parse(metaText || "{}");
const setups = new Map(); // "kind/n" -> {kind, n, best, bestCpu, paced}
for (const r of rows) {
  const key = `${r.server}/${r.nodes}`;
  if (!setups.has(key)) setups.set(key, { kind: r.server, n: r.nodes, best: null, bestCpu: null, paced: null });
  const s = setups.get(key);
  if (r.scenario.startsWith("fanout_k") && r.data.deliveries_per_s !== undefined &&
      (!s.best || r.data.deliveries_per_s > s.best.deliveries_per_s)) {
    s.best = r.data;
    s.bestCpu = r.cpu_pct;
  }
  if (r.scenario === "fanout_paced") s.paced = r.data;
}
const names = { sqlite: "ws-broadcast, SQLite", redis: "ws-broadcast, Redis", socketio: "Socket.IO + redis-adapter" };
const k = (v) => (v === undefined || v === null ? "–" : Math.round(v).toLocaleString("en-US"));
const ms = (us) => (us === undefined ? "–" : (us / 1000).toFixed(2));
const lines = [
  `Fan-out to ${meta.receivers ?? "?"} receivers in one room (one sender), ${meta.cpus ?? "?"} CPUs, Redis ${meta.redis ?? "?"}, Node ${meta.node ?? "?"}.`,
  "",
  "| server | nodes | deliveries/s | msgs/s | CPU of all nodes + Redis (% of a core, whole run) | p50 ms @ " + (meta.pace ?? 100) + "/s | p99 ms | errors | vs Socket.IO, same nodes |",
  "|---|---|---|---|---|---|---|---|---|",
];
const out = [];
for (const s of setups.values()) {
  const sio = setups.get(`socketio/${s.n}`);
  const ratio = s.kind !== "socketio" && sio && sio.best && s.best && sio.best.deliveries_per_s > 0
    ? (s.best.deliveries_per_s / sio.best.deliveries_per_s).toFixed(1) + "×" : "";
  const cpuPct = s.bestCpu;
  lines.push(`| ${names[s.kind] || s.kind} | ${s.n} | ${k(s.best?.deliveries_per_s)} | ${k(s.best?.msgs_per_s)} | ${cpuPct === null ? "–" : cpuPct + " %"} | ${ms(s.paced?.p50_us)} | ${ms(s.paced?.p99_us)} | ${(s.best?.errors ?? 0) + (s.paced?.errors ?? 0)} | ${ratio} |`);
  out.push({ server: s.kind, nodes: s.n, max: s.best, cpu_pct: s.bestCpu, paced: s.paced });
}
fs.writeFileSync(output, JSON.stringify({ meta, setups: out, raw: rows }, null, 1) + "\n");
console.log(lines.join("\n"));
