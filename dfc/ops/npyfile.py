"""The header of a ``.npy`` file: shape, dtype, order, and where the data starts. Used by
validation (checks the file against the array) and by the lowering (the owner reads the
data; the client reads only this header)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..inputs import regular_size


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
