"""Memory per command (docs/security.md, "Memory"): a memory cgroup per
command bounds its whole process tree (--limit-mem), and /dev/shm is a
private tmpfs of --shm-size, so a command can neither pin the machine's
RAM in the host's /dev/shm nor use more than its bound by spreading it over
processes. Each escape succeeds under the old behaviour (--shm-size 0,
--limit-mem 0, --run-as-self, --seccomp-profile none) and fails under the
defaults. Sizes stay in the hundreds of MiB; every run has a timeout."""

import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import PY, ROOT, SANDBOX_RUN, need, run

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rpc"))
import rpchelp  # noqa: E402

OLD = ROOT + ["--profile", "none", "--shm-size", "0", "--limit-mem", "0"]
MIB = 1 << 20


def check_lines(options=()):
    r = run(list(options) + ["--check"], [])
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def memory_cgroup():
    for line in check_lines():
        if line.startswith("# memory cgroup "):
            rest = line[len("# memory cgroup "):]
            return None if rest.startswith("none") else rest
    return None


def need_memory_cgroup():
    if not memory_cgroup():
        pytest.skip("no writable memory cgroup here (docs/security.md: the fallback)")


def need_private_shm():
    if "# /dev/shm private, %d bytes" % (64 * MIB) not in check_lines():
        pytest.skip("no private /dev/shm here (not root, or no mount namespace)")


@pytest.fixture
def shm_name():
    """A unique name in /dev/shm, removed from the host's afterwards."""
    name = "ws-sandbox-test-%s" % uuid.uuid4().hex
    yield name
    try:
        os.unlink(os.path.join("/dev/shm", name))
    except FileNotFoundError:
        pass


# --- /dev/shm ----------------------------------------------------------------

def fill_shm(name, mib):
    return ["sh", "-c", "head -c %dm /dev/zero > /dev/shm/%s && echo wrote" % (mib, name)]


def test_escape_fill_ram_through_dev_shm(shm_name):
    """256 MiB in /dev/shm: the old behaviour writes them to the host's
    /dev/shm, where they outlive the command; with --shm-size 64m the
    write stops at 64 MiB (ENOSPC) in a private tmpfs and the host's
    /dev/shm never sees the file."""
    need_private_shm()
    host = os.path.join("/dev/shm", shm_name)
    r = run(OLD, fill_shm(shm_name, 256), timeout=60)
    assert r.returncode == 0 and "wrote" in r.stdout, r.stderr
    assert os.path.getsize(host) == 256 * MIB  # it stayed after the command
    os.unlink(host)

    r = run(["--shm-size", "64m"], fill_shm(shm_name, 256), timeout=60)
    assert r.returncode != 0 and "No space left on device" in r.stderr, (r.returncode, r.stderr)
    assert not os.path.exists(host)


def test_dev_shm_is_private_bounded_and_shared_mode(shm_name):
    """The private /dev/shm is a tmpfs of --shm-size, mode 1777, nosuid and
    nodev; the default size is 64 MiB."""
    need_private_shm()
    script = ("import os, sys; st = os.statvfs('/dev/shm'); "
              "print(st.f_blocks * st.f_frsize, oct(os.stat('/dev/shm').st_mode & 0o7777), "
              "bool(st.f_flag & os.ST_NOSUID), bool(st.f_flag & os.ST_NODEV))")
    r = run([], [PY, "-c", script])
    assert r.stdout.split() == [str(64 * MIB), "0o1777", "True", "True"], r.stdout + r.stderr
    r = run(["--shm-size", "8m"], [PY, "-c", script])
    assert r.stdout.split()[0] == str(8 * MIB), r.stdout + r.stderr


# --- memory per command ------------------------------------------------------

# Three children each fill 300 MiB and hold it together for a moment; the
# parent prints how each ended (0, or minus the signal).
THREE_CHILDREN = r"""
import os, sys, time
size = int(sys.argv[1]) << 20
kids = []
for i in range(3):
    pid = os.fork()
    if pid == 0:
        b = bytearray(size)
        time.sleep(1.5)
        os._exit(0)
    kids.append(pid)
out = []
for pid in kids:
    _, status = os.waitpid(pid, 0)
    out.append(str(-os.WTERMSIG(status)) if os.WIFSIGNALED(status) else
               str(os.WEXITSTATUS(status)))
print(" ".join(out), flush=True)
"""


