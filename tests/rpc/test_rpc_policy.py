"""The command policy (--allow-command / --deny-command): argv judged as
the absolute file that will run, looked up in the server's --command-path
and never the client's PATH; shell lines refused under an allowlist unless
--allow-command-shell; LD_* refused under an allowlist; info says whether a
policy applies, never its regexes."""

import json
import os
import stat

import pytest

import rpchelp

V = "2.0"
LS = os.path.realpath("/usr/bin/ls")
ID = os.path.realpath("/usr/bin/id")


def refused(m, rid):
    return m == {"type": "error", "id": rid, "error": "Invalid command"}


def evil_dir(tmp_path):
    """A directory (readable by any user) holding an `ls` that must never run."""
    d = tmp_path / "evil"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    p = d / "ls"
    p.write_text("#!/bin/sh\necho EVIL\n")
    p.chmod(0o755)
    return d


def test_a_shell_line_is_refused_under_an_allowlist(rpc):
    # the bypass: '^(ls|rm)( |$)' matched the start of "ls /x; id -un"
    s = rpc("--allow-command", "^(ls|rm)( |$)", "--rate-limit", "0")
    w = s.ws()
    for line in ("ls /x; id -un", "ls /"):
        assert refused(w.exec(id="c", command=line), "c")
    m = w.rpc("exec", {"command": "ls /"}, rid=1)
    assert m["error"] == {"code": -32004, "message": "Invalid command",
                          "data": "shell commands are refused under --allow-command: send argv"}
    assert s.children() == []


def test_allow_command_shell_matches_the_line_and_is_no_boundary(rpc):
    # asked for explicitly: the line is matched as text, which is why the docs
    # say it is not a boundary (this bypass is the documented behaviour)
    s = rpc("--allow-command", "^(ls|rm)( |$)", "--allow-command-shell", "--rate-limit", "0")
    w = s.ws()
    assert w.exec(command="ls /")["exitCode"] == 0
    assert refused(w.exec(id="c", command="id -un"), "c")
    r = w.exec(command="ls / >/dev/null; echo through")
    assert r["stdout"] == "through\n"


def test_argv_is_judged_as_the_resolved_absolute_path(rpc):
    s = rpc("--allow-command", "^%s$" % LS, "--rate-limit", "0")
    w = s.ws()
    r = w.exec(argv=["ls", "/"])
    assert r["exitCode"] == 0 and "usr\n" in r["stdout"]
    # an absolute path is judged after its symlinks are resolved
    assert w.exec(argv=["/bin/ls", "/"])["exitCode"] == 0
    assert w.exec(argv=["/usr/bin/../bin/ls", "/"])["exitCode"] == 0
    for argv in (["id"], ["/usr/bin/id"], ["./ls"], ["ls/"], ["/usr/bin/../../usr/bin/id"],
                 ["no-such-command-here"]):
        assert refused(w.exec(id="c", argv=argv), "c"), argv
    m = w.rpc("exec", {"argv": ["no-such-command-here"]}, rid=2)
    assert m["error"]["data"] == "not an executable file in the server's command path"
    m = w.rpc("exec", {"argv": ["id"]}, rid=3)
    assert m["error"]["data"] == "refused by the command policy"


def test_the_clients_path_does_not_choose_the_file(rpc, tmp_path):
    # the bypass: argv ["ls"] with PATH=/somewhere/evil ran that ls
    d = evil_dir(tmp_path)
    s = rpc("--allow-command", "^%s$" % LS, "--rate-limit", "0")
    w = s.ws()
    r = w.exec(argv=["ls", "/"], env={"PATH": str(d)})
    assert "EVIL" not in r["stdout"] and "usr\n" in r["stdout"], r
    # a path into that directory is refused, since it is not the allowed file
    assert refused(w.exec(id="c", argv=[str(d / "ls")]), "c")


def test_deny_sees_the_name_and_the_resolved_path(rpc, tmp_path):
    s = rpc("--deny-command", "(^|/)id$", "--rate-limit", "0")
    w = s.ws()
    for argv in (["id"], ["/usr/bin/id"], ["/bin/id"]):
        assert refused(w.exec(id="c", argv=argv), "c"), argv
    assert w.exec(argv=["ls", "/"])["exitCode"] == 0
    # a denylist alone still runs shell lines, matched as text
    assert w.exec(command="echo fine")["stdout"] == "fine\n"
    assert refused(w.exec(id="c", command="/usr/bin/id"), "c")


def test_command_path_chooses_where_names_are_found(rpc, tmp_path):
    d = tmp_path / "tools"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o755)
    tool = d / "hello"
    tool.write_text("#!/bin/sh\necho hello from tools\n")
    tool.chmod(0o755)
    s = rpc("--allow-command", "^%s/" % d, "--command-path", str(d), "--rate-limit", "0")
    w = s.ws()
    assert w.exec(argv=["hello"])["stdout"] == "hello from tools\n"
    # ls is not in this command path
    assert refused(w.exec(id="c", argv=["ls"]), "c")


@pytest.mark.parametrize("value", ["", "relative", "/usr/bin:", "/usr/bin::/bin", ":/bin"])
def test_bad_command_path_is_a_usage_error(binary, tmp_path, value):
    rc, _, err, _ = rpchelp.run_once(["--no-auth", "--command-path", value], tmp_path=tmp_path)
    assert rc == rpchelp.EXIT_USAGE and "command-path" in err, (rc, err)


def test_ld_variables_are_refused_under_an_allowlist(rpc):
    s = rpc("--allow-command", "^%s$" % LS, "--rate-limit", "0")
    w = s.ws()
    for name in ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"):
        assert refused(w.exec(id="c", argv=["ls"], env={name: "/tmp/x.so"}), "c"), name
    assert w.exec(argv=["ls", "/"], env={"LANG": "C"})["exitCode"] == 0
    # without a policy the environment is the client's to choose
    s2 = rpc("--rate-limit", "0")
    assert s2.ws().exec(argv=["true"], env={"LD_BIND_NOW": "1"})["exitCode"] == 0


def test_without_a_policy_argv_uses_the_commands_path(rpc, tmp_path):
    # unchanged: no policy, no lookup of ours (the client may run anything anyway)
    d = evil_dir(tmp_path)
    s = rpc("--rate-limit", "0")
    r = s.ws().exec(argv=["ls"], env={"PATH": str(d)})
    assert r["stdout"] == "EVIL\n"


def test_info_says_whether_a_policy_applies_not_its_regexes(rpc):
    allow, deny = "^/usr/bin/secret-allow$", "secret-deny"
    s = rpc("--allow-command", allow, "--deny-command", deny, "--rate-limit", "0")
    m = s.ws().request({"type": "info"})
    text = json.dumps(m)
    assert "secret-allow" not in text and "secret-deny" not in text
    assert m["server"]["limits"]["command_policy"] == {
        "allowlist": True, "denylist": True, "shell": False}
    s2 = rpc("--rate-limit", "0")
    assert s2.ws().request({"type": "info"})["server"]["limits"]["command_policy"] == {
        "allowlist": False, "denylist": False, "shell": True}
