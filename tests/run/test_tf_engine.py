"""The TensorFlow engine on a real local cluster, checked against the NumPy engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dfc.ir.interp import run_numpy  # noqa: E402
from dfc.lang import load_spec, load_spec_text  # noqa: E402
from dfc.oracle import run_oracle  # noqa: E402
from dfc.passes import compile_spec  # noqa: E402
from dfc.runtime.tf_engine import run_tf  # noqa: E402
from dfc.runtime.verify import verify  # noqa: E402

from fuzz import disagreements  # noqa: E402
from gen import random_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SMALL = {
    "stream": ["MB=1", "reps=3"],
    "matmul": ["N=256", "T=64"],
    "cg": ["N=256", "shift=48"],
    "fft": ["N=1024", "P=4"],
}
pytestmark = pytest.mark.slow


def compare(spec, strategy="heft"):
    g = compile_spec(spec, strategy)
    got, want = run_tf(g, timeout=120), run_numpy(g)
    meaning = run_oracle(spec)  # shares nothing with the compiler that both engines run on
    assert not disagreements(meaning, got), disagreements(meaning, got)
    assert got.iterations_run == want.iterations_run
    for name, ref in want.arrays.items():
        tol = 1e-4 if ref.dtype in (np.float32, np.complex64) else 1e-9
        np.testing.assert_allclose(
            got.arrays[name], ref, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(ref)))), err_msg=name
        )
    return got


@pytest.mark.parametrize("name", sorted(SMALL))
def test_four_specs_match_the_numpy_engine_and_verify(name):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml", SMALL[name])
    got = compare(spec)
    v = verify(spec, got.arrays, got.scalars)
    assert v is not None and v.ok, v


# 6 in CI (a local cluster each, ~7 s); more with DFC_GEN_PROGRAMS=N
@pytest.mark.parametrize("seed", range(int(os.environ.get("DFC_GEN_PROGRAMS", "6"))))
def test_generated_programs_match_the_numpy_engine(seed):
    strategy = ("heft", "round-robin", "greedy-bytes", "manual")[seed % 4]
    compare(load_spec_text(random_spec(seed).encode(), f"gen{seed}.yaml"), strategy)


def test_dynamic_schedule_matches_and_verifies():
    text = (ROOT / "specs" / "matmul.yaml").read_text().replace("schedule: static", "schedule: dynamic")
    spec = load_spec_text(text.encode(), "matmul-dynamic.yaml", ["N=256", "T=64"])
    got = compare(spec)
    assert verify(spec, got.arrays, got.scalars).ok


def test_broadcast_is_a_second_queue():
    from dfc.lower import lower

    g = compile_spec(_cg_via("queue", ["N=64"]))
    ops = [o for o in lower(g).graph.get_operations() if "broadcast" in o.name]
    assert {o.type for o in ops} >= {"FIFOQueueV2", "QueueEnqueueManyV2", "QueueDequeueV2"}


def test_random_inits_match_numpy_for_every_dtype_and_distribution():
    """Inputs are the same numbers on both engines, whatever the dtype and parameters."""
    text = """dfc: 1
name: inits
cluster: {worker: {tasks: 2}}
arrays:
  a: {shape: [8, 6], dtype: complex128, tile: [4, 6], init: {random: normal, seed: 5, mean: 1.5, std: 2}}
  b: {shape: [12], dtype: complex64, tile: {cyclic: 3}, init: {random: uniform, seed: 6, low: -1, high: 3}}
  c: {shape: [6, 6], dtype: float64, tile: [3, 3], init: {random: spd, seed: 7}}
  d: {shape: [10], dtype: float32, tile: [5], init: {random: normal, seed: 8, mean: -2, std: 0.5}}
  e: {shape: [10], dtype: int64, init: {random: uniform, seed: 9, low: 0, high: 100}}
  out: {shape: [10], dtype: float32, tile: [5], output: true}
tasks:
  t: {for: {i: 2}, compute: "2 * d[i]", out: "out[i]"}
