"""A network of its own for the local cluster.

TensorFlow's servers listen on every interface (``0.0.0.0``, fixed inside TensorFlow) and
have no authentication: anyone who reaches a port can open a session and run any op,
reading and writing the files of the user who runs dfc. So ``dfc run`` puts the whole
local run — client and servers — in a network namespace of its own, holding nothing but a
loopback interface: no process outside it, on this host or another, can reach a server.

Policy:

- As root, a new network namespace alone (root may make one). Otherwise a user namespace
  too, the user mapped to themself, which Linux grants without privileges where
  ``kernel.unprivileged_userns_clone`` / AppArmor allow it. The namespace's capabilities
  are dropped by executing dfc again (a non-root user loses them at ``execve``), so files
  are read and written with exactly the user's own rights.
- The attempt is first made in a forked child, so a kernel that refuses half-way (a user
  namespace granted, its capabilities withheld) never leaves dfc in a network without
  loopback.
- Where it is refused, dfc says so once, names the reason, and runs in the shared network:
  its servers then take their cluster description from their environment, not their
  command line (which ``ps`` shows every user), and that is all the protection left.
- ``DFC_PRIVATE_NETWORK=off`` turns it off (to attach a profiler to the servers, say);
  ``=user`` makes root take the unprivileged way too (the tests try both).

The state travels in ``DFC_NETWORK`` (``private:<namespace>`` or ``shared:<reason>``), so a
process can tell whether it runs in the namespace dfc made for it. Also a command:
``python -m dfc.runtime.private COMMAND...`` runs any command (a script using dfc's Python
API) in a private network.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
import sys

ENV = "DFC_NETWORK"
SWITCH = "DFC_PRIVATE_NETWORK"

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH22x"  # struct ifreq: the name, then the flags of the union (40 bytes)


def namespace() -> str:
    """This process's network namespace, as the kernel names it (``net:[4026531840]``)."""
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return "unknown"


def state() -> tuple[bool, str]:
    """(True, namespace) when this process runs in the private network dfc made for it;
    else (False, why not)."""
    value = os.environ.get(ENV, "")
    kind, _, detail = value.partition(":")
    if kind == "private" and detail == namespace():
        return True, detail
    if kind == "shared" and detail:
        return False, detail
    return False, "dfc was not started through `dfc run` (the Python API runs in the caller's network)"


def _unshare(flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(flags) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        _, flags = struct.unpack(_IFREQ, fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0)))
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _make(as_user: bool) -> None:
    """Move this process into a new network namespace with loopback up (raises OSError)."""
    uid, gid = os.getuid(), os.getgid()
    if as_user:
        _unshare(_CLONE_NEWUSER | _CLONE_NEWNET)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    else:
        _unshare(_CLONE_NEWNET)
    _loopback_up()


def _ways() -> list[bool]:
    """The ways to try, in order (False: a network namespace alone; True: with a user one)."""
    if os.geteuid() != 0 or os.environ.get(SWITCH, "").lower() == "user":
        return [True]
    return [False, True]


def _probe(as_user: bool) -> str | None:
    """Try ``_make`` in a forked child: None when it works, else the kernel's reason."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: try, report, and leave without running any Python cleanup
        os.close(read)
        try:
            _make(as_user)
            os.write(write, b"")
            code = 0
        except OSError as e:
            os.write(write, (e.strerror or str(e)).encode()[:200])
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        why = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    return None if os.waitstatus_to_exitcode(status) == 0 else (why or "refused")


def enter() -> str | None:
    """Move this process into a private network and record the outcome in ``DFC_NETWORK``.
    Returns how (``"net"``, or ``"user+net"`` when a user namespace came with it: the
    caller must then ``exec`` before it touches a file), or None when it could not (the
    reason is in ``state()``). The process must not run threads yet: the kernel gives a
    user namespace only to a single-threaded process."""
    why = _refused()
    if why is None:
        reasons = []
        for as_user in _ways():
            failed = _probe(as_user)
            if failed is None:
                _make(as_user)
                os.environ[ENV] = f"private:{namespace()}"
                return "user+net" if as_user else "net"
            reasons.append(f"{'a user and network' if as_user else 'a network'} namespace: {failed}")
        why = "the kernel refused " + "; ".join(reasons)
    os.environ[ENV] = f"shared:{why}"
    return None


def _refused() -> str | None:
    """Why not to try at all, or None."""
    if os.environ.get(SWITCH, "").lower() in ("0", "off", "no", "false"):
        return f"{SWITCH}={os.environ[SWITCH]} turned it off"
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux's"
    try:
        if len(os.listdir("/proc/self/task")) > 1:
            return "this process already runs threads"
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    """``python -m dfc.runtime.private COMMAND...``: run COMMAND in a private network."""
    if not argv:
        print("usage: python -m dfc.runtime.private COMMAND [ARG...]", file=sys.stderr)
        return 2
    if enter() is None:
        print(f"dfc: warning: the network is not private: {state()[1]}", file=sys.stderr)
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"dfc: cannot run {argv[0]}: {e.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
