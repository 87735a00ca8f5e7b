// The terminal benchmark's client (Node + `ws`, the same for every server):
//   node term_client.mjs KIND URL FILE BYTES KEYS
// KIND: ws-rpc (binary frames, chunk headers ignored), node-pty (binary),
// terminado (JSON ["stdin"|"stdout", text]). Waits for the shell's prompt,
// then: KEYS keystroke echoes (send "x", time until an "x" comes back, then
// a backspace, awaited too), then `cat FILE` (BYTES bytes) until a marker the
// shell prints after it. Prints one JSON line: p50/p99/max echo in µs, MB/s.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');

const [kind, url, file, bytesArg, keysArg] = process.argv.slice(2);
const fileBytes = Number(bytesArg);
const keys = Number(keysArg);
const DEADLINE = Date.now() + 300_000;

const ws = new WebSocket(url, { perMessageDeflate: false });
let sink = null; // (text) => void
let received = 0;

function send(text) {
  if (kind === 'terminado') ws.send(JSON.stringify(['stdin', text]));
  else ws.send(Buffer.from(text, 'utf8'));
}
ws.on('message', (m, isBinary) => {
  let text;
  if (kind === 'terminado') {
    const msg = JSON.parse(m.toString());
    if (msg[0] !== 'stdout') return;
    text = msg[1];
  } else {
    if (!isBinary) return; // ws-rpc's control frames (ready, chunk headers)
    text = m.toString('latin1');
  }
  received += text.length;
  sink?.(text);
});

function until(pred) {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setInterval(() => {
      if (Date.now() > DEADLINE) { clearInterval(timer); reject(new Error('bench deadline passed')); }
    }, 1000);
    sink = (t) => {
      seen = (seen + t).slice(-256);
      if (pred(seen, t)) { sink = null; clearInterval(timer); resolve(); }
    };
  });
}

await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
// the prompt (bash -l prints one ending in "$ " or "# ")
send('PS1="READY> "\r');
await until((s) => s.includes('READY> '));

const lat = [];
for (let i = 0; i < keys; i++) {
  const t0 = process.hrtime.bigint();
  send('x');
  await until((s, t) => t.includes('x'));
  lat.push(Number(process.hrtime.bigint() - t0) / 1000);
  send('\x7f');
  await until((s, t) => t.includes('\b'));
}
lat.sort((a, b) => a - b);
const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];

const marker = 'END-OF-CAT';
const startBytes = received;
const t0 = process.hrtime.bigint();
send(`cat ${file}; echo END-OF""-CAT\r`);
await until((s) => s.includes(marker));
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
const got = received - startBytes;
console.log(JSON.stringify({
  kind, keys, echo_p50_us: Math.round(q(0.5)), echo_p99_us: Math.round(q(0.99)),
  echo_max_us: Math.round(lat[lat.length - 1]), cat_bytes: fileBytes, received_bytes: got,
  seconds: +secs.toFixed(3), mb_per_s: +(fileBytes / 1e6 / secs).toFixed(1),
}));
ws.close();
process.exit(0);
