// Turns the records tests/bench/run collected into results JSON and a
// markdown table of ws-echo against Bun and Node.
//   node report.js RECORDS.jsonl OUT.json '{"meta":...}'
"use strict";
const fs = require("node:fs");

const [recordsPath, outPath, metaJson] = process.argv.slice(2);
const meta = JSON.parse(metaJson || "{}");

// servers[name][scenario] = data
const servers = {};
for (const line of fs.readFileSync(recordsPath, "utf8").split("\n")) {
  if (!line.trim()) continue;
  const { server, scenario, data } = JSON.parse(line);
  (servers[server] ??= {})[scenario] = data;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

// Derived figures each server gets, whatever it managed to run.
for (const s of Object.values(servers)) {
  const rss = s.rss;
  if (rss && rss.idle_kib != null && rss.baseline_kib != null)
    rss.per_idle_conn_bytes = Math.round(((rss.idle_kib - rss.baseline_kib) * 1024) / rss.idle);
  if (s.startup) s.startup.ready_ms_median = median(s.startup.ready_ms);
}

const get = (name, path) => path.split(".").reduce((o, k) => (o == null ? null : o[k]), servers[name]);
const okOr = (name, scen, key) => (get(name, `${scen}.ok`) === false ? null : get(name, `${scen}.${key}`));

// [label, getter, which way is better]
const rows = [
  ["echo 50×16×64 B (msgs/s)", (n) => okOr(n, "echo_64", "msgs_per_s"), "higher"],
  [`echo 50×16×64 B with ${meta.idle ?? "10000"} idle held (msgs/s)`, (n) => okOr(n, "echo_64_idle", "msgs_per_s"), "higher"],
  ["echo 16×4×64 KiB (msgs/s)", (n) => okOr(n, "echo_64k", "msgs_per_s"), "higher"],
  ["connections/s (open, handshake, close; 64 at once)", (n) => okOr(n, "connect", "cycles_per_s"), "higher"],
  ["latency, 1 connection, p50 (µs)", (n) => okOr(n, "latency", "p50_us"), "lower"],
  ["latency, 1 connection, p99 (µs)", (n) => okOr(n, "latency", "p99_us"), "lower"],
  ["latency 50×16×64 B, p99 (µs)", (n) => okOr(n, "echo_64", "p99_us"), "lower"],
  ["RSS per idle connection (bytes)", (n) => get(n, "rss.per_idle_conn_bytes"), "lower"],
  ["baseline RSS (MiB)", (n) => (get(n, "rss.baseline_kib") == null ? null : get(n, "rss.baseline_kib") / 1024), "lower"],
  ["exec to ready, median (ms)", (n) => get(n, "startup.ready_ms_median"), "lower"],
];

const cpuRows = [
  ["echo 50×16×64 B", "echo_64"],
  ["echo with idle held", "echo_64_idle"],
  ["echo 64 KiB", "echo_64k"],
  ["connect", "connect"],
  ["latency", "latency"],
];

const fmt = (v) => {
  if (v == null || Number.isNaN(v)) return "—";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
};
const ratio = (a, b) => (a == null || b == null || b === 0 ? "—" : `${(a / b).toFixed(2)}×`);

const names = ["ws-echo", "bun", "node"];
const titles = { "ws-echo": "ws-echo", bun: "Bun", node: "Node (ws)" };
const lines = [];
lines.push(`| metric | ${names.map((n) => titles[n]).join(" | ")} | ws-echo/Bun | ws-echo/Node |`);
lines.push(`|---|${names.map(() => "---:").join("|")}|---:|---:|`);
const ratios = {};
for (const [label, fn, better] of rows) {
  const v = Object.fromEntries(names.map((n) => [n, servers[n] ? fn(n) : null]));
  const r = { bun: ratio(v["ws-echo"], v.bun), node: ratio(v["ws-echo"], v.node) };
  ratios[label] = { better, vs_bun: r.bun, vs_node: r.node };
  lines.push(`| ${label} (${better} is better) | ${names.map((n) => fmt(v[n])).join(" | ")} | ${r.bun} | ${r.node} |`);
}
lines.push("");
lines.push(`| CPU % of a core while measuring: server / loadgen / other processes | ${names.map((n) => titles[n]).join(" | ")} |`);
lines.push(`|---|${names.map(() => "---:").join("|")}|`);
const noisy = [];
for (const [label, scen] of cpuRows) {
  const cell = (n) => {
    const d = get(n, scen);
    if (!d || d.cpu_self_pct == null) return "—";
    const rest = d.cpu_other_pct;
    if (rest != null && rest > (meta.noise_pct ?? 15)) noisy.push(`${n} ${scen} (${fmt(rest)}%)`);
    return `${fmt(d.cpu_server_pct)} / ${fmt(d.cpu_self_pct)} / ${fmt(rest)}`;
  };
  lines.push(`| ${label} | ${names.map(cell).join(" | ")} |`);
}
const before = names.filter((n) => get(n, "machine.busy_pct_before") != null).map((n) => `${titles[n]} ${get(n, "machine.busy_pct_before")}%`);
if (before.length) lines.push("", `Machine busy with other work just before each server: ${before.join(", ")} (of one core).`);
if (noisy.length) lines.push("", `Other work on the machine took CPU during: ${noisy.join(", ")}; those figures are suspect.`);
const problems = [];
for (const [n, s] of Object.entries(servers))
  for (const [scen, d] of Object.entries(s))
    if (d && typeof d === "object" && d.ok === false) problems.push(`${n} ${scen}`);
if (problems.length) lines.push("", `Failed or incomplete runs: ${problems.join(", ")}.`);
const versions = names.filter((n) => servers[n]?.version).map((n) => servers[n].version);
lines.push(
  "",
  `${versions.join("; ")}. Server pinned to CPU ${meta.server_cpu}, loadgen to CPU ${meta.loadgen_cpu}; ${meta.warmup_s} s warm-up + ${meta.duration_s} s per scenario; ` +
    "ready = exec until the server writes its notify fd; RSS from /proc/PID/status VmRSS; " +
    "\"other processes\" is tick-sampled, so ±10 is noise.",
);
const table = lines.join("\n");

const out = { meta, servers, ratios, table };
fs.writeFileSync(outPath, JSON.stringify(out, null, 2) + "\n");
console.log(table);
