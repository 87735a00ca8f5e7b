"""Ordinary work still succeeds under the sandbox, and the isolation
options do what docs/security.md says."""

import http.server
import os
import subprocess
import threading

import pytest

from conftest import PY, ROOT, SANDBOX_RUN, need, run


def test_ls():
    r = run([], ["ls", "/"])
    assert r.returncode == 0 and "usr" in r.stdout.split()


def test_pipeline():
    r = run([], ["sh", "-c", "seq 1 1000 | sort -rn | head -1"])
    assert (r.returncode, r.stdout) == (0, "1000\n")


def test_sh_loop():
    r = run([], ["sh", "-c", "i=0; while [ $i -lt 500 ]; do i=$((i+1)); done; echo $i"])
    assert (r.returncode, r.stdout) == (0, "500\n")


def test_python_threads():
    """pthread_create works: clone3 answers ENOSYS and glibc falls back."""
    code = ("import threading\nout = []\n"
            "ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(8)]\n"
            "[t.start() for t in ts]; [t.join() for t in ts]\nprint(sum(out))")
    r = run([], [PY, "-c", code])
    assert (r.returncode, r.stdout) == (0, "140\n"), r.stderr


def test_python_subprocess_and_fork():
    code = "import subprocess; print(subprocess.check_output(['echo', 'hi']).decode())"
    r = run([], [PY, "-c", code])
    assert r.returncode == 0 and "hi" in r.stdout, r.stderr


