// Turns the records tests/bench/run-rooms collected into results JSON and a
// markdown table with ratios (ws-broadcast and ws-rpc against Bun and Node).
// Floors, when recorded (rpc_ping_echo_floor of ws-echo / bun-echo /
// node-echo, exec_spawn_floor[_p1] of spawn_floor), get rows of their own:
// the floor in the "ours" column against Bun's and Node's rpc_ping / rpc_exec.
//   node report_rooms.js RECORDS.jsonl OUT.json '{"meta":...}'
"use strict";
const fs = require("node:fs");

const [recordsPath, outPath, metaJson] = process.argv.slice(2);
const meta = JSON.parse(metaJson || "{}");
const servers = {}; // servers[name][scenario] = data
for (const line of fs.readFileSync(recordsPath, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const { server, scenario, data } = JSON.parse(line);
  (servers[server] ??= {})[scenario] = data;
}
fs.writeFileSync(outPath, JSON.stringify({ meta, servers }, null, 2) + "\n");

const ours = { fanout: "ws-broadcast", rpc: "ws-rpc" };
const fmt = (v, d = 0) => (v == null || Number.isNaN(v) ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (a, b, lowerBetter) => (a == null || b == null || !a || !b ? "–" : `${(lowerBetter ? b / a : a / b).toFixed(2)}×`);

const rows = [];
const receivers = [...new Set(Object.values(servers).flatMap((s) => Object.keys(s))
  .map((k) => /^fanout_n(\d+)_max$/.exec(k)).filter(Boolean).map((m) => Number(m[1])))].sort((a, b) => a - b);
for (const n of receivers) {
  rows.push(["fanout", `deliveries/s, N=${n}, max (best window)`, `fanout_n${n}_max`, "deliveries_per_s", false, 0]);
  rows.push(["fanout", `messages/s, N=${n}, max`, `fanout_n${n}_max`, "msgs_per_s", false, 0]);
  rows.push(["fanout", `p50 µs at max, N=${n}`, `fanout_n${n}_max`, "p50_us", true, 0]);
  rows.push(["fanout", `p50 µs at ${meta.pace ?? 100}/s, N=${n}`, `fanout_n${n}_paced`, "p50_us", true, 0]);
  rows.push(["fanout", `p99 µs at ${meta.pace ?? 100}/s, N=${n}`, `fanout_n${n}_paced`, "p99_us", true, 0]);
}
rows.push(["rpc", "ping round trips/s (16 in flight)", "rpc_ping", "rtt_per_s", false, 0]);
rows.push(["rpc", "ping p50 µs", "rpc_ping", "p50_us", true, 0]);
rows.push(["rpc", "exec `true` round trips/s (4 in flight)", "rpc_exec", "rtt_per_s", false, 0]);
rows.push(["rpc", "exec p50 µs", "rpc_exec", "p50_us", true, 0]);
rows.push(["rpc", "exec p99 µs", "rpc_exec", "p99_us", true, 0]);

const out = [];
out.push("| scenario | ours | Bun | Node | ours/Bun | ours/Node |");
out.push("|---|---:|---:|---:|---:|---:|");
for (const [group, label, scen, key, lowerBetter, d] of rows) {
  const o = servers[ours[group]]?.[scen]?.[key];
  const b = servers.bun?.[scen]?.[key];
  const nd = servers.node?.[scen]?.[key];
  out.push(`| ${group === "fanout" ? "ws-broadcast" : "ws-rpc"}: ${label} | ${fmt(o, d)} | ${fmt(b, d)} | ${fmt(nd, d)} | ${ratio(o, b, lowerBetter)} | ${ratio(o, nd, lowerBetter)} |`);
}
// floors: [label, floor server, floor scenario, floor key, compared scenario, compared key, lowerBetter]
const floors = [
  ["ping floor: echoed by ws-echo, round trips/s (16 in flight)", "ws-echo", "rpc_ping_echo_floor", "rtt_per_s", "rpc_ping", "rtt_per_s", false],
  ["ping floor: echoed by ws-echo, p50 µs", "ws-echo", "rpc_ping_echo_floor", "p50_us", "rpc_ping", "p50_us", true],
  ["ping floor: echoed by Bun, round trips/s (16 in flight)", "bun-echo", "rpc_ping_echo_floor", "rtt_per_s", "rpc_ping", "rtt_per_s", false],
  ["ping floor: echoed by Bun, p50 µs", "bun-echo", "rpc_ping_echo_floor", "p50_us", "rpc_ping", "p50_us", true],
  ["ping floor: echoed by Node, round trips/s (16 in flight)", "node-echo", "rpc_ping_echo_floor", "rtt_per_s", "rpc_ping", "rtt_per_s", false],
  ["ping floor: echoed by Node, p50 µs", "node-echo", "rpc_ping_echo_floor", "p50_us", "rpc_ping", "p50_us", true],
  ["exec floor: spawns/s (4 at once)", "spawn_floor", "exec_spawn_floor", "per_s", "rpc_exec", "rtt_per_s", false],
  ["exec floor: p50 µs (4 at once)", "spawn_floor", "exec_spawn_floor", "p50_us", "rpc_exec", "p50_us", true],
  ["exec floor: p99 µs (4 at once)", "spawn_floor", "exec_spawn_floor", "p99_us", "rpc_exec", "p99_us", true],
  ["exec floor: spawns/s (1 at a time)", "spawn_floor", "exec_spawn_floor_p1", "per_s", "rpc_exec", "rtt_per_s", false],
  ["exec floor: p50 µs (1 at a time)", "spawn_floor", "exec_spawn_floor_p1", "p50_us", "rpc_exec", "p50_us", true],
].filter(([, srv, scen]) => servers[srv]?.[scen]);
for (const [label, srv, scen, key, cmp, ckey, lowerBetter] of floors) {
  const f = servers[srv][scen][key];
  const b = servers.bun?.[cmp]?.[ckey];
  const nd = servers.node?.[cmp]?.[ckey];
  out.push(`| ${label} | ${fmt(f)} | ${fmt(b)} | ${fmt(nd)} | ${ratio(f, b, lowerBetter)} | ${ratio(f, nd, lowerBetter)} |`);
}
out.push("");
out.push("Ratios: > 1× means ours is better (higher rate, or lower latency).");
if (floors.length) {
  out.push("");
  out.push("Floors (the \"ours\" column holds the floor; Bun and Node are their rpc_ping / rpc_exec; the ratio is floor/Bun): " +
    "the ping floor is the same exchange with no JSON work at all (the request echoed back unchanged by an echo server); " +
    "the exec floor is posix_spawn of `sh -c true` with no server and no sandbox (stdout/stderr to pipes, drained, reaped), pinned to the server's core.");
}
out.push("");
out.push("CPU while measuring (% of one core: server / its children / ws-roomgen), window K of the best max run:");
out.push("");
out.push("| scenario | ours | Bun | Node |");
out.push("|---|---|---|---|");
const cpu = (d) => (d && d.server_cpu_pct != null ? `${fmt(d.server_cpu_pct)}${d.children_cpu_pct != null ? " / " + fmt(d.children_cpu_pct) : ""} / ${fmt(d.loadgen_cpu_pct)}${d.window ? ` (K=${d.window})` : ""}${d.errors ? " ⚠ " + d.first_error : ""}` : "–");
const scens = [...receivers.flatMap((n) => [`fanout_n${n}_max`, `fanout_n${n}_paced`]), "rpc_ping", "rpc_exec"];
for (const s of scens) {
  const o = servers[s.startsWith("rpc") ? ours.rpc : ours.fanout]?.[s];
  out.push(`| ${s} | ${cpu(o)} | ${cpu(servers.bun?.[s])} | ${cpu(servers.node?.[s])} |`);
}
const pf = "rpc_ping_echo_floor";
if (servers["ws-echo"]?.[pf] || servers["bun-echo"]?.[pf] || servers["node-echo"]?.[pf]) {
  out.push(`| ${pf} (echo servers) | ${cpu(servers["ws-echo"]?.[pf])} | ${cpu(servers["bun-echo"]?.[pf])} | ${cpu(servers["node-echo"]?.[pf])} |`);
}
// spawn_floor: its own CPU / its children's (no load generator)
const cpuSpawn = (d) => (d ? `${fmt(d.cpu_pct)} / ${fmt(d.children_cpu_pct)} / –${d.errors ? " ⚠ " + d.first_error : ""}` : "–");
for (const s of ["exec_spawn_floor", "exec_spawn_floor_p1"]) {
  if (servers.spawn_floor?.[s]) out.push(`| ${s} (spawn_floor) | ${cpuSpawn(servers.spawn_floor[s])} | – | – |`);
}
console.log(out.join("\n"));
