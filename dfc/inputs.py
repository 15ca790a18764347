"""Reading the files a user names, bounded before they are read.

Every file dfc reads on a user's word (a spec, a profile, the header of a ``.npy`` input)
goes through :func:`read_bounded`: it opens without blocking (a FIFO never hangs the open),
refuses anything but a regular file (``/dev/zero``, a FIFO, a socket, a directory), checks
the size the file system reports against a limit before reading a byte, and reads at
most one byte past the limit, so a file that grows while it is read is refused too.
"""

from __future__ import annotations

import os
import stat


class InputError(Exception):
    """A file that cannot be taken as input; the message says why, for a user."""


def _open_regular(path: str, what: str) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise InputError(f"no such file: '{path}'") from None
    except IsADirectoryError:
        raise InputError(f"'{path}' is a directory, not {what}") from None
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise InputError(f"'{path}' is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise InputError(f"'{path}' is {kind}, not {what}: dfc reads only regular files")
    return fd, st


def too_large(path: str, size: int, limit: int, what: str) -> InputError:
    return InputError(f"'{path}' is {size / 2**20:.1f} MiB; {what} may be at most {limit / 2**20:g} MiB")


def read_bounded(path: str, limit: int, what: str = "an input file") -> bytes:
    """The bytes of the regular file ``path``, if it holds at most ``limit`` of them."""
    fd, st = _open_regular(str(path), what)
    try:
        if st.st_size > limit:
            raise too_large(str(path), st.st_size, limit, what)
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise InputError(f"'{path}' grew past {limit / 2**20:g} MiB while it was read")
        return data
    except OSError as e:
        raise InputError(f"cannot read '{path}': {e.strerror}") from None
    finally:
        os.close(fd)


def regular_size(path: str, what: str = "an input file") -> int:
    """The size of the regular file ``path`` (refusing FIFOs, devices and directories)."""
    fd, st = _open_regular(str(path), what)
    os.close(fd)
    return st.st_size
