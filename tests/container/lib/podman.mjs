// podman as PLATFORM.md says it works here: runc, cgroupfs, file events,
// ulimits within the host's, storage under the cache dir (so layers and the
// base image survive between runs), --network host only.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const BASE = 'localhost/sandbox-ws-base:bookworm';

/** Writes containers.conf and storage.conf under CACHE and points podman at them. */
export function configure(cache) {
  const dir = join(cache, 'podman');
  mkdirSync(dir, { recursive: true });
  let hard = 1_048_576;
  try {
    const lim = readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+\d+\s+(\d+)/);
    if (lim) hard = Number(lim[1]);
  } catch { /* keep the default */ }
  const nofile = Math.min(hard, 65_536);
  writeFileSync(join(dir, 'containers.conf'), `[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`);
  const { driver, options } = storageDriver(dir);
  // one graphroot per driver: podman refuses a store made by another one
  const graph = driver === 'overlay' && !options ? 'storage' : `storage-${driver}${options ? '-fuse' : ''}`;
  writeFileSync(join(dir, 'storage.conf'), `[storage]
driver = "${driver}"
graphroot = "${join(dir, graph)}"
runroot = "/run/sandbox-ws-podman${graph === 'storage' ? '' : `-${graph}`}"
${options || ''}`);
  process.env.WS_PODMAN_STORAGE = `${driver}${options ? ' (fuse-overlayfs)' : ''}`;
  process.env.CONTAINERS_CONF = join(dir, 'containers.conf');
  process.env.CONTAINERS_STORAGE_CONF = join(dir, 'storage.conf');
}

/**
 * The storage driver: overlay, except where DIR itself is on overlayfs (the
 * machine is a container: a CI runner, a dev container), where the kernel's
 * overlay cannot stack ("a mount_program is required"): fuse-overlayfs when
 * it and /dev/fuse are there, else vfs (slower, always works).
 * WS_PODMAN_DRIVER=overlay|fuse-overlayfs|vfs overrides.
 */
function storageDriver(dir) {
  const fuse = { driver: 'overlay', options: '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n' };
  const forced = process.env.WS_PODMAN_DRIVER;
  if (forced === 'vfs') return { driver: 'vfs' };
  if (forced === 'fuse-overlayfs') return fuse;
  if (forced === 'overlay') return { driver: 'overlay' };
  let fstype = '';
  try {
    fstype = execFileSync('stat', ['-f', '-c', '%T', dir], { encoding: 'utf8' }).trim();
  } catch { /* unknown: assume a plain file system */ }
  if (fstype !== 'overlayfs') return { driver: 'overlay' };
  if (existsSync('/usr/bin/fuse-overlayfs') && existsSync('/dev/fuse')) return fuse;
  return { driver: 'vfs' };
}

/** podman ARGS...; resolves with stdout, rejects with its stderr. */
export async function podman(args, { timeout = 60_000 } = {}) {
  try {
    const { stdout } = await run('podman', args, { timeout, maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    throw new Error(`podman ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

/** The container's output: podman logs writes its stderr to podman's stderr. */
export async function logs(name) {
  const { stdout, stderr } = await run('podman', ['logs', name], { timeout: 30_000, maxBuffer: 64 << 20 });
  return stdout + stderr;
}

/** A long command with its output in LOG (builds, debootstrap). */
export function longRun(cmd, args, log, { timeout }) {
  return new Promise((resolve, reject) => {
    const out = [];
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const t = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.on('data', (d) => out.push(d));
    p.on('exit', (code, signal) => {
      clearTimeout(t);
      const text = Buffer.concat(out).toString();
      writeFileSync(log, text);
      if (code === 0) resolve(text);
      else reject(new Error(`${cmd} ${args.join(' ')}: ${signal || `exit ${code}`}; last lines:\n${text.split('\n').slice(-15).join('\n')}\n(full log: ${log})`));
    });
  });
}

/** The Debian mirror: WS_DEBIAN_MIRROR, else the one apt uses on this machine. */
function mirror() {
  if (process.env.WS_DEBIAN_MIRROR) return process.env.WS_DEBIAN_MIRROR.replace(/\/$/, '');
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d')) {
      if (f.endsWith('.sources') || f.endsWith('.list')) files.push(join('/etc/apt/sources.list.d', f));
    }
  } catch { /* none */ }
  for (const f of files) {
    let text = '';
    try { text = readFileSync(f, 'utf8'); } catch { continue; }
    const m = text.match(/^URIs:\s*(\S+\/debian)\/?\s*$/m) || text.match(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\b/m);
    if (m) return m[1];
  }
  throw new Error('no Debian mirror in /etc/apt/sources.list*: set WS_DEBIAN_MIRROR');
}

/**
 * The base image: debootstrap --variant=minbase bookworm (cached as a
 * tarball under CACHE), imported and tagged debian:bookworm and
 * debian:bookworm-slim so the Dockerfiles build unchanged with --pull=never.
 * Returns what it had to do.
 */
export async function baseImage(cache) {
  const tarball = join(cache, 'debian-bookworm-minbase.tar');
  const did = [];
  if (!existsSync(tarball)) {
    const root = join(cache, 'rootfs.tmp');
    rmSync(root, { recursive: true, force: true });
    const m = mirror();
    await longRun('debootstrap', ['--variant=minbase', 'bookworm', root, m], join(cache, 'debootstrap.log'), { timeout: 600_000 });
    // apt sources like the official image's; no package cache or lists
    rmSync(join(root, 'etc/apt/sources.list'), { force: true });
    writeFileSync(join(root, 'etc/apt/sources.list.d/debian.sources'), `Types: deb
URIs: ${m}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${m.replace(/\/debian$/, '/debian-security')}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`);
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
      for (const f of readdirSync(join(root, d))) {
        if (f !== 'partial' && f !== 'lock') rmSync(join(root, d, f), { recursive: true, force: true });
      }
    }
    await longRun('tar', ['-C', root, '--numeric-owner', '-cf', `${tarball}.tmp`, '.'], join(cache, 'tar.log'), { timeout: 300_000 });
    renameSync(`${tarball}.tmp`, tarball);
    rmSync(root, { recursive: true, force: true });
    did.push(`debootstrap from ${m}`);
  }
  const exists = await run('podman', ['image', 'exists', BASE]).then(() => true, () => false);
  if (!exists) {
    await podman(['import', '--change', 'CMD ["bash"]', tarball, BASE], { timeout: 300_000 });
    did.push('import');
  }
  await podman(['tag', BASE, 'docker.io/library/debian:bookworm', 'docker.io/library/debian:bookworm-slim']);
  return did.length ? did.join(', ') : 'cached';
}

/** podman build from the repository root; LOG gets the output. */
export async function build(root, { file, tag, log, args = [], timeout = 900_000 }) {
  await longRun('podman', [
    'build', '--pull=never', '--network', 'host', '--format', 'docker', '--layers',
    '--ignorefile', join(root, 'container', `${file}.dockerignore`),
    '-f', join(root, 'container', file), '-t', tag, ...args, root,
  ], log, { timeout });
}
