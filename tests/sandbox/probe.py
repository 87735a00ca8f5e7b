"""One escape attempt per run, for tests/sandbox: `python3 probe.py NAME [ARG]`
prints `ok` when the call succeeded, or the errno's name (EPERM, ENOSYS...)
when it failed, and exits 0 either way. The tests run it under
ws-sandbox-run, with its source passed through `python3 -c` so that any
user can run it.

Every probe is harmless when it succeeds: arguments are chosen so that the
kernel refuses the call for a reason of its own (a missing path, an unknown
file system, bad flags) or does nothing lasting. That is what lets the tests
run each probe under `--profile none` too and prove that, without the
filter, the call does not fail with the filter's errno.

System call numbers are x86_64's.
"""

import ctypes
import errno
import fcntl
import os
import socket
import struct
import sys
import termios

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
AT_FDCWD = -100
MISSING = b"/nonexistent-ws-sandbox-probe"


def arg(a):
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    if isinstance(a, int):
        return ctypes.c_long(a)
    return a


def syscall(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])
    return r, (ctypes.get_errno() if r == -1 else 0)


def result(r, e):
    return "ok" if r != -1 else errno.errorcode.get(e, str(e))


def clone_newuser():
    r, e = syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)  # the child, in its new user namespace
    if r > 0:
        os.waitpid(r, 0)
    return result(r, e)


def tiocsti():
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSTI, b"x")
        return "ok"
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))


def tioclinux():
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, 0x541C, b"\x02")  # TIOCLINUX, TIOCL_SETSEL
        return "ok"
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))


def tiocsetd():
    """Sets the line discipline to the one it has (N_TTY): harmless, yet the call
    that with ldisc_autoload loads n_gsm or n_hdlc for another number."""
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSETD, struct.pack("i", 0))
        return "ok"
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))


def sock(family, kind=socket.SOCK_STREAM):
    try:
        socket.socket(family, kind).close()
        return "ok"
    except OSError as ex:
        return errno.errorcode.get(ex.errno, str(ex.errno))


def userfaultfd_dev():
    """/dev/userfaultfd's USERFAULTFD_IOC_NEW makes the same descriptor as
    the userfaultfd call."""
    try:
        fd = os.open("/dev/userfaultfd", os.O_RDWR | os.O_CLOEXEC)
    except OSError as ex:
        return "open-" + errno.errorcode.get(ex.errno, str(ex.errno))
    r, e = syscall(16, fd, 0xAA00, os.O_CLOEXEC)  # ioctl
    os.close(fd)
    if r >= 0:
        os.close(r)
        return "ok"
    return result(r, e)


def personality_no_randomize():
    r, e = syscall(135, 0x0040000)  # ADDR_NO_RANDOMIZE
    if r != -1:
        syscall(135, 0)
    return result(r, e)


def personality_query():
    return result(*syscall(135, 0xFFFFFFFF))


def target(argv):
    return int(argv[0]) if argv else os.getppid()


