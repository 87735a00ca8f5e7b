"""Resource limits and clean-up through ws-sandbox-run: bombs stop at
their limit (every limit here is set low, every run has a timeout), and
nothing the command starts outlives it."""

import os
import time

from conftest import PY, alive, marked_env, marked_processes, run, wait_gone

FORK_LOOP = r"""
import os, sys, time
pids = []
try:
    for i in range(200):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("stopped", len(pids), e.errno)
else:
    print("unstopped", len(pids))
print(" ".join(map(str, pids)), flush=True)
"""


def test_fork_bomb_stopped_by_nproc():
    """As nobody with --nproc 12 a fork loop stops below 12 processes (EAGAIN),
    and every child is gone when ws-sandbox-run returns."""
    env, mark = marked_env()
    t0 = time.monotonic()
    r = run(["--run-as", "nobody", "--nproc", "12", "--timeout", "20"],
            [PY, "-c", FORK_LOOP], env=env, timeout=40)
    assert r.returncode == 0, r.stderr
    first, pids = r.stdout.splitlines()[:2]
    word, count, err = first.split()
    assert word == "stopped" and int(count) < 12 and int(err) == 11, first  # EAGAIN
    assert time.monotonic() - t0 < 15
    assert wait_gone([int(p) for p in pids.split()])
    assert marked_processes(mark) == []


def test_shell_fork_bomb_bounded_and_cleaned_up():
    """The classic shell fork bomb, as nobody with --nproc 24 and a 3 s
    timeout: it ends by the timeout (124) and leaves no process behind."""
    env, mark = marked_env()
    t0 = time.monotonic()
    r = run(["--run-as", "nobody", "--nproc", "24", "--timeout", "3", "--grace", "1"],
            ["sh", "-c", "b() { b | b & }; b; wait"], env=env, timeout=40)
    assert r.returncode in (0, 124), (r.returncode, r.stderr)
    assert time.monotonic() - t0 < 20
    deadline = time.monotonic() + 5
    while marked_processes(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marked_processes(mark) == []


def test_memory_bomb_stopped_by_address_space():
    grab = "b = bytearray(1 << 30); print('allocated')"
    r = run(["--as", "256m"], [PY, "-c", grab])
    assert r.returncode == 1 and "MemoryError" in r.stderr, (r.returncode, r.stderr)
    # the memory cgroup's default (1 GiB) would stop the 1 GiB it touches
    r = run(["--as", "4g", "--limit-mem", "2g"], [PY, "-c", grab])
    assert r.returncode == 0 and "allocated" in r.stdout, r.stderr


def test_disk_fill_stopped_by_file_size(shared_dir):
    f = os.path.join(shared_dir, "fill")
    r = run(["--fsize", "1m"], ["sh", "-c", "head -c 4m /dev/zero > %s" % f])
    # head dies of SIGXFSZ (25); sh reports it as 128 + 25
    assert r.returncode == 128 + 25, (r.returncode, r.stderr)
    assert os.path.getsize(f) == 1 << 20


def test_cpu_spin_stopped_by_cpu_limit():
    t0 = time.monotonic()
    r = run(["--cpu", "1"], ["sh", "-c", "while :; do :; done"], timeout=30)
    assert r.returncode == 128 + 24, (r.returncode, r.stderr)  # SIGXCPU
    assert time.monotonic() - t0 < 10


def test_cpu_limit_ignored_sigxcpu_gets_sigkill():
    """The hard limit is a second above the soft one: a command that ignores
    SIGXCPU is killed anyway."""
    spin = "import signal; signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"
    t0 = time.monotonic()
    r = run(["--cpu", "1"], [PY, "-c", spin], timeout=30)
    assert r.returncode == 128 + 9, (r.returncode, r.stderr)
    assert time.monotonic() - t0 < 10


def test_open_files_limited():
    grab = ("import os\nfds = []\ntry:\n    while True: fds.append(os.open('/dev/null', 0))\n"
            "except OSError as e: print(len(fds), e.errno)")
    r = run(["--nofile", "16"], [PY, "-c", grab])
    count, err = map(int, r.stdout.split())
    assert err == 24 and count < 16, r.stdout  # EMFILE


def test_core_dumps_off():
    r = run([], ["sh", "-c", "ulimit -c"])
    assert r.stdout.strip() == "0"


DAEMON = r"""
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(300)
        os._exit(0)
    os._exit(0)
time.sleep(0.3)
"""


def test_daemonized_grandchild_killed_when_command_ends():
    """A double-fork + setsid daemon escapes the process group; the
    subreaper still finds and kills it when the command exits."""
    env, mark = marked_env()
    r = run([], [PY, "-c", DAEMON], env=env, timeout=20)
    assert r.returncode == 0, r.stderr
    assert marked_processes(mark) == []


def test_daemonized_grandchild_killed_on_timeout():
    env, mark = marked_env()
    t0 = time.monotonic()
    r = run(["--timeout", "1"], ["sh", "-c", "setsid sleep 300 & echo $!; sleep 300"],
            env=env, timeout=30)
    assert r.returncode == 124 and "timed out" in r.stderr, (r.returncode, r.stderr)
    assert time.monotonic() - t0 < 10
    assert not alive(int(r.stdout.split()[0]))
    assert marked_processes(mark) == []


def test_background_job_killed_when_shell_exits():
    env, mark = marked_env()
    r = run([], ["sh", "-c", "sleep 300 & echo $!"], env=env)
    assert r.returncode == 0
    assert not alive(int(r.stdout.split()[0]))
    assert marked_processes(mark) == []


def test_timeout_sigterm_first_then_sigkill():
    """A command that traps SIGTERM gets SIGKILL after --grace."""
    t0 = time.monotonic()
    r = run(["--timeout", "0.5", "--grace", "0.5"],
            ["sh", "-c", "trap 'echo term' TERM; while :; do sleep 0.1; done"], timeout=20)
    assert r.returncode == 124
    assert "term" in r.stdout
    assert time.monotonic() - t0 < 5


def test_exit_status_passed_through():
    assert run([], ["sh", "-c", "exit 3"]).returncode == 3
    assert run([], ["sh", "-c", "kill -TERM $$"]).returncode == 128 + 15
    assert run([], ["true"]).returncode == 0


def test_command_not_found_127():
    r = run([], ["/nonexistent/ws-no-such-command"])
    assert r.returncode == 127 and "No such file" in r.stderr, r.stderr
    r = run([], ["/etc"])  # a directory: EACCES
    assert r.returncode == 126 and "Permission denied" in r.stderr, r.stderr
