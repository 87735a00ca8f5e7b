"""The commands' user (docs/security.md, "Who a command runs as"): as root,
ws-sandbox-run runs commands as the dedicated user ws-exec unless told
otherwise; that user cannot reach its caller (files, /proc, signals); a
pids cgroup bounds a command's processes even when it keeps root. Each
escape succeeds with --run-as-self (the old behaviour) and fails under the
defaults."""

import os
import subprocess
import tempfile

import pytest

from conftest import COMMAND_USER, PY, ROOT, SANDBOX_RUN, need, run

# What a command tries against its parent (ws-sandbox-run here, ws-rpc in
# test_rpc_user.py): its environment, its memory, a signal.
REACH_PARENT = r"""
import os, sys
ppid = os.getppid()
mark = sys.argv[1].encode()
out = []
try:
    with open("/proc/%d/environ" % ppid, "rb") as f:
        out.append("environ-read" if mark in f.read() else "environ-nomark")
except OSError:
    out.append("environ-refused")
try:
    os.close(os.open("/proc/%d/mem" % ppid, os.O_RDWR))
    out.append("mem-open")
except OSError:
    out.append("mem-refused")
try:
    os.kill(ppid, 0)
    out.append("signal-sent")
except OSError:
    out.append("signal-refused")
print(" ".join(out))
"""


def test_commands_run_as_the_dedicated_user_by_default():
    r = run([], ["id", "-un"])
    assert (r.returncode, r.stdout) == (0, COMMAND_USER + "\n"), r.stderr
    r = run(["--check"], [])
    assert "# user %s" % COMMAND_USER in r.stdout.splitlines(), r.stdout


def test_run_as_self_keeps_root_and_warns():
    r = run(ROOT, ["id", "-u"])
    assert r.stdout == "0\n" and "runs as root" in r.stderr, r.stderr


def test_run_as_and_run_as_self_exclude_each_other():
    r = run(ROOT + ["--run-as", "nobody"], ["true"])
    assert r.returncode == 100 and "exclude" in r.stderr, r.stderr


@pytest.fixture
def passwd_without_user(tmp_path):
    """A copy of /etc/passwd without the commands' user, to bind over the
    real one in a mount namespace of the test's own."""
    with open("/etc/passwd") as f:
        lines = [l for l in f if not l.startswith(COMMAND_USER + ":")]
    p = tmp_path / "passwd"
    p.write_text("".join(lines))
    return str(p)


def without_user(passwd, argv, **kw):
    """argv with the commands' user missing (its own mount namespace)."""
    script = 'mount --bind "$0" /etc/passwd && exec "$@"'
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           passwd] + argv, capture_output=True, text=True, timeout=30, **kw)


def test_missing_dedicated_user_is_a_usage_error_naming_it(passwd_without_user):
    # 100, not 111: a supervisor must not retry what only an operator can fix
    r = without_user(passwd_without_user, [need(SANDBOX_RUN), "--", "true"])
    assert r.returncode == 100, (r.returncode, r.stderr)
    assert "'%s', which does not exist" % COMMAND_USER in r.stderr
    assert "useradd --system" in r.stderr and "--run-as" in r.stderr
    # an operator who asked for root still runs
    r = without_user(passwd_without_user, [need(SANDBOX_RUN), "--run-as-self", "--", "true"])
    assert r.returncode == 0, r.stderr


def test_escape_read_a_root_only_file(shared_dir):
    """A file of the caller's, mode 0600 (a token file): root reads it, the
    commands' user does not."""
    secret = os.path.join(shared_dir, "token")
    with open(secret, "w") as f:
        f.write("s3cret\n")
    os.chmod(secret, 0o600)
    assert run(ROOT + ["--profile", "none"], ["cat", secret]).stdout == "s3cret\n"
    r = run([], ["cat", secret])
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stdout


