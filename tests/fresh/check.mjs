// ./dev check-fresh [SUITE...]: README's two commands on a stock Debian 12.
//
// A fresh debian:bookworm (minbase, debootstrap'd once and cached by the
// container suite's helpers) gets the repository's tracked files as they are
// in the work tree, nothing else: no build, no node_modules, no packages.
// In it, as root, `./dev up` must print every server's URL and drain to
// exit 0 on SIGINT, then `./dev test [SUITE...]` must pass. The container
// runs --privileged (the container suite nests podman) with --network host,
// so it reaches the same package registries as this machine, and only them.
//
// Prints the container's output and ends with `check-fresh: up ok|FAIL, test
// ok|FAIL`; exits non-zero on a failure.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { BASE, baseImage, configure } from '../container/lib/podman.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = process.env.WS_CACHE_DIR || '/var/cache/sandbox-ws';
const SUITES = process.argv.slice(2);
const TIMEOUT_S = Number(process.env.WS_FRESH_TIMEOUT || 5400);
// ports on this machine's loopback (--network host): clear of ./dev up's own
const PORT_BASE = Number(process.env.WS_FRESH_PORT_BASE || 28480);

// Inside the container: ./dev up until every URL is printed, a look at each
// /healthz, SIGINT, its exit status; then ./dev test.
const SCRIPT = String.raw`
set -u
export DEBIAN_FRONTEND=noninteractive
mkdir -p /work/sandbox-ws && cd /work/sandbox-ws && tar -xf /fresh.tar
up=FAIL
export WS_ECHO_PORT=${PORT_BASE} WS_BROADCAST_PORT=${PORT_BASE + 1} WS_RPC_PORT=${PORT_BASE + 2}
# job control on: a background job of a script would otherwise ignore
# SIGINT (what Ctrl-C sends), and dev's trap could not take it
set -m
./dev up >/tmp/up.log 2>&1 &
pid=$!
set +m
# dev up prints a server's URL line only after that server's readiness fd
for _ in $(seq 1 1800); do
	[[ $(grep -cE '^(echo|broadcast|rpc) +ws://' /tmp/up.log) -eq 3 ]] && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.5
done
cat /tmp/up.log | tail -n 20
healthy=0
for port in ${PORT_BASE} ${PORT_BASE + 1} ${PORT_BASE + 2}; do
	if exec 3<>/dev/tcp/127.0.0.1/$port; then
		printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
		head -n 1 <&3 | grep -q ' 200 ' && healthy=$((healthy + 1))
		exec 3<&-
	fi
done
kill -INT $pid 2>/dev/null
wait $pid
status=$?
echo "dev up: $healthy of 3 /healthz answered 200; exit status $status after SIGINT"
[[ $healthy -eq 3 && $status -eq 0 ]] && up=ok
./dev test ${SUITES.join(' ')}
rc=$?
echo "check-fresh: up $up, test $([[ $rc -eq 0 ]] && echo ok || echo FAIL)"
[[ $up == ok && $rc -eq 0 ]]
`;

function main() {
  configure(CACHE);
  return baseImage(CACHE).then((did) => {
    console.log(`==> base image ${BASE}: ${did}`);
    const work = mkdtempSync(join(tmpdir(), 'ws-fresh-'));
    const tarball = join(work, 'fresh.tar');
    // the tracked files as they are in the work tree (uncommitted edits too)
    const files = execFileSync('git', ['-C', ROOT, 'ls-files', '-z'], { maxBuffer: 64 << 20 });
    execFileSync('tar', ['-C', ROOT, '--null', '-T', '-', '-cf', tarball], { input: files });
    const args = [
      'run', '--rm', '--privileged', '--network', 'host', '--pull=never',
      '-v', `${tarball}:/fresh.tar:ro`,
    ];
    if (existsSync('/dev/fuse')) args.push('--device', '/dev/fuse');
    // this machine reaches the registries through a TLS proxy: hand its CA in
    const ca = process.env.NODE_EXTRA_CA_CERTS;
    if (ca && existsSync(ca)) {
      args.push('-v', `${ca}:/etc/fresh-ca.crt:ro`, '-e', 'NODE_EXTRA_CA_CERTS=/etc/fresh-ca.crt');
    }
    args.push('-e', 'CI=true', BASE, 'timeout', '--kill-after=30', String(TIMEOUT_S),
      'bash', '-c', SCRIPT);
    console.log(`==> podman ${args.slice(0, -1).join(' ')} '<script>'`);
    return new Promise((res) => {
      const p = spawn('podman', args, { stdio: 'inherit' });
      p.on('exit', (code) => {
        rmSync(work, { recursive: true, force: true });
        res(code ?? 1);
      });
    });
  });
}

main().then((code) => process.exit(code), (e) => {
  console.error(`check-fresh: ${e.message}`);
  process.exit(1);
});