def test_escape_memory_spread_over_processes():
    """RLIMIT_AS is per process: three children of one command hold 900 MiB
    between them under the old behaviour. With --limit-mem 512m the
    command's memory cgroup OOM-kills one of them."""
    need_memory_cgroup()
    r = run(OLD + ["--timeout", "30"], [PY, "-c", THREE_CHILDREN, "300"], timeout=60)
    assert (r.returncode, r.stdout.split()) == (0, ["0", "0", "0"]), r.stdout + r.stderr
    r = run(["--limit-mem", "512m", "--timeout", "30"], [PY, "-c", THREE_CHILDREN, "300"],
            timeout=60)
    killed = r.returncode == 128 + signal.SIGKILL or str(-signal.SIGKILL) in r.stdout.split()
    assert killed, (r.returncode, r.stdout, r.stderr)


def test_command_within_its_memory_bound_works():
    """100 MiB (and three children of 100 MiB) fit under --limit-mem 512m,
    and 100 MiB under the default (1 GiB)."""
    need_memory_cgroup()
    grab = "b = bytearray(100 << 20); print('allocated')"
    r = run(["--limit-mem", "512m"], [PY, "-c", grab])
    assert (r.returncode, r.stdout) == (0, "allocated\n"), r.stderr
    r = run([], [PY, "-c", grab])
    assert (r.returncode, r.stdout) == (0, "allocated\n"), r.stderr
    r = run(["--limit-mem", "512m", "--timeout", "30"], [PY, "-c", THREE_CHILDREN, "100"],
            timeout=60)
    assert (r.returncode, r.stdout.split()) == (0, ["0", "0", "0"]), r.stdout + r.stderr


def test_memory_limit_written_swap_off():
    """The command's own cgroup holds the limit, and swap adds nothing to
    it (memsw, or v2's swap.max, where the kernel has them)."""
    cg = memory_cgroup()
    if not cg:
        pytest.skip("no writable memory cgroup here")
    script = r"""
import os
for line in open('/proc/self/cgroup'):
    n, ctl, path = line.rstrip('\n').split(':', 2)
    if 'memory' in ctl.split(','):
        break
else:
    path = [l for l in open('/proc/self/cgroup') if l.startswith('0::')][0].split(':', 2)[2].strip()
d = os.path.join(os.path.dirname(%r), *path.split('/')[-2:])
for f in ('memory.limit_in_bytes', 'memory.memsw.limit_in_bytes', 'memory.max', 'memory.swap.max'):
    try:
        print(f, open(os.path.join(d, f)).read().strip())
    except OSError:
        pass
""" % cg
    r = run(["--limit-mem", "256m"], [PY, "-c", script])
    got = dict(line.split() for line in r.stdout.splitlines())
    assert got, r.stdout + r.stderr
    limit = got.get("memory.limit_in_bytes", got.get("memory.max"))
    assert limit == str(256 * MIB), got
    if "memory.memsw.limit_in_bytes" in got:
        assert got["memory.memsw.limit_in_bytes"] == str(256 * MIB), got
    if "memory.swap.max" in got:
        assert got["memory.swap.max"] == "0", got


def test_memory_cgroups_are_removed():
    """The command's memory cgroup and the sandbox's are gone when
    ws-sandbox-run returns."""
    cg = memory_cgroup()
    if not cg:
        pytest.skip("no writable memory cgroup here")
    where = os.path.dirname(cg)
    r = run([], ["cat", "/proc/self/cgroup"])
    line = [l for l in r.stdout.splitlines() if "memory" in l.split(":")[1].split(",")][0]
    sandbox, command = line.split(":", 2)[2].split("/")[-2:]
    assert sandbox.startswith("ws-sandbox.") and command.startswith("c"), line
    assert not os.path.exists(os.path.join(where, sandbox, command))
    assert not os.path.exists(os.path.join(where, sandbox))


def test_no_memory_limit_no_memory_cgroup():
    assert "# memory cgroup none (no memory limit asked for)" in check_lines(["--limit-mem", "0"])


# --- ws-rpc ------------------------------------------------------------------