def test_stdin_passes_through():
    r = subprocess.run([need(SANDBOX_RUN), "--", "tr", "a-z", "A-Z"], input="hello\n",
                       capture_output=True, text=True, timeout=10)
    assert r.stdout == "HELLO\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):
        type(self).hits += 1
        body = b"loopback-ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """An HTTP server on 127.0.0.1 (a free port), in a thread of the test."""
    _Handler.hits = 0
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield "http://127.0.0.1:%d/" % srv.server_address[1], _Handler
    srv.shutdown()
    srv.server_close()


def test_curl_to_loopback_under_default(http_server):
    url, handler = http_server
    r = run(["--profile", "default"], ["curl", "-sS", "--max-time", "5", url])
    assert r.returncode == 0 and r.stdout == "loopback-ok\n", r.stderr
    assert handler.hits == 1


def test_curl_to_loopback_fails_under_nonet(http_server):
    url, handler = http_server
    r = run(["--profile", "nonet"], ["curl", "-sS", "--max-time", "5", url])
    assert r.returncode != 0
    assert handler.hits == 0


def test_python_urllib_fails_under_nonet(http_server):
    url, handler = http_server
    code = "import urllib.request; print(urllib.request.urlopen(%r, timeout=5).read())" % url
    r = run(["--profile", "nonet"], [PY, "-c", code])
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    r = run(["--profile", "default"], [PY, "-c", code])
    assert r.returncode == 0 and "loopback-ok" in r.stdout
    assert handler.hits == 1


# --- --run-as -------------------------------------------------------------

def test_run_as_nobody_identity():
    r = run(["--run-as", "nobody"], ["id", "-u"])
    assert (r.returncode, r.stdout) == (0, "65534\n")
    r = run(["--run-as", "65534"], ["id", "-u"])
    assert (r.returncode, r.stdout) == (0, "65534\n")


def test_run_as_nobody_cannot_regain_root():
    code = ("import os\n"
            "for f in (lambda: os.setuid(0), lambda: os.setgid(0), lambda: os.seteuid(0)):\n"
            "    try: f(); print('regained')\n    except PermissionError: print('refused')")
    r = run(["--run-as", "nobody"], [PY, "-c", code])
    assert r.stdout.split() == ["refused"] * 3, r.stdout + r.stderr


def test_run_as_nobody_cannot_read_root_file(shared_dir):
    secret = os.path.join(shared_dir, "secret")
    with open(secret, "w") as f:
        f.write("root only\n")
    os.chmod(secret, 0o600)
    r = run(["--run-as", "nobody"], ["cat", secret])
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = run(ROOT, ["cat", secret])
    assert r.stdout == "root only\n"


def test_run_as_nobody_cannot_open_proc_mem_or_signal(sibling):
    code = ("import os, sys\npid = int(sys.argv[1])\n"
            "try: open('/proc/%d/mem' % pid, 'rb'); print('mem-open')\n"
            "except PermissionError: print('mem-refused')\n"
            "try: os.kill(pid, 0); print('signal-sent')\n"
            "except PermissionError: print('signal-refused')")
    r = run(["--run-as", "nobody"], [PY, "-c", code, str(sibling)])
    assert r.stdout.split() == ["mem-refused", "signal-refused"], r.stdout + r.stderr
    r = run(ROOT, [PY, "-c", code, str(sibling)])
    assert r.stdout.split() == ["mem-open", "signal-sent"], r.stdout + r.stderr


def test_run_as_unknown_user_is_a_usage_error():
    r = run(["--run-as", "ws-no-such-user"], ["true"])
    assert r.returncode == 100 and "no such user" in r.stderr


def test_run_as_root_refused():
    r = run(["--run-as", "root"], ["true"])
    assert r.returncode == 100 and "unprivileged" in r.stderr


# --- --isolate --------------------------------------------------------------

def test_isolate_pid_command_is_pid_1():
    r = run(["--isolate", "pid"], ["sh", "-c", "echo $$"])
    assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr


def test_isolate_pid_mount_private_proc():
    r = run(["--isolate", "pid,mount"], ["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
    assert r.returncode == 0 and int(r.stdout) <= 3, r.stdout


def test_isolate_pid_exit_status_and_signal_death():
    assert run(["--isolate", "pid"], ["sh", "-c", "exit 7"]).returncode == 7
    # PID 1 ignores signals it sends itself; a fault still ends it
    r = run(["--isolate", "pid"], [PY, "-c", "import ctypes; ctypes.string_at(0)"])
    assert r.returncode == 128 + 11


def test_isolate_net_only_its_own_loopback(http_server):
    url, handler = http_server
    r = run(["--isolate", "net"], ["curl", "-sS", "--max-time", "5", url])
    assert r.returncode != 0 and handler.hits == 0
    code = ("import socket\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
            "c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n"
            "c.sendall(b'x'); print(a.recv(1).decode())")
    r = run(["--isolate", "net"], [PY, "-c", code])
    assert (r.returncode, r.stdout) == (0, "x\n"), r.stderr
    r = run(["--isolate", "net"], ["cat", "/proc/net/dev"])
    ifaces = [line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]]
    assert ifaces == ["lo"], ifaces


def test_isolate_user_maps_only_own_ids(shared_dir):
    """In a user namespace root keeps uid 0 but loses its power over files
    of ids it has no mapping for."""
    theirs = os.path.join(shared_dir, "nobodys")
    with open(theirs, "w") as f:
        f.write("nobody's\n")
    os.chown(theirs, 65534, 65534)
    os.chmod(theirs, 0o600)
    r = run(ROOT + ["--isolate", "user"],
            ["sh", "-c", "cat /proc/self/uid_map; cat %s" % theirs])
    assert r.stdout.split()[:3] == ["0", "0", "1"], r.stdout
    assert "Permission denied" in r.stderr
    assert run(ROOT, ["cat", theirs]).stdout == "nobody's\n"


def test_isolate_everything_as_nobody():
    r = run(["--isolate", "net,pid,mount,user", "--run-as", "nobody"],
            ["sh", "-c", "id -u; echo $$; cat /proc/self/uid_map"])
    assert r.returncode == 0, r.stderr
    uid, pid, *umap = r.stdout.split()
    assert (uid, pid, umap) == ("65534", "1", ["65534", "65534", "1"])


def test_isolate_unknown_word_is_a_usage_error():
    r = run(["--isolate", "net,ipc"], ["true"])
    assert r.returncode == 100