def test_escape_reach_the_parent_environ_memory_and_signal():
    """The parent's environment (where a token may be), /proc/PPID/mem
    read-write, and a signal: all work for a root command without a filter,
    none for the default user."""
    mark = "WS_SANDBOX_TEST_SECRET=%s" % os.urandom(8).hex()
    env = dict(os.environ)
    env[mark.split("=")[0]] = mark.split("=")[1]
    r = run(ROOT + ["--profile", "none"], [PY, "-c", REACH_PARENT, mark], env=env)
    assert r.stdout.split() == ["environ-read", "mem-open", "signal-sent"], r.stdout + r.stderr
    r = run([], [PY, "-c", REACH_PARENT, mark], env=env)
    assert r.stdout.split() == ["environ-refused", "mem-refused", "signal-refused"], \
        r.stdout + r.stderr


def test_standard_pipes_reopen_by_path_as_the_user():
    """`echo x > /dev/stderr` reopens the pipe the caller made (root's):
    it is handed to the user first."""
    r = subprocess.run([need(SANDBOX_RUN), "--", "sh", "-c",
                        "echo out > /dev/stdout; echo err > /dev/stderr"],
                       capture_output=True, text=True, timeout=10)
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n")


FORK_LOOP = r"""
import os, time
pids = []
try:
    for i in range(64):
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("stopped", len(pids), e.errno)
else:
    print("unstopped", len(pids))
"""


def pids_cgroup():
    r = run(["--check"], [])
    for line in r.stdout.splitlines():
        if line.startswith("# pids cgroup "):
            rest = line[len("# pids cgroup "):]
            return None if rest.startswith("none") else rest
    return None


def test_escape_more_processes_than_nproc_as_root():
    """Root is exempt from RLIMIT_NPROC: without a bound (--nproc 0) a root
    command forks 64 processes; with --nproc 12 its pids cgroup stops it."""
    if not pids_cgroup():
        pytest.skip("no writable pids cgroup here (docs/security.md: the fallback)")
    r = run(ROOT + ["--nproc", "0", "--timeout", "20"], [PY, "-c", FORK_LOOP], timeout=60)
    assert r.stdout.split()[0] == "unstopped", r.stdout + r.stderr
    r = run(ROOT + ["--nproc", "12", "--timeout", "20"], [PY, "-c", FORK_LOOP], timeout=60)
    word, count, err = r.stdout.split()
    assert word == "stopped" and int(count) < 12 and int(err) == 11, r.stdout  # EAGAIN


def test_pids_cgroups_are_removed():
    """The command's own cgroup and the sandbox's are gone when
    ws-sandbox-run returns."""
    cg = pids_cgroup()
    if not cg:
        pytest.skip("no writable pids cgroup here")
    # the directory the sandboxes' cgroups are made in (this process's own)
    where = os.path.dirname(cg)
    assert os.path.isdir(where), where
    r = run([], ["grep", ":pids:", "/proc/self/cgroup"])
    own = r.stdout.strip().split(":", 2)[2]  # /[...]/ws-sandbox.PID/cPID
    sandbox, command = own.split("/")[-2:]
    assert sandbox.startswith("ws-sandbox.") and command.startswith("c"), own
    assert not os.path.exists(os.path.join(where, sandbox, command))
    assert not os.path.exists(os.path.join(where, sandbox))


def test_policy_fifo_is_refused_not_waited_on(tmp_path):
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    r = run(["--policy", fifo], ["true"], timeout=10)
    assert r.returncode == 100 and "not a regular file" in r.stderr, r.stderr


def test_policy_directory_is_a_usage_error():
    d = tempfile.mkdtemp()
    try:
        r = run(["--policy", d], ["true"])
        assert r.returncode == 100 and "not a regular file" in r.stderr, r.stderr
    finally:
        os.rmdir(d)


def test_timeout_below_a_millisecond_is_refused():
    """0.0001 s would round to 0 ms, which means "no timeout"."""
    r = run(["--timeout", "0.0001"], ["true"])
    assert r.returncode == 100 and "--timeout" in r.stderr, r.stderr
    assert run(["--timeout", "0"], ["true"]).returncode == 0
    assert run(["--timeout", "0.001"], ["sleep", "5"]).returncode == 124