PROBES = {
    # other processes
    "ptrace": lambda a: result(*syscall(101, 0x4206, target(a), 0, 0)),  # PTRACE_SEIZE
    "process_vm_readv": lambda a: result(*syscall(310, target(a), 0, 0, 0, 0, 0)),
    "kcmp": lambda a: result(*syscall(312, target(a), target(a), 0, 0, 0)),
    "pidfd_getfd": lambda a: result(*syscall(438, -1, 0, 0)),
    # namespaces
    "clone_newuser": lambda a: clone_newuser(),
    "clone3": lambda a: result(*syscall(435, 0, 0)),
    "unshare_user": lambda a: result(*syscall(272, CLONE_NEWUSER)),
    "setns": lambda a: result(*syscall(308, -1, 0)),
    # mounts
    "mount": lambda a: result(*syscall(165, b"none", b"/tmp", b"ws_no_such_fs", 0, 0)),
    "umount2": lambda a: result(*syscall(166, MISSING, 0)),
    "chroot": lambda a: result(*syscall(161, MISSING)),
    "pivot_root": lambda a: result(*syscall(155, MISSING, MISSING)),
    "open_tree": lambda a: result(*syscall(428, AT_FDCWD, MISSING, 0)),
    "fsopen": lambda a: result(*syscall(430, b"ws_no_such_fs", 0)),
    # the kernel itself
    "kexec_load": lambda a: result(*syscall(246, 0, 0, 0, 0xDEADBEEF)),
    "kexec_file_load": lambda a: result(*syscall(320, -1, -1, 0, 0, 0xDEADBEEF)),
    "reboot": lambda a: result(*syscall(169, 0, 0, 0, 0)),  # no magic: EINVAL
    "init_module": lambda a: result(*syscall(175, 0, 0, b"")),
    "finit_module": lambda a: result(*syscall(313, -1, b"", 0)),
    "delete_module": lambda a: result(*syscall(176, b"ws_no_such_module", 0)),
    "bpf": lambda a: result(*syscall(321, 5, 0, 0)),  # BPF_PROG_LOAD, no attr
    "perf_event_open": lambda a: result(*syscall(298, 0, 0, -1, -1, 0)),
    "userfaultfd": lambda a: result(*syscall(323, 0xFFFF)),
    "io_uring_setup": lambda a: result(*syscall(425, 0, 0)),
    # keyrings
    "keyctl": lambda a: result(*syscall(250, 0, -3, 0)),  # the session keyring's id
    "add_key": lambda a: result(*syscall(248, 0, 0, 0, 0, 0)),
    "request_key": lambda a: result(*syscall(249, 0, 0, 0, 0)),
    # the machine
    "settimeofday": lambda a: result(*syscall(164, 0, 0)),
    "clock_settime": lambda a: result(*syscall(227, 9999, 0)),
    "clock_adjtime": lambda a: result(*syscall(305, 9999, 0)),
    "adjtimex": lambda a: result(*syscall(159, 0)),
    "syslog": lambda a: result(*syscall(103, 10, 0, 0)),  # SYSLOG_ACTION_SIZE_BUFFER
    "iopl": lambda a: result(*syscall(172, 0)),
    "ioperm": lambda a: result(*syscall(173, 0, 0, 0)),
    "acct": lambda a: result(*syscall(163, MISSING)),
    "swapon": lambda a: result(*syscall(167, MISSING, 0)),
    "swapoff": lambda a: result(*syscall(168, MISSING)),
    "quotactl": lambda a: result(*syscall(179, 0, 0, 0, 0)),
    "sethostname": lambda a: result(*syscall(170, b"x" * 100, 100)),  # too long: EINVAL
    "setdomainname": lambda a: result(*syscall(171, b"x" * 100, 100)),
    "open_by_handle_at": lambda a: result(*syscall(304, -1, 0, 0)),
    # terminals
    "tiocsti": lambda a: tiocsti(),
    "tioclinux": lambda a: tioclinux(),
    "tiocsetd": lambda a: tiocsetd(),
    # sockets
    "socket_inet": lambda a: sock(socket.AF_INET),
    "socket_inet6": lambda a: sock(socket.AF_INET6),
    "socket_netlink": lambda a: sock(socket.AF_NETLINK, socket.SOCK_RAW),
    "socket_unix": lambda a: sock(socket.AF_UNIX),
    "socket_packet": lambda a: sock(socket.AF_PACKET, socket.SOCK_RAW),
    "socket_inet_raw": lambda a: sock(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC),
    "socket_inet6_raw": lambda a: sock(socket.AF_INET6, socket.SOCK_RAW),
    "socket_inet_packet": lambda a: sock(socket.AF_INET, 10),  # SOCK_PACKET
    "socket_vsock": lambda a: sock(40),  # AF_VSOCK
    # userfaultfd through the device
    "userfaultfd_dev": lambda a: userfaultfd_dev(),
    # what Docker's default profile also refuses
    "mbind": lambda a: result(*syscall(237, 0, 0, 0, 0, 0, 0)),
    "set_mempolicy": lambda a: result(*syscall(238, 0, 0, 0)),
    "get_mempolicy": lambda a: result(*syscall(239, 0, 0, 0, 0, 0)),
    "move_pages": lambda a: result(*syscall(279, 0, 0, 0, 0, 0, 0)),
    "migrate_pages": lambda a: result(*syscall(256, 0, 0, 0, 0)),
    "name_to_handle_at": lambda a: result(*syscall(303, AT_FDCWD, b"/", 0, 0, 0)),
    "modify_ldt": lambda a: result(*syscall(154, 0, 0, 0)),  # read: harmless
    "personality_no_randomize": lambda a: personality_no_randomize(),
    "personality_query": lambda a: personality_query(),
    "process_madvise": lambda a: result(*syscall(440, -1, 0, 0, 0, 0)),
    "open_tree_attr": lambda a: result(*syscall(467, AT_FDCWD, MISSING, 0, 0, 0)),
    # plain calls a policy file may deny or kill
    "getppid": lambda a: result(*syscall(110)),
    "getpgrp": lambda a: result(*syscall(111)),
}


def main():
    name = sys.argv[1]
    print(PROBES[name](sys.argv[2:]), flush=True)


if __name__ == "__main__":
    main()
