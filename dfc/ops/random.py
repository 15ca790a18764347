"""Counter-based random numbers: every element's value is a pure function of (seed,
stream, global element index), via the splitmix64 finaliser.

So a tile generated on its owner is the same whatever the tiling, the placement or the
engine: the TF lowering computes the very same uint64 arithmetic on the device (TF's
uint64 multiply, xor and shifts wrap exactly like NumPy's), and the differential tests
compare engines bit for bit on inputs.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
STREAM_STRIDE = 0xD1B54A32D192ED03


def offset(seed: int, stream: int) -> int:
    """The per-(seed, stream) constant added to the element index before mixing."""
    return ((seed + 1) * GOLDEN + stream * STREAM_STRIDE) % 2**64


#: The first stream of ``rand``: streams 0-3 are the arrays' random inits (normal draws
#: two streams per value, a complex one two values); ``rand`` in iteration n of the loop
#: (0: outside it) draws stream RAND_STREAM + n.
RAND_STREAM = 4


def rand_coords(origin: tuple, extent: tuple, step: tuple) -> list[np.ndarray]:
    """The global coordinates of a part of an array (per dimension: first, count, stride)."""
    rank = len(extent)
    return [
        (np.arange(n, dtype=np.int64) * s + o).reshape([-1 if k == d else 1 for k in range(rank)])
        for d, (o, n, s) in enumerate(zip(origin, extent, step))
    ]


def rand_values(seed: int, origin: tuple, extent: tuple, step: tuple, shape: tuple, iteration: int) -> np.ndarray:
    """``rand``: uniform float64 in [0, 1), one per element of the part of an array of
    ``shape``, from (seed, the element's global index, the iteration)."""
    flat = flat_index(rand_coords(origin, extent, step), shape)
    return np.broadcast_to(uniform01(flat, seed, RAND_STREAM + int(iteration)), extent).copy()


def splitmix64(index: np.ndarray, seed: int, stream: int = 0) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(offset(seed, stream))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX2)
        return z ^ (z >> np.uint64(31))


