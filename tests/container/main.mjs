// The container suite: node main.mjs [image] [supervisor] [worker] [browser]
// (all by default). tests/container/run installs what it needs first.
// Environment: WS_BUILD_DIR (the meson build with the servers, default
// build/), WS_TEST_PORT_BASE (first of the loopback ports used, default
// 28000), WS_CACHE_DIR (podman storage and the base image, default
// /var/cache/sandbox-ws).

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Harness } from './lib/harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const ALL = ['image', 'supervisor', 'worker', 'browser'];
const wanted = process.argv.slice(2);
for (const w of wanted) {
  if (!ALL.includes(w)) {
    console.error(`unknown section '${w}': use ${ALL.join(', ')}`);
    process.exit(2);
  }
}
const sections = wanted.length ? ALL.filter((s) => wanted.includes(s)) : ALL;

const base = Number(process.env.WS_TEST_PORT_BASE || 28000);
const cleanups = [];
const ctx = {
  root,
  here,
  build: resolve(root, process.env.WS_BUILD_DIR || 'build'),
  cache: process.env.WS_CACHE_DIR || '/var/cache/sandbox-ws',
  port: (n) => base + n,
  cleanup: (fn) => cleanups.push(fn),
};

async function runCleanups() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch (err) {
      console.log(`cleanup: ${err}`);
    }
  }
}
// stopped from outside (the run script's timeout, Ctrl-C): leave nothing running
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.once(sig, async () => {
    console.log(`\n${sig}: cleaning up`);
    await runCleanups();
    h.summary();
    process.exit(1);
  });
}

const h = new Harness();
const t0 = Date.now();
for (const name of sections) {
  h.section = name;
  const s0 = Date.now();
  console.log(`\n== ${name}`);
  try {
    const mod = await import(join(here, `${name}.mjs`));
    await mod.run(h, ctx);
  } catch (err) {
    await h.check('section ran to its end', () => { throw err; });
  }
  await runCleanups();
  h.note(`section time ${((Date.now() - s0) / 1000).toFixed(1)} s`);
}
h.section = '';
h.note(`total ${((Date.now() - t0) / 1000).toFixed(1)} s`);
h.summary();
process.exit(h.failed ? 1 : 0);