@pytest.fixture
def rpc(tmp_path):
    """Factory: a started ws-rpc (--no-auth, no rate limit)."""
    if not os.access(rpchelp.BINARY, os.X_OK):
        pytest.skip("ws-rpc is not built")
    started = []

    def start(*flags):
        s = rpchelp.Server([str(f) for f in flags] + ["--no-auth", "--rate-limit", "0"],
                           tmp_path / ("rpc-%d.log" % len(started)))
        started.append(s)
        return s.start()

    yield start
    problems = []
    for s in started:
        if s.alive():
            problems += s.stop()
    assert not problems, problems


def sh(ws, line):
    return ws.exec(argv=["sh", "-c", line])


def test_rpc_commands_share_one_private_bounded_dev_shm(rpc, shm_name):
    """ws-rpc's commands share one private /dev/shm (a file one exec leaves
    is there for the next), the host's never sees it, and it holds
    --shm-size in all."""
    need_private_shm()
    s = rpc("--shm-size", "32m")
    w = s.ws()
    info = w.request({"type": "info"})
    assert info["server"]["limits"]["sandbox"]["shm_bytes"] == 32 * MIB, info
    r = sh(w, "head -c 1m /dev/zero > /dev/shm/%s && echo ok" % shm_name)
    assert r["stdout"] == "ok\n", r
    r = sh(w, "stat -c %%s /dev/shm/%s" % shm_name)
    assert r["stdout"] == "%d\n" % MIB, r
    assert not os.path.exists(os.path.join("/dev/shm", shm_name))
    r = sh(w, "head -c 64m /dev/zero > /dev/shm/%s.2" % shm_name)
    assert r["exitCode"] != 0 and "No space left" in r["stderr"], r
    # whatever the commands wrote is bounded in total
    r = sh(w, "du -sk /dev/shm | cut -f1")
    assert int(r["stdout"]) <= 32 * 1024, r


def test_rpc_memory_cgroups_removed_and_stale_ones_swept(rpc):
    """The server's memory cgroup goes with it; one left by a server that
    was killed is removed by the next server's start."""
    need_memory_cgroup()
    a = rpc()
    w = a.ws()
    assert w.exec(argv=["true"])["exitCode"] == 0
    path = None
    for word in a.log_text().split():
        if word.startswith("memory_cgroup="):
            path = word.split("=", 1)[1]
    assert path and os.path.isdir(path), a.log_text()
    os.kill(a.pid, signal.SIGKILL)
    rpchelp.wait_until(lambda: not a.alive(), 10, "the server's death")
    assert os.path.isdir(path)  # nobody removed it
    b = rpc()
    assert not os.path.exists(path), b.log_text()
    b.stop()
    assert not os.path.exists(os.path.dirname(path) + "/ws-sandbox.%d" % b.pid)


def test_rpc_memory_bound_per_command(rpc):
    need_memory_cgroup()
    s = rpc("--limit-mem", "512m")
    w = s.ws()
    info = w.request({"type": "info"})
    assert info["server"]["limits"]["sandbox"]["mem_bytes"] == 512 * MIB, info
    r = w.exec(argv=[PY, "-c", THREE_CHILDREN, "300"])
    assert r["exitCode"] == 128 + signal.SIGKILL or "-9" in r["stdout"].split(), r
    r = w.exec(argv=[PY, "-c", THREE_CHILDREN, "100"])
    assert r["stdout"].split() == ["0", "0", "0"], r


# --- the --isolate user window -------------------------------------------------

def test_isolate_user_command_never_dumpable_before_exec(tmp_path):
    """As root with --isolate user, the user namespace's maps are written
    by a helper that stays root: the command never makes itself dumpable
    (PR_SET_DUMPABLE) while it holds a copy of its parent's memory, and
    the maps are written by another process than the one that execs."""
    strace = shutil.which("strace")
    if not strace:
        pytest.skip("strace is not installed")
    out = str(tmp_path / "trace")
    r = subprocess.run([strace, "-f", "-qq", "-o", out, "-e", "trace=prctl,openat,execve",
                        need(SANDBOX_RUN), "--isolate", "user", "--", "true"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    trace = open(out).read().splitlines()
    assert not [l for l in trace if "PR_SET_DUMPABLE" in l], trace
    writers = {l.split()[0] for l in trace if '"uid_map"' in l or "/uid_map" in l}
    execs = {l.split()[0] for l in trace if 'execve("/usr/bin/true"' in l}
    assert writers and execs and not writers & execs, trace
