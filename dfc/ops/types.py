"""Value types of the dataflow: tensors (scalars are rank 0) and the items of a queue."""

from __future__ import annotations

import math
from dataclasses import dataclass

DTYPES = ("float32", "float64", "complex64", "complex128", "int32", "int64")
ITEMSIZE = {"float32": 4, "float64": 8, "complex64": 8, "complex128": 16, "int32": 4, "int64": 8, "bool": 1}
REAL_OF = {"complex64": "float32", "complex128": "float64"}
COMPLEX_OF = {"float32": "complex64", "float64": "complex128"}


class OpTypeError(Exception):
    """An op was applied to values of the wrong shape or dtype. ``arg`` is the index of
    the offending argument when one can be blamed (for the caret)."""

    def __init__(self, message: str, hint: str = "", arg: int | None = None, code: str = "shape-mismatch"):
        super().__init__(message)
        self.message, self.hint, self.arg, self.code = message, hint, arg, code


@dataclass(frozen=True)
class TensorType:
    """A tensor's shape and element type. ``dtype=None`` is a plain number (a literal or a
    param) that takes the dtype of whatever it is combined with."""

    shape: tuple[int, ...] = ()
    dtype: str | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * ITEMSIZE.get(self.dtype or "float64", 8)

    def __str__(self) -> str:
        dt = self.dtype or "number"
        return f"{dt}[{', '.join(map(str, self.shape))}]" if self.shape else f"scalar {dt}"


@dataclass(frozen=True)
class ItemsType:
    """The items of a queue, as the task that pops them sees them."""

    item: TensorType
    count: int

    def __str__(self) -> str:
        return f"{self.count} items of {self.item}"


KIND = {"int32": 0, "int64": 0, "float32": 1, "float64": 1, "complex64": 2, "complex128": 2, "bool": -1}


def unify_dtype(a: TensorType, b: TensorType) -> str | None:
    """The dtype of combining ``a`` and ``b`` elementwise. Plain numbers adopt the other
    side's dtype; a scalar adopts a tensor's dtype when that is at least as general (int <
    float < complex); two tensors must have the same dtype (TensorFlow never converts
    implicitly, and neither does dfc)."""
    if a.dtype is None or a.dtype == b.dtype:
        return b.dtype
    if b.dtype is None:
        return a.dtype
    if a.rank == 0 and b.rank == 0:
        return max(a.dtype, b.dtype, key=lambda d: (KIND[d], ITEMSIZE[d]))
    if a.rank == 0 and KIND[a.dtype] <= KIND[b.dtype]:
        return b.dtype
    if b.rank == 0 and KIND[b.dtype] <= KIND[a.dtype]:
        return a.dtype
    raise OpTypeError(
        f"dtype mismatch: {a} and {b}",
        "declare both with the same dtype; dfc never converts implicitly",
        code="dtype-mismatch",
    )
