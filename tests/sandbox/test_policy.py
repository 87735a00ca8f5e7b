"""Policy files (--policy): layered over the profile, checked line by line,
and `--check` shows what a policy compiles to."""

import subprocess

import pytest

from conftest import ROOT, SANDBOX_RUN, SIGSYS_EXIT, need, probe, run


@pytest.fixture
def policy(tmp_path):
    def write(text):
        p = tmp_path / "policy"
        p.write_text(text)
        return str(p)
    return write


def test_kill_rule_kills_with_sigsys(policy):
    f = policy("# kill on getpgrp\nkill getpgrp\n")
    status, out, _ = probe(["--policy", f], "getpgrp")
    assert status == SIGSYS_EXIT and out == ""
    assert probe([], "getpgrp")[:2] == (0, "ok")


def test_deny_rule_with_errno(policy):
    f = policy("deny getppid EACCES   # a comment after a rule\n")
    assert probe(["--policy", f], "getppid")[:2] == (0, "EACCES")


def test_deny_rule_default_errno_is_eperm(policy):
    f = policy("deny getppid\n")
    assert probe(["--policy", f], "getppid")[:2] == (0, "EPERM")


def test_deny_rule_numeric_errno_and_call(policy):
    f = policy("\tdeny 110 38\r\n")  # getppid, ENOSYS; a tab and CRLF
    assert probe(["--policy", f], "getppid")[:2] == (0, "ENOSYS")


def test_allow_rule_overrides_the_profile(policy):
    f = policy("allow keyctl\n")
    assert probe(["--policy", f], "keyctl")[:2] == (0, "ok")
    assert probe(["--policy", f], "add_key")[:2] == (0, "EPERM")


def test_policy_over_profile_none_filters_only_its_rules(policy):
    f = policy("deny keyctl\n")
    assert probe(["--profile", "none", "--policy", f], "keyctl")[:2] == (0, "EPERM")
    # as root: syslog needs CAP_SYSLOG
    assert probe(ROOT + ["--profile", "none", "--policy", f], "syslog")[:2] == (0, "ok")


def test_file_rule_replaces_argument_rules(policy):
    """`deny ioctl` replaces the TIOCSTI rule: every ioctl is denied."""
    f = policy("deny ioctl ENOTTY\n")
    r = run(["--policy", f], ["stty", "-a"])
    assert r.returncode != 0


def test_rules_for_calls_absent_here_are_accepted(policy):
    f = policy("deny stime\nkill umount\n")
    assert run(["--policy", f], ["true"]).returncode == 0


@pytest.mark.parametrize("text, message", [
    ("allow read\npermit write\n", ":2: unknown action 'permit'"),
    ("deny no_such_call\n", ":1: unknown system call 'no_such_call'"),
    ("deny read EWHAT\n", ":1: unknown errno 'EWHAT'"),
    ("deny read 4095\n", ":1: unknown errno '4095'"),
    ("deny read 0\n", ":1: unknown errno '0'"),
    ("\n\nallow read write\n", ":3: expected 'allow SYSCALL'"),
    ("kill\n", ":1: expected 'kill SYSCALL'"),
    ("deny read EPERM extra\n", ":1: expected 'deny SYSCALL [ERRNO]'"),
    ("deny ptrace\n# again\nallow ptrace\n", ":3: 'ptrace' already has a rule on line 1"),
    ("allow " + "x" * 300 + "\n", ":1: line longer than 256 bytes"),
    ("deny 1024\n", ":1: unknown system call '1024'"),
])
def test_bad_policy_line_numbered_usage_error(policy, text, message):
    f = policy(text)
    r = run(["--policy", f], ["true"])
    assert r.returncode == 100
    assert r.stderr.count("\n") == 1 and (f + message) in r.stderr, r.stderr


def test_missing_policy_file_is_a_usage_error(tmp_path):
    r = run(["--policy", str(tmp_path / "nope")], ["true"])
    assert r.returncode == 100 and "No such file" in r.stderr


def test_check_prints_the_rules(policy):
    f = policy("kill execveat\n")
    r = subprocess.run([need(SANDBOX_RUN), "--profile", "nonet", "--policy", f, "--check"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert "deny ptrace EPERM" in lines
    assert "deny clone3 ENOSYS" in lines
    assert "kill execveat" in lines
    assert any(line.startswith("deny socket EPERM  # when arg0 != 1") for line in lines)
    assert any(line.startswith("deny ioctl EPERM  # when arg1 & 0xffffffff == 0x5412")
               for line in lines)


@pytest.mark.parametrize("options", [
    ["--profile", "nosuch"], ["--cpu", "x"], ["--as", "12q"], ["--nofile", "2"],
    ["--timeout", "-1"], ["--bogus"],
])
def test_bad_options_are_usage_errors(options):
    r = run(options, ["true"])
    assert r.returncode == 100 and r.stderr.startswith("ws-sandbox-run: "), r.stderr


def test_no_command_is_a_usage_error():
    r = subprocess.run([need(SANDBOX_RUN)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 100 and "no command" in r.stderr


def test_help():
    r = subprocess.run([need(SANDBOX_RUN), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--policy FILE" in r.stdout