def uniform01(index: np.ndarray, seed: int, stream: int = 0) -> np.ndarray:
    """Uniform float64 in [0, 1) with 53 random bits."""
    return (splitmix64(index, seed, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def normal(index: np.ndarray, seed: int, stream: int = 0) -> np.ndarray:
    """Standard normal by Box-Muller from two independent uniform streams."""
    u1 = uniform01(index, seed, 2 * stream)
    u2 = uniform01(index, seed, 2 * stream + 1)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def tile_indices(
    shape: tuple[int, ...], kind: str, tile: tuple[int, ...], index: tuple[int, ...], grid: tuple[int, ...]
) -> list[np.ndarray]:
    """Global coordinates (one int64 array per dimension, broadcastable) of a tile."""
    if kind == "cyclic":
        return [np.arange(tile[0], dtype=np.int64) * grid[0] + index[0]]
    axes = []
    for d, (t, i) in enumerate(zip(tile, index)):
        r = np.arange(t, dtype=np.int64) + i * t
        axes.append(r.reshape([-1 if k == d else 1 for k in range(len(tile))]))
    return axes


def flat_index(coords: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    flat = np.zeros((), dtype=np.int64)
    for c, n in zip(coords, shape):
        flat = flat * n + c
    return flat


def spd_diagonal(params: Mapping, n: int) -> float:
    d = params.get("diagonal")
    return float(n if d is None else d)


def generate(dist: str, params: Mapping, coords: list[np.ndarray], shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values of a tile whose elements sit at ``coords`` of an array of ``shape``."""
    seed = int(params.get("seed", 0))
    is_complex = dtype.startswith("complex")
    if dist == "spd":  # (U + U^T)/2 + d*I, d = n by default: symmetric, diagonally dominant, SPD
        i, j = coords
        n = shape[0]
        u = 0.5 * (uniform01(i * n + j, seed) + uniform01(j * n + i, seed))
        out = u + np.where(i == j, spd_diagonal(params, n), 0.0)
    else:
        flat = flat_index(coords, shape)
        one = (lambda s: uniform01(flat, seed, s)) if dist == "uniform" else (lambda s: normal(flat, seed, s))
        out = one(0) + 1j * one(1) if is_complex else one(0)
        if dist == "uniform":
            lo, hi = float(params.get("low", 0.0)), float(params.get("high", 1.0))
            out = lo + (hi - lo) * out
        else:
            out = float(params.get("mean", 0.0)) + float(params.get("std", 1.0)) * out
    out = np.broadcast_to(out, np.broadcast_shapes(*[c.shape for c in coords]))
    return np.asarray(out).astype(dtype)


class TFRandom:
    """The same generator in TensorFlow ops, built on the owner device (``tf`` is passed in:
    importing this module never imports TensorFlow)."""

    def __init__(self, tf):
        self.tf = tf

    def splitmix(self, index, seed: int, stream: int):
        tf = self.tf
        u64 = lambda v: tf.constant(v, dtype=tf.uint64)  # noqa: E731
        z = tf.cast(index, tf.uint64) + u64(offset(seed, stream))
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(30))) * u64(MIX1)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(27))) * u64(MIX2)
        return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(31)))

    def rand(self, seed: int, origin: tuple, extent: tuple, step: tuple, shape: tuple, iteration):
        """As :func:`rand_values`; ``iteration`` may be a tensor (the loop's)."""
        tf = self.tf
        u64 = lambda v: tf.constant(v % 2**64, dtype=tf.uint64)  # noqa: E731
        flat = tf.zeros([], tf.int64)
        for d, (o, n, s) in enumerate(zip(origin, extent, step)):
            c = tf.reshape(tf.range(n, dtype=tf.int64) * s + o, [-1 if k == d else 1 for k in range(len(extent))])
            flat = flat * shape[d] + c
        stream = tf.cast(iteration, tf.uint64) + u64(RAND_STREAM)
        z = tf.cast(flat, tf.uint64) + (u64((seed + 1) * GOLDEN) + stream * u64(STREAM_STRIDE))
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(30))) * u64(MIX1)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(27))) * u64(MIX2)
        z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, u64(31)))
        bits = tf.bitwise.right_shift(z, u64(11))
        return tf.broadcast_to(tf.cast(bits, tf.float64) * (2.0**-53), list(extent))

    def uniform(self, index, seed: int, stream: int = 0):
        tf = self.tf
        bits = tf.bitwise.right_shift(self.splitmix(index, seed, stream), tf.constant(11, dtype=tf.uint64))
        return tf.cast(bits, tf.float64) * (2.0**-53)

    def normal(self, index, seed: int, stream: int = 0):
        tf = self.tf
        u1 = self.uniform(index, seed, 2 * stream)
        u2 = self.uniform(index, seed, 2 * stream + 1)
        return tf.sqrt(-2.0 * tf.math.log1p(-u1)) * tf.cos(2.0 * math.pi * u2)

    def tile_indices(self, kind: str, tile: tuple[int, ...], index: tuple[int, ...], grid: tuple[int, ...]):
        """As :func:`tile_indices`: a tile's global coordinates, one broadcastable tensor per dimension."""
        tf = self.tf
        if kind == "cyclic":
            return [tf.range(tile[0], dtype=tf.int64) * grid[0] + index[0]]
        out = []
        for d, (t, i) in enumerate(zip(tile, index)):
            r = tf.range(t, dtype=tf.int64) + i * t
            out.append(tf.reshape(r, [-1 if k == d else 1 for k in range(len(tile))]))
        return out

    def generate(
        self, dist: str, params: Mapping, coords: list, shape: tuple[int, ...], out_shape: tuple[int, ...], dtype
    ):
        """As :func:`generate`: the values at ``coords`` of an array of ``shape``, as a tensor of ``out_shape``."""
        tf = self.tf
        seed = int(params.get("seed", 0))
        if dist == "spd":
            i, j = coords
            n = shape[0]
            u = 0.5 * (self.uniform(i * n + j, seed) + self.uniform(j * n + i, seed))
            out = u + tf.where(
                tf.equal(i, j), tf.constant(spd_diagonal(params, n), tf.float64), tf.constant(0.0, tf.float64)
            )
        else:
            flat = tf.zeros([], tf.int64)
            for c, n in zip(coords, shape):
                flat = flat * n + c
            one = self.uniform if dist == "uniform" else self.normal
            # as generate: the (complex) value first, then one affine map
            out = tf.complex(one(flat, seed, 0), one(flat, seed, 1)) if dtype.is_complex else one(flat, seed, 0)
            if dist == "uniform":
                low = float(params.get("low", 0.0))
                offset, factor = low, float(params.get("high", 1.0)) - low
            else:
                offset, factor = float(params.get("mean", 0.0)), float(params.get("std", 1.0))
            out = tf.cast(offset, out.dtype) + tf.cast(factor, out.dtype) * out
        return tf.cast(tf.broadcast_to(out, out_shape), dtype)
