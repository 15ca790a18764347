"""Writing results so that nothing is destroyed.

Policy:

- Every destination is checked before anything runs (``unwritable``, ``clashes``): a folder
  that does not exist or cannot be written, a file that is a folder, a destination that is
  one of the run's inputs (the spec, a profile, an ``.npy``) or another destination.
- Every file is written to a temporary file beside it (the same file system), flushed to
  the disk and renamed over the destination (a link's target, not the link): a full disk, a crash or Ctrl-C leaves the
  previous file whole and no half-written one. A group of files (the arrays of ``--out``)
  is renamed only once every one of them is written. Temporary files never outlive a
  failure. A new file gets the mode ``open`` would give it; a replaced one keeps its mode.
  What is not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written in place,
  never replaced; a FIFO nobody reads is an error, not a wait.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import IO, Callable, Iterable, Mapping


class OutputError(Exception):
    """A result could not be written; the previous file, if any, is intact."""


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _special(path: str) -> bool:
    """Whether ``path`` is something other than a regular file (a device such as /dev/null,
    a FIFO, a terminal): written in place, never replaced."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _write_in_place(path: str, fill: Callable[[IO[bytes]], object]) -> None:
    """Write into a device or FIFO as it is; a FIFO nobody reads is an error, not a hang."""
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as f:
        fill(f)


def write_files(files: Mapping[str, Callable[[IO[bytes]], object]]) -> None:
    """Write each ``path`` by calling its function on a binary file, all or none. A
    symbolic link is followed (the file it names is replaced, the link stays)."""
    temps: list[tuple[str, str]] = []
    path = ""
    try:
        for path, fill in files.items():
            if _special(path):
                _write_in_place(path, fill)
                continue
            path = os.path.realpath(path)
            fd, tmp = tempfile.mkstemp(
                dir=os.path.dirname(os.path.abspath(path)), prefix=f".{os.path.basename(path)}.", suffix=".part"
            )
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, _mode(path))
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; the previous file, if any, is intact") from None
    finally:
        for tmp, _ in temps:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_file(path: str, data: str | bytes) -> None:
    """Write ``data`` (text is UTF-8) to ``path``, replacing it whole or not at all."""
    raw = data.encode() if isinstance(data, str) else data
    write_files({path: lambda f: f.write(raw)})


def unwritable(path: str, folder: bool = False) -> str | None:
    """Why ``path`` (a file; with ``folder``, a folder made if missing) cannot be written."""
    if folder:
        if os.path.exists(path) and not os.path.isdir(path):
            return f"'{path}' is a file, not a folder"
        probe = os.path.abspath(path)
        while not os.path.exists(probe):  # the folder that will hold the new ones
            probe = os.path.dirname(probe)
        return None if os.access(probe, os.W_OK | os.X_OK) else f"cannot write into '{probe}'"
    if os.path.isdir(path):
        return f"'{path}' is a folder"
    if _special(path):  # /dev/null, /dev/stdout, a FIFO: written in place
        return None if os.access(path, os.W_OK) else f"cannot write to '{path}'"
    where = os.path.dirname(os.path.realpath(path))
    if not os.path.isdir(where):
        return f"no folder '{where}'"
    if not os.access(where, os.W_OK | os.X_OK):
        return f"cannot write into '{where}'"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"'{path}' is read-only"
    return None


def _same(a: str, b: str) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def clashes(destinations: Mapping[str, str], inputs: Iterable[str]) -> str | None:
    """Why the destinations (name -> path) cannot all be written: one would replace an input
    of the run, or two are the same file; None if they can."""
    inputs = [p for p in inputs if p]
    seen: list[tuple[str, str]] = []
    for name, path in destinations.items():
        for i in inputs:
            if _same(path, i):
                return f"{name} {path} is an input of this run ({i}): it would be overwritten"
        for other, p in seen:
            if _same(path, p):
                return f"{name} and {other} are the same file ({path})"
        seen.append((name, path))
    return None
