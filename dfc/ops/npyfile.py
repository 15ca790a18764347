"""The header of a ``.npy`` file: shape, dtype, order, and where the data starts. Used by
validation (checks the file against the array), by the lowering (the owner reads the
data; the client reads only this header), by the NumPy engine and by the oracle. Each
reader checks the file again (:func:`checked_header`): it may have changed since it was
validated (cut short while the run was starting), and that is the user's mistake to
hear about, at the array it initialises, never a traceback."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..diagnostics import Diagnostic, Pos, SpecError
from ..inputs import InputError, regular_size


@dataclass(frozen=True)
class NpyHeader:
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    offset: int


def read_header(path: str) -> NpyHeader:
    regular_size(path, "a .npy file")  # a FIFO or a device would block or never end
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        return NpyHeader(tuple(shape), dtype, bool(fortran), f.tell())


def data_mismatch(path: str, header: NpyHeader, size: int) -> str | None:
    """Why a file of ``size`` bytes does not hold exactly the data its header describes
    (none missing, none appended), or None."""
    want, have = math.prod(header.shape) * header.dtype.itemsize, size - header.offset
    if have == want:
        return None
    return (
        f"'{path}' has {have} bytes of data but its header says {header.dtype.name}{list(header.shape)}, {want} bytes"
    )


def load(path: str, shape: tuple[int, ...], dtype: str, pos: Pos) -> np.ndarray:
    """The array in ``path``, memory-mapped and read-only; see :func:`checked_header`."""
    checked_header(path, shape, dtype, pos)
    return np.load(path, mmap_mode="r", allow_pickle=False)


def checked_header(path: str, shape: tuple[int, ...], dtype: str, pos: Pos) -> NpyHeader:
    """The header of ``path`` once the file is seen to hold exactly ``dtype[shape]``,
    else SpecError at ``pos``, the array it initialises."""
    try:
        header = read_header(path)
        why = data_mismatch(path, header, regular_size(path, "a .npy file"))
    except InputError as e:
        why = str(e)
    except (OSError, EOFError, ValueError, SyntaxError) as e:  # a corrupt or foreign file
        why = f"'{path}' is not a readable .npy file ({e})"
    else:
        if header.shape != tuple(shape) or header.dtype != np.dtype(dtype) or header.fortran_order:
            why = f"'{path}' now holds {header.dtype.name}{list(header.shape)}, not {dtype}{list(shape)}"
    if why:
        raise SpecError(
            [
                Diagnostic(
                    pos,
                    "bad-file",
                    why,
                    "the file changed after the spec was validated: save it again with numpy.save, then run again",
                )
            ]
        )
    return header
