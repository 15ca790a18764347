"""Several reductions in one expression: each is its own (issue 17).

Every case is checked against plain NumPy on the whole arrays, written out here by hand:
nothing is shared with the expander. The bug these guard against: two ``sum(...)`` in one
expression named their nodes alike, and the second silently became the first."""

from __future__ import annotations

import numpy as np
import pytest

from dfc.ir.interp import run_numpy
from dfc.lang import load_spec_text
from dfc.ops.random import uniform01
from dfc.passes import compile_spec

N, P = 8, 2


def rand(seed: int, n: int = N) -> np.ndarray:
    """The spec's `random: uniform` input, by its definition (element k: uniform01(k, seed))."""
    return uniform01(np.arange(n), seed)


A, B = rand(1), rand(2)
ROWS = np.stack([rand(3, N * N)]).reshape(N, N)


QUEUES = {
    "dots": "  dots: {on: reducer, reduce: {op: sum, broadcast: worker}}",
    "tops": "  tops: {on: reducer, reduce: {op: max, broadcast: worker}}",
}


def spec(steps: str = "", scalars: str = "") -> str:
    used = [q for name, q in QUEUES.items() if f"via: {name}" in steps + scalars]
    queues = "\n".join(["queues:", *used]) if used else ""
    return f"""
dfc: 1
name: reductions
params: {{N: {N}, P: {P}}}
cluster: {{worker: {{tasks: 2}}, reducer: {{tasks: 1}}}}
arrays:
  a: {{shape: [N], dtype: float64, tile: [N/P], init: {{random: uniform, seed: 1}}, output: true}}
  b: {{shape: [N], dtype: float64, tile: [N/P], init: {{random: uniform, seed: 2}}, output: true}}
  M: {{shape: [N, N], dtype: float64, tile: [N/P, N/P], init: {{random: uniform, seed: 3}}}}
  y: {{shape: [N], dtype: float64, tile: [N/P], init: zeros, output: true}}
{queues}
{scalars}
loop:
  max: 1
  steps:
{steps}
    - {{for: {{i: P}}, update: {{"y[i]": "y[i] + w"}}}}
"""


def run_w(text: str) -> float:
    res = run_numpy(compile_spec(load_spec_text(text.encode(), "reductions.yaml")))
    y = res.arrays["y"]
    assert np.all(y == y[0]), y
    return float(y[0])


def let(expr: str, via: str | None = "dots") -> str:
    if via is None:  # computed where it is needed, no queue
        return f'    - {{let: w, value: "{expr}"}}'
    return f'    - {{let: w, reduce: "{expr}", via: {via}}}'


TILES = [slice(0, N // P), slice(N // P, N)]

LETS = [
    # (expression, via, NumPy on the whole arrays)
    ("sum(dot(a[i], a[i])) / sum(dot(b[i], b[i]))", "dots", A @ A / (B @ B)),
    ("sum(dot(a[i], a[i])) / sum(dot(b[i], b[i]))", None, A @ A / (B @ B)),
    ("sum(dot(a[i], a[i])) + sum(dot(b[i], b[i]))", "dots", A @ A + B @ B),
    ("sum(dot(a[i], a[i])) - sum(dot(b[j], b[j]))", "dots", A @ A - B @ B),
    ("sum(dot(a[i], b[i])) * sum(dot(a[j], a[j])) - sum(dot(b[k], b[k]))", "dots", (A @ B) * (A @ A) - B @ B),
    (
        "max(dot(a[i], a[i])) / max(dot(b[i], b[i]))",
        "tops",
        max(A[t] @ A[t] for t in TILES) / max(B[t] @ B[t] for t in TILES),
    ),
    # via changes no value: a reduction of another op than the queue's is computed locally
    ("sum(dot(a[i], a[i])) / sum(dot(b[i], b[i]))", "tops", A @ A / (B @ B)),
    ("sum(dot(a[i], a[i])) / max(dot(b[i], b[i]))", "dots", A @ A / max(B[t] @ B[t] for t in TILES)),
    (
        "max(dot(a[i], a[i])) - min(dot(b[i], b[i]))",
        None,
        max(A[t] @ A[t] for t in TILES) - min(B[t] @ B[t] for t in TILES),
    ),
    (
        "sum(max(a[i])) + min(min(b[j])) + max(sum(a[k]))",
        None,
        # over a free index the terms combine elementwise: max(a[i]) is a tile
        np.maximum(A[TILES[0]], A[TILES[1]]).sum() + B.min() + (A[TILES[0]] + A[TILES[1]]).max(),
    ),
    # a sum inside a sum: the inner one binds its own index j, the outer one i
    ("sum(dot(a[i], a[i]) * sum(dot(b[j], b[j])))", "dots", (A @ A) * (B @ B)),
    ("sum(dot(a[i], a[i]) + sum(dot(b[j], b[j])))", None, A @ A + P * (B @ B)),
    # the inner sum rebinds i: sum over i of (a_i . a_i + b . b)
    ("sum(dot(a[i], a[i]) + sum(dot(b[i], b[i])))", "dots", A @ A + P * (B @ B)),
    # the inner sum binds i and j (both written inside it), the outer one its own i
    (
        "sum(dot(a[i], b[i]) * sum(dot(a[j], b[i])))",
        "dots",
        (A @ B) * ((A[TILES[0]] + A[TILES[1]]) @ (B[TILES[0]] + B[TILES[1]])),
    ),
    ("sum(sum(M[i, j]))", None, ROWS.sum()),
    ("sum(dot(a[i], a[i])) / sum(sum(M[i, j]))", "dots", A @ A / ROWS.sum()),
]


@pytest.mark.parametrize("expr,via,want", LETS, ids=[f"{e} via {v}" for e, v, _ in LETS])
def test_let_with_several_reductions(expr, via, want):
    assert run_w(spec(let(expr, via))) == pytest.approx(want, rel=1e-12)


SCALAR_INITS = [
    ("sum(dot(a[i], a[i])) / sum(dot(b[i], b[i]))", "dots", A @ A / (B @ B)),
    ("sum(dot(a[i], a[i])) / sum(dot(b[j], b[j]))", None, A @ A / (B @ B)),
    ("sum(dot(a[i], a[i])) + sum(dot(b[i], b[i]))", "dots", A @ A + B @ B),
    (
        "max(dot(a[i], a[i])) - max(dot(b[i], b[i]))",
        "tops",
        max(A[t] @ A[t] for t in TILES) - max(B[t] @ B[t] for t in TILES),
    ),
]


@pytest.mark.parametrize("expr,via,want", SCALAR_INITS, ids=[f"{e} via {v}" for e, v, _ in SCALAR_INITS])
def test_scalar_init_with_several_reductions(expr, via, want):
    v = f", via: {via}" if via else ""
    scalars = f'scalars:\n  s: {{init: "{expr}"{v}}}'
    assert run_w(spec('    - {let: w, value: "s"}', scalars)) == pytest.approx(want, rel=1e-12)


def test_two_lets_and_a_scalar_through_one_queue():
    scalars = 'scalars:\n  s: {init: "sum(dot(a[i], b[i])) + sum(dot(b[i], b[i]))", via: dots}'
    steps = "\n".join(
        [
            '    - {let: u, reduce: "sum(dot(a[i], a[i])) * sum(dot(b[j], b[j]))", via: dots}',
            '    - {let: w, reduce: "u / sum(dot(a[i], b[i])) + s", via: dots}',
        ]
    )
    want = (A @ A) * (B @ B) / (A @ B) + (A @ B) + B @ B
    assert run_w(spec(steps, scalars)) == pytest.approx(want, rel=1e-12)
