"""Process helpers: timeouts scaled for valgrind, the environment and
command line a server runs with, sanitizer/valgrind log scans, running a
program to completion, free ports, and /proc inspection.

Every wait here has a timeout; timeouts grow under WS_VALGRIND=1.
"""

import os
import shutil
import socket
import subprocess
import time

VALGRIND = os.environ.get("WS_VALGRIND") == "1"
SCALE = 10.0 if VALGRIND else 1.0

# the exit codes of common/config.h
EXIT_OK = 0
EXIT_USAGE = 100
EXIT_SYSTEM = 111

SANITIZER_PATTERNS = (
    "ERROR: AddressSanitizer",
    "runtime error:",
    "LeakSanitizer",
    "ThreadSanitizer",
    "MemorySanitizer",
)


def t(seconds):
    """A timeout scaled for the current run (valgrind is ~10x slower)."""
    return seconds * SCALE


def wait_until(pred, timeout=10.0, what="condition", interval=0.02):
    """Poll pred() until it returns something true, and return that (a bounded
    wait on a state that has no event to wait on, not a readiness sleep)."""
    deadline = time.monotonic() + t(timeout)
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                                 % (t(timeout), what, last))
        time.sleep(interval)


# --------------------------------------------------------------------------
# starting programs

def clean_env(extra=None):
    """The test runner's environment without any server variable (WS_*,
    NOTIFY_SOCKET), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WS_") and k != "NOTIFY_SOCKET"}
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    if VALGRIND:
        # valgrind cannot run seccomp(2) (syscall 317): the server's own
        # seccomp filter must be off under it.
        env["WS_NO_SELF_SANDBOX"] = "1"
    if extra:
        env.update(extra)
    return env


def command(path, args, valgrind_log=None):
    """The command line for program `path`: under valgrind when WS_VALGRIND=1."""
    cmd = [path] + [str(a) for a in args]
    if VALGRIND:
        # an absolute path: tests may start the server with their own PATH
        vg = [shutil.which("valgrind") or "valgrind", "--error-exitcode=99",
              "--leak-check=full", "--errors-for-leak-kinds=definite", "--trace-children=no"]
        if valgrind_log:
            vg.append("--log-file=%s" % valgrind_log)
        cmd = vg + cmd
    return cmd


def sanitizer_findings(text):
    """The sanitizer or valgrind reports a log holds (a list of names)."""
    found = [p for p in SANITIZER_PATTERNS if p in text]
    if "ERROR SUMMARY:" in text and "ERROR SUMMARY: 0 errors" not in text:
        found.append("valgrind errors")
    return found


def run_once(path, args, env=None, timeout=10.0, tmp_path=None):
    """Run program `path` to completion (bad flags, --help...), stdin closed,
    in clean_env(env). Returns (returncode, stdout, stderr, valgrind_log_text)."""
    vlog = None
    if VALGRIND and tmp_path is not None:
        vlog = str(tmp_path / ("valgrind-%s-%d.log"
                               % (os.path.basename(path), time.monotonic_ns())))
    p = subprocess.run(command(path, args, vlog), stdin=subprocess.DEVNULL,
                       capture_output=True, env=clean_env(env), timeout=t(timeout))
    vtext = ""
    if vlog and os.path.exists(vlog):
        with open(vlog, errors="replace") as f:
            vtext = f.read()
    return (p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"),
            vtext)


def failed_exec_status(code):
    """The exit status a server reports for a child whose execve failed.
    Under valgrind (--trace-children=no) that child is still valgrind's when
    it calls _exit, and valgrind's --error-exitcode may replace its status."""
    return (code, 99) if VALGRIND else (code,)


def ensure_user(name):
    """Creates the system user `name` (no home, no login) unless it exists."""
    import pwd
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       check=True, timeout=30)


def raise_nofile():
    """Raises this process's descriptor limit to its hard limit; returns it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# ports

def free_port(host="127.0.0.1"):
    """A port nobody listens on at the moment (on loopback for a name)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if host not in ("127.0.0.1", "::1") and ":" not in host and not host[0].isdigit():
        host = "127.0.0.1"  # a name: any free loopback port will do
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_listening(port, host="127.0.0.1"):
    """True when a TCP connection to host:port succeeds."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------
# /proc

def proc_state(pid):
    """The state letter of pid, or None when it no longer exists."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[0]


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    s = proc_state(pid)
    return s is not None and s not in ("Z", "X")


def wait_gone(pids, seconds=5.0):
    """Waits up to `seconds` until none of pids is alive; True when so."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return not any(pid_alive(p) for p in pids)


def proc_children(ppid):
    """[(pid, state, comm)] of the processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        rp = stat.rfind(")")
        fields = stat[rp + 2:].split()
        if int(fields[1]) == ppid:
            comm = stat[stat.find("(") + 1:rp]
            out.append((int(d), fields[0], comm))
    return out


def processes_with_env(entry):
    """Pids of live (not zombie) processes whose environment holds the
    `NAME=value` bytes `entry`."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if entry in env.split(b"\0") and pid_alive(int(d)):
            found.append(int(d))
    return found


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_targets(pid):
    """[(fd, readlink target)] of pid's open descriptors, sorted."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append((int(fd), os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            pass
    return sorted(out)


def status_kib(pid, field):
    """A size of /proc/<pid>/status in KiB (VmRSS, VmHWM...; 0 when absent)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    """pid's resident set size in KiB (0 when /proc does not say)."""
    return status_kib(pid, "VmRSS")


def is_asan_build(path):
    """True when the binary at path links AddressSanitizer's runtime."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