"""
    g = compile_spec(load_spec_text(text.encode(), "inits.yaml"))
    got, want = run_tf(g, timeout=120), run_numpy(g)
    for name, ref in want.arrays.items():
        np.testing.assert_allclose(got.arrays[name], ref, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize(
    "name, sets",
    [
        ("cg", ["N=256", "shift=48", "tol=1e-8", "iterations=60"]),  # leaves early, inside a chunk
        ("stream", ["MB=1", "reps=40"]),
        ("gen", ["seed=0"]),
    ],
)
def test_the_in_graph_loop_equals_one_run_per_iteration_bit_for_bit(name, sets):
    """The loop inside a tf.while_loop (chunks of iterations per session.run, `until`
    evaluated in the graph) against the lowering it replaced (one session.run per
    iteration), and both against the NumPy engine: the same arrays, bit for bit, and the
    same iteration count."""
    if name == "gen":
        seed = int(sets[0].split("=")[1])
        spec = load_spec_text(random_spec(seed).encode(), f"gen{seed}.yaml")
    else:
        spec = load_spec(ROOT / "specs" / f"{name}.yaml", sets)
    assert spec.loop is not None
    g = compile_spec(spec)
    graph, steps, want = run_tf(g, timeout=120), run_tf(g, timeout=120, loop="steps"), run_numpy(g)
    assert graph.iterations_run == steps.iterations_run == want.iterations_run > 1
    for k, v in steps.arrays.items():
        assert np.array_equal(graph.arrays[k], v, equal_nan=True), k
        np.testing.assert_allclose(graph.arrays[k], want.arrays[k], rtol=1e-6, atol=1e-6, err_msg=k)


def _cg_via(via: str, sets: list[str]):
    text = (ROOT / "specs" / "cg.yaml").read_text()
    changed = text.replace("broadcast: worker}", f"broadcast: worker, via: {via}}}")
    assert changed != text
    return load_spec_text(changed.encode(), f"cg-{via}.yaml", sets)


# round-robin: HEFT's plans (and greedy-bytes', which competes) put CG's partials on one
# device at these sizes (no exchange: local sums; in tests/unit/test_passes.py)
@pytest.mark.parametrize("workers, strategy", [(2, "round-robin"), (3, "round-robin")])
def test_all_reduces_match_the_numpy_engine_the_oracle_and_the_queue_form(workers, strategy):
    """reduce: {via: collective}: CG's dot products as all-reduces among the devices that
    hold the partials (TF's collective ops; a ring of 2, or 3), against the NumPy engine and
    the oracle (compare), and against the queue form it replaces, on TF."""
    sets = ["N=240", "shift=48", f"P={workers}", "tol=0", "iterations=30"]
    spec = _cg_via("collective", sets)
    g = compile_spec(spec, strategy)
    nodes = [d["node"] for d in g._node.values()]
    assert not [n for n in nodes if n.kind == "dequeue"]  # every reduction went collective
    rings = {len(n.data.members) for n in nodes if n.kind == "allreduce"}
    assert workers in rings, rings
    got = compare(spec, strategy)
    assert verify(spec, got.arrays, got.scalars).ok
    if workers == 2:  # the same all-reduces, one session.run per iteration: bit for bit
        steps = run_tf(g, timeout=120, loop="steps")
        assert all(np.array_equal(steps.arrays[k], v) for k, v in got.arrays.items())
    queue = run_tf(compile_spec(_cg_via("queue", sets), strategy), timeout=120)
    assert queue.iterations_run == got.iterations_run == 30
    for name, ref in queue.arrays.items():
        np.testing.assert_allclose(got.arrays[name], ref, rtol=1e-9, atol=1e-12, err_msg=name)


def test_two_lowerings_never_share_collective_keys():
    """A `dfc serve` server remembers each collective key's group and shape across
    sessions: every lowering offsets the plan's keys by a number of its own."""
    from dfc.lower import lower

    g = compile_spec(_cg_via("collective", ["N=240", "shift=48", "P=3"]), "round-robin")
    keys = []
    for _ in range(2):
        ops = [o for o in lower(g).graph.get_operations() if o.type == "CollectiveReduce"]
        assert len(ops) >= 3  # the members of one all-reduce at least
        keys.append({(o.get_attr("group_key"), o.get_attr("instance_key")) for o in ops})
    assert keys[0].isdisjoint(keys[1]), keys


# a sum of scaled sub-spectra (P=2; P=3 with blocks of X that cut rows), a matmul (P=16;
# P=5 cutting rows), a batch of FFTs (P=128, one block)
@pytest.mark.parametrize(
    "sets",
    [
        ["N=2**12", "P=2"],
        ["N=3*2**10", "P=3", "W=4"],
        ["N=2**12", "P=16", "W=8"],
        ["N=5*2**10", "P=5"],
        ["N=2**14", "P=128", "W=1"],
    ],
)
def test_fft_merged_in_blocks_matches_the_queue_form_and_numpy(sets):
    """specs/fft.yaml (fft_combine parts, one per block of X, the sub-spectra read as
    tiles) against the lowering it replaces (examples/fft_queue.yaml: a merger's queue and
    one fft_merge), both engines, and np.fft.fft of the whole vector."""
    spec = load_spec(ROOT / "specs" / "fft.yaml", sets)
    got = compare(spec)
    queue = load_spec(ROOT / "examples" / "fft_queue.yaml", [s for s in sets if not s.startswith("W=")])
    seed_form = run_tf(compile_spec(queue), timeout=120)
    n = spec.params["N"]
    want = np.fft.fft(got.arrays["x"])
    assert got.arrays["X"].shape == (n,)
    np.testing.assert_allclose(got.arrays["X"], want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    np.testing.assert_allclose(seed_form.arrays["X"], got.arrays["X"], rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_power_iteration_matches_the_numpy_engine_and_verifies():
    """specs/power.yaml (a let naming a loop variable, an output scalar) on TF against the
    NumPy engine and the oracle: the same iterations and eigenvalue."""
    spec = load_spec(ROOT / "specs" / "power.yaml", ["N=256"])
    got = compare(spec)
    want = run_oracle(spec)
    assert got.iterations_run == want.iterations_run > 1
    assert got.scalars["lam"] == pytest.approx(want.scalars["lam"], rel=1e-10)
    assert verify(spec, got.arrays, got.scalars).ok


def test_jacobi_matches_the_numpy_engine_and_numpys_solve():
    """specs/jacobi.yaml (an operator computed from element indices, sums of tile
    products over a free index, diag of a tile): TF against the NumPy engine and the
    oracle, and x against numpy.linalg.solve of the whole system."""
    spec = load_spec(ROOT / "specs" / "jacobi.yaml", ["N=256", "P=2"])
    got = compare(spec)
    assert got.iterations_run == run_oracle(spec).iterations_run > 10
    a, b = got.arrays["A"], got.arrays["b"]
    np.testing.assert_allclose(got.arrays["x"], np.linalg.solve(a, b), rtol=0, atol=1e-9 * np.abs(b).max())
    assert verify(spec, got.arrays, got.scalars).ok


def _heat(u: np.ndarray, steps: int, a: float) -> np.ndarray:
    """The explicit 5-point heat stencil on the whole grid, zero outside it."""
    for _ in range(steps):
        p = np.pad(u, 1)
        u = u + a * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * u)
    return u


def test_heat2d_matches_a_whole_array_stencil_on_every_engine():
    """specs/heat2d.yaml (halos as parts of neighbouring tiles joined with concat, a zero
    boundary outside the grid, an init computed from element indices) on TF, the NumPy
    engine and the oracle, against the stencil run on the whole zero-padded array."""
    spec = load_spec(ROOT / "specs" / "heat2d.yaml", ["N=96", "B=32", "W=3", "steps=8"])
    got = compare(spec)
    r = np.arange(96)
    hot = (abs(r - 48) < 12)[:, None] & (abs(r - 48) < 12)[None, :]
    u0 = np.where(hot, 100.0, 0.0)
    np.testing.assert_allclose(got.arrays["u"], _heat(u0, 8, 0.2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.arrays["v"], _heat(u0, 7, 0.2), rtol=1e-12, atol=1e-12)
    assert verify(spec, got.arrays, got.scalars).ok


def test_fft2d_and_redistributions_match_numpy_on_every_engine():
    """specs/fft2d.yaml (fft along the last axis of row blocks, transposes redistributed
    all-to-all from parts of tiles) on TF against the NumPy engine, the oracle and
    numpy.fft.fft2; and copies between block, cyclic and 2-D tilings."""
    spec = load_spec(ROOT / "specs" / "fft2d.yaml", ["N=96", "W=3"])
    got = compare(spec)
    np.testing.assert_allclose(got.arrays["X"], np.fft.fft2(got.arrays["x"]), rtol=1e-12, atol=1e-9)
    assert verify(spec, got.arrays, got.scalars).ok
    from unit.test_domains import RETILE

    moved = compare(load_spec_text(RETILE.encode(), "retile.yaml")).arrays
    for name, want in (("y", moved["x"]), ("w", moved["x"]), ("B", moved["A"].T), ("D", moved["A"].T)):
        np.testing.assert_array_equal(moved[name], want, err_msg=name)


def test_monte_carlo_pi_is_the_same_estimate_on_every_engine():
    """specs/montecarlo_pi.yaml: rand in a while_loop (drawn per iteration in chunks of
    iterations on TF), masks, where, an output scalar: the same count on every engine."""
    spec = load_spec(ROOT / "specs" / "montecarlo_pi.yaml", ["N=2**16", "batches=12"])
    got = compare(spec)
    assert got.scalars["pi"] == run_oracle(spec).scalars["pi"] == run_numpy(compile_spec(spec)).scalars["pi"]
    assert abs(got.scalars["pi"] - np.pi) < 5 * 1.64 / np.sqrt(2**16 * 12)
    assert verify(spec, got.arrays, got.scalars).ok


@pytest.mark.parametrize("strategy", ["heft", "round-robin"])
def test_tiled_cholesky_matches_numpy_on_every_engine(strategy):
    """specs/cholesky.yaml (an unrolled loop whose index the steps see, triangular `where:`
    domains, `.T`) on TF against the NumPy engine and the oracle, and its factor against
    numpy.linalg.cholesky of the whole matrix."""
    spec = load_spec(ROOT / "specs" / "cholesky.yaml", ["N=192", "B=48", "W=3"])
    got = compare(spec, strategy)
    assert got.iterations_run == 4
    np.testing.assert_allclose(np.tril(got.arrays["L"]), np.linalg.cholesky(got.arrays["A"]), rtol=1e-12, atol=1e-12)
    assert verify(spec, got.arrays, got.scalars).ok


ACCUMULATE = """dfc: 1
name: acc
params: {N: 64, T: 16, G: N/T}
cluster: {worker: {tasks: 2}}
arrays:
  A: {shape: [N, N], dtype: float64, tile: [T, T], init: {random: uniform, seed: 1}}
  B: {shape: [N, N], dtype: float64, tile: [T, T], init: {random: uniform, seed: 2}}
  C: {shape: [N, N], dtype: float64, tile: [T, T], output: true}
  x: {shape: [N], dtype: float32, tile: [T], init: {random: normal, seed: 3, std: 1000}}
  s: {shape: [T], dtype: float32, init: {constant: 0.1}, output: true}
  y: {shape: [N], dtype: float32, tile: [T], init: ones, output: true}
tasks:
  product: {for: {i: G, j: G, k: G}, update: {"C[i, j]": "C[i, j] + A[i, k] @ B[k, j]"}}
  fold: {for: {k: G}, update: {s: "s - x[k] * 1.5"}}
  mixed: {for: {i: G, k: G}, update: {"y[i]": "x[k] * 3 + y[i]"}}
"""


def test_accumulations_are_ordered_and_the_same_bit_for_bit_on_every_engine():
    """`T: T + e` from several instances: each adds its term in the order of the indices;
    float32 sums of terms of mixed magnitude are order-sensitive, and TF, the NumPy engine,
    the oracle and a plain NumPy loop in that order agree bit for bit."""
    spec = load_spec_text(ACCUMULATE.encode(), "acc.yaml")
    g = compile_spec(spec)
    engines = [run_tf(g, timeout=120).arrays, run_numpy(g).arrays, run_oracle(spec).arrays]
    x = engines[1]["x"].reshape(4, 16)
    s = np.full(16, 0.1, np.float32)
    for k in range(4):
        s = s - x[k] * np.float32(1.5)
    y = np.ones((4, 16), np.float32)
    for i in range(4):
        for k in range(4):
            y[i] = x[k] * np.float32(3) + y[i]
    a, b = engines[1]["A"], engines[1]["B"]
    for got in engines:
        np.testing.assert_array_equal(got["s"], s)
        np.testing.assert_array_equal(got["y"], y.reshape(-1))
        np.testing.assert_allclose(got["C"], a @ b, rtol=1e-12)
    # (C's products are BLAS's on one engine and Eigen's on the other: equal to rounding)
    assert not np.array_equal(
        s, np.full(16, 0.1, np.float32) - x.sum(axis=0, dtype=np.float64).astype(np.float32) * 1.5
    )


COMPUTED = """dfc: 1
name: computed
params: {N: 24, T: 8, s: 3}
cluster: {worker: {tasks: 2}}
arrays:
  I: {shape: [N, N], dtype: float64, tile: [T, T], init: eye, output: true}
  K: {shape: [N, N], dtype: float32, tile: [T, N], init: {expr: "where(i == j, 2, where(abs(i - j) == 1, -1, 0))"}}
  g: {shape: [N], dtype: float64, tile: {cyclic: 3}, init: {expr: "exp(-((r - N/2)**2)/s) + r % 5 - r // 4", index: [r]}}
  m: {shape: [N, 6], dtype: int32, tile: [T, 3], init: {expr: "i * 10 + j"}}
  x: {shape: [N], dtype: float64, tile: [T], init: {random: normal, seed: 1}}
  w: {shape: [N], dtype: float64, tile: [T], output: true}
  k: {shape: [N, N], dtype: float32, tile: [T, N], output: true}
  o: {shape: [N], dtype: float64, tile: [T], output: true}
scalars:
  hits: {init: "sum(sum(where(x[i]*x[i] + 1 <= 2, 1, 0)))", output: true}
tasks:
  t: {for: {i: N/T}, compute: "where(x[i] > 0, log(exp(x[i]) + 1) % 1.5, sin(x[i]) // 0.25 + cos(x[i]))", out: "w[i]"}
  u: {for: {i: N/T}, compute: "where(K[i, 0] < 0, K[i, 0] * 3, K[i, 0] % 2)", out: "k[i, 0]"}
  v: {for: {i: N/T}, compute: "where(x[i] > -0.5 and not x[i] > 0.5 or x[i] > 2, 1, 0)", out: "o[i]"}
"""


def test_computed_inits_masks_and_elementwise_functions_match_numpy():
    """init: eye / {expr: ...} (block, row-band and cyclic tiles, an int and a float32
    array), comparisons giving masks, where, exp, log, sin, cos, %, //: TF, the NumPy
    engine and the oracle against plain NumPy on whole arrays."""
    spec = load_spec_text(COMPUTED.encode(), "computed.yaml")
    got = compare(spec)
    n = 24
    r = np.arange(n)
    ii, jj = np.meshgrid(r, r, indexing="ij")
    band = np.where(ii == jj, 2, np.where(abs(ii - jj) == 1, -1, 0)).astype(np.float32)
    for arrays in (got.arrays, run_oracle(spec).arrays):
        np.testing.assert_array_equal(arrays["I"], np.eye(n))
        np.testing.assert_array_equal(arrays["K"], band)
        np.testing.assert_allclose(arrays["g"], np.exp(-((r - n / 2) ** 2) / 3) + r % 5 - r // 4, rtol=1e-15)
        np.testing.assert_array_equal(arrays["m"], (ii[:, :6] * 10 + jj[:, :6]).astype(np.int32))
    x = got.arrays["x"]
    want = np.where(x > 0, np.log(np.exp(x) + 1) % 1.5, np.sin(x) // 0.25 + np.cos(x))
    np.testing.assert_allclose(got.arrays["w"], want, rtol=1e-13)
    np.testing.assert_array_equal(got.arrays["k"], np.where(band < 0, band * 3, band % 2))
    assert got.scalars["hits"] == np.sum(x * x + 1 <= 2)
    np.testing.assert_array_equal(got.arrays["o"], ((x > -0.5) & ~(x > 0.5) | (x > 2)).astype(float))


RANDOM = """dfc: 1
name: draws
params: {N: 4096, P: 4}
cluster: {worker: {tasks: 2}}
arrays:
  X: {shape: [N], dtype: float32, tile: [N/P]}
  Y: {shape: [N], dtype: float32, tile: {cyclic: P}}
  W: {shape: [N], dtype: float64, output: true}
  R: {shape: [N], dtype: float64, tile: [N/P], output: true}
  C: {shape: [N], dtype: float64, tile: {cyclic: P}, output: true}
  S: {shape: [N], dtype: float64, tile: [N/P], output: true}
tasks:
  whole: {compute: "rand(X, seed=3)", out: W}
  tiles: {for: {i: P}, compute: "rand(X[i], seed=3)", out: "R[i]"}
  cyclic: {for: {p: P}, compute: "rand(Y[p], seed=3)", out: "C[p]"}
loop:
  max: 3
  steps:
    - {for: {i: P}, update: {"S[i]": "S[i] * 2 + rand(X[i], seed=3)"}}
"""


def test_rand_is_the_same_on_every_engine_whatever_the_tiling_and_fresh_each_iteration():
    """rand(part, seed): one number per element, from (seed, its index in the array, the
    iteration): a whole array, its block tiles and its cyclic tiles give the same numbers
    outside the loop; each iteration of the loop draws new ones; TF, the NumPy engine and
    the oracle agree bit for bit; the numbers look uniform on [0, 1)."""
    spec = load_spec_text(RANDOM.encode(), "draws.yaml")
    g = compile_spec(spec)
    engines = [run_tf(g, timeout=120).arrays, run_numpy(g).arrays, run_oracle(spec).arrays]
    for got in engines[1:]:
        for name in "WRCS":
            np.testing.assert_array_equal(got[name], engines[0][name], err_msg=name)
    w = engines[0]["W"]
    np.testing.assert_array_equal(engines[0]["R"], w)
    np.testing.assert_array_equal(engines[0]["C"], w)
    assert 0 <= w.min() and w.max() < 1 and abs(w.mean() - 0.5) < 0.02 and abs(w.var() - 1 / 12) < 0.01
    s = engines[0]["S"]  # 4 d1 + 2 d2 + d3 over the iterations' draws d1, d2, d3
    assert not np.allclose(s, 7 * w)  # fresh draws, not the prologue's again
    assert abs(s.mean() - 3.5) < 0.1


KERNELS = """dfc: 1
name: kernels
params: {N: 64, M: 8}
cluster: {worker: {tasks: 2}}
arrays:
  A: {shape: [N, N], dtype: float64, init: {random: spd, seed: 0}}
  B: {shape: [N, M], dtype: float64, init: {random: uniform, seed: 1}}
  b: {shape: [N], dtype: float64, init: {random: uniform, seed: 2}}
  L: {shape: [N, N], dtype: float64, output: true}
  X: {shape: [N, M], dtype: float64, output: true}
  Xt: {shape: [N, M], dtype: float64, output: true}
  Z: {shape: [M, N], dtype: float64, output: true}
  y: {shape: [N], dtype: float64, output: true}
  U: {shape: [N, N], dtype: float64, output: true}
  d: {shape: [N], dtype: float64, output: true}
  X2: {shape: [N, M], dtype: float64, output: true}
  y2: {shape: [N], dtype: float64, output: true}
  R: {shape: [M, N], dtype: float64, output: true}
  f: {shape: ["N*M"], dtype: float64, output: true}
  E: {shape: [N, N], dtype: float64, output: true}
tasks:
  shifted: {compute: "A - 2 * eye(N)", out: E}
  gesv: {compute: "solve(A + triu(A), B)", out: X2}
  gesv_v: {compute: "solve(A, b)", out: y2}
  rows: {compute: "reshape(B, rows=M)", out: R}
  flat: {compute: "reshape(B)", out: f}
  chol: {compute: "cholesky(A)", out: L}
  fwd: {compute: "solve_triangular(L, B)", out: X}
  back: {compute: "solve_triangular(L, B, trans=1)", out: Xt}
  side: {compute: "solve_triangular(L, transpose(B), right=1)", out: Z}
  vec: {compute: "solve_triangular(triu(A), b, lower=0)", out: y}
  parts: {compute: "triu(A) + tril(A) - diag(diag(A))", out: U}
  dv: {compute: "diag(A)", out: d}
verify: {exact: "L @ transpose(L) == A", rtol: 1e-10}
"""


def test_dense_kernels_match_numpy_on_whole_arrays():
    """cholesky, solve_triangular (left, transposed, right, upper, a vector), solve (a
    matrix, a vector), reshape, eye, tril, triu and diag (both ways) on the TF engine, the NumPy
    engine and the oracle, and each against its defining equation in plain NumPy."""
    spec = load_spec_text(KERNELS.encode(), "kernels.yaml")
    got = compare(spec).arrays
    a, b_, b, lo = got["A"], got["B"], got["b"], got["L"]
    assert np.array_equal(lo, np.tril(lo))
    np.testing.assert_allclose(lo @ lo.T, a, rtol=1e-12)
    np.testing.assert_allclose(lo @ got["X"], b_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lo.T @ got["Xt"], b_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["Z"] @ lo, b_.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.triu(a) @ got["y"], b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got["U"], a, rtol=1e-14)
    np.testing.assert_allclose(got["d"], np.diagonal(a))
    np.testing.assert_allclose((a + np.triu(a)) @ got["X2"], b_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a @ got["y2"], b, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got["R"], b_.reshape(8, 64))
    np.testing.assert_array_equal(got["f"], b_.ravel())
    np.testing.assert_array_equal(got["E"], a - 2 * np.identity(64))
    assert verify(spec, got, {}).ok


def test_cholesky_of_a_tile_that_is_not_positive_definite_is_nan_on_every_engine():
    """NaN in the lower triangle and zeros above it (TF's kernel leaves the upper triangle
    unwritten), on TF, the NumPy engine and the oracle, for the verifier to report."""
    text = KERNELS.replace("init: {random: spd, seed: 0}", "init: {random: uniform, seed: 5}")
    spec = load_spec_text(text.encode(), "notspd.yaml")
    g = compile_spec(spec)
    for arrays in (run_tf(g, timeout=120).arrays, run_numpy(g).arrays, run_oracle(spec).arrays):
        lo = arrays["L"]
        assert np.isnan(lo[np.tril_indices(64)]).all() and (lo[np.triu_indices(64, 1)] == 0).all()
    text = KERNELS.replace("init: {random: spd, seed: 0}", "init: {expr: 'where(j == 0, 1, i)'}")  # rank 2
    spec = load_spec_text(text.encode(), "singular.yaml")
    g = compile_spec(spec)
    for arrays in (run_tf(g, timeout=120).arrays, run_numpy(g).arrays, run_oracle(spec).arrays):
        assert np.isnan(arrays["y2"]).all() and not np.isnan(arrays["X2"]).any()  # A singular, A + triu(A) not
    v = verify(spec, run_numpy(g).arrays, {})
    assert v is not None and not v.ok
