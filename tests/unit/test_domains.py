"""Index domains with a `where:` condition, a loop whose `index:` the steps see (unrolled
at compile time), and `.T`: what the compiler builds from them, and answers checked
against plain NumPy on whole arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfc.ir.interp import run_numpy
from dfc.ir.node import node_table
from dfc.lang import load_spec, load_spec_text
from dfc.oracle import run_oracle
from dfc.passes import compile_spec

ROOT = Path(__file__).resolve().parents[2]


def cholesky(nt: int, b: int = 16, w: int = 2):
    return load_spec(ROOT / "specs" / "cholesky.yaml", [f"N={nt * b}", f"B={b}", f"W={w}"])


def _computes(g, group: str) -> list:
    return [n for n in node_table(g).values() if n["node"].kind == "compute" and n["node"].group == group]


@pytest.mark.parametrize("nt", [1, 2, 3, 5])
def test_tiled_cholesky_is_numpys_factor_on_the_numpy_engine_and_the_oracle(nt):
    spec = cholesky(nt)
    g = compile_spec(spec)
    for result in (run_numpy(g), run_oracle(spec)):
        a, lo = result.arrays["A"], result.arrays["L"]
        np.testing.assert_allclose(np.tril(lo), np.linalg.cholesky(a), rtol=1e-12, atol=1e-12)
        assert result.iterations_run == nt


def test_where_keeps_the_triangle_and_the_dag_follows_the_tiles():
    """One POTRF per k, a TRSM per tile below the diagonal, an update per tile of the
    trailing lower triangle; the k-th POTRF waits for the update of its tile at k-1."""
    nt = 4
    g = compile_spec(cholesky(nt))
    assert len(_computes(g, "potrf")) == nt
    assert len(_computes(g, "trsm")) == nt * (nt - 1) // 2
    updates = sum((nt - k - 1) * (nt - k) // 2 for k in range(nt))
    names = {n["node"].name for n in _computes(g, "update")}
    assert len({n.split("/")[0] + n.split("/")[1].split("]")[0] for n in names}) == updates
    import networkx as nx

    assert nx.has_path(g, "k=0/update[i=1,j=1]/L[i, j]/assign:L[1,1]", "k=1/potrf")
    assert not any(n.startswith("loop") for n in g.nodes)  # unrolled: no while loop


def test_a_where_on_a_task_and_t_in_an_expression_match_numpy():
    text = """dfc: 1
name: lower
params: {N: 48, T: 16, G: 3}
arrays:
  A: {shape: [N, N], dtype: float64, tile: [T, T], init: {random: uniform, seed: 1}}
  C: {shape: [N, N], dtype: float64, tile: [T, T], output: true}
tasks:
  t: {for: {i: G, j: G}, where: "j < i or i == j == 1", compute: "A[j, i].T + 2 * transpose(A[j, i])", out: "C[i, j]"}
"""
    spec = load_spec_text(text.encode(), "lower.yaml")
    a = run_oracle(spec).arrays["A"]
    want = np.zeros_like(a)
    for i in range(3):
        for j in range(3):
            if j < i or i == j == 1:
                want[i * 16 : (i + 1) * 16, j * 16 : (j + 1) * 16] = (
                    3 * a[j * 16 : (j + 1) * 16, i * 16 : (i + 1) * 16].T
                )
    for result in (run_numpy(compile_spec(spec)), run_oracle(spec)):
        np.testing.assert_array_equal(result.arrays["C"], want)


def test_the_loop_index_is_a_value_in_lets_and_expressions():
    text = """dfc: 1
name: ramp
params: {N: 8, P: 4}
arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: zeros, output: true}
scalars:
  s: {init: 0, dtype: float64, output: true}
loop:
  max: P
  index: k
  steps:
    - {let: s, value: "s + k"}
    - {for: {i: P}, where: "i >= k", update: {"x[i]": "x[i] + k + 1"}}
"""
    spec = load_spec_text(text.encode(), "ramp.yaml")
    want = np.repeat([1.0, 3.0, 6.0, 10.0], 2)  # x[i] = 1 + 2 + ... + (i + 1)
    for result in (run_numpy(compile_spec(spec)), run_oracle(spec)):
        np.testing.assert_array_equal(result.arrays["x"], want)
        assert result.scalars["s"] == 6


LEFT_LOOKING = """dfc: 1
name: left
params: {N: 80, B: 16, NT: N/B}
arrays:
  A: {shape: [N, N], dtype: float64, tile: [B, B], init: {random: spd, seed: 4}}
  L: {like: A, init: A, output: true}
loop:
  max: NT
  index: k
  steps:
    - {name: syrk, for: {j: NT}, where: "j < k", update: {"L[k, k]": "L[k, k] - L[k, j] @ L[k, j].T"}}
    - {name: potrf, compute: "cholesky(L[k, k])", out: "L[k, k]"}
    - {name: gemm, for: {i: NT, j: NT}, where: "j < k < i", update: {"L[i, k]": "L[i, k] - L[i, j] @ L[k, j].T"}}
    - {name: trsm, for: {i: NT}, where: "i > k", compute: "solve_triangular(L[k, k], L[i, k], trans=1, right=1)",
       out: "L[i, k]"}
"""


def test_left_looking_cholesky_accumulates_its_updates_in_order():
    """The left-looking form: each column's tiles accumulate the products of all earlier
    columns (several instances update one tile: `T: T - e`, in the order of j)."""
    spec = load_spec_text(LEFT_LOOKING.encode(), "left.yaml")
    g = compile_spec(spec)
    syrk = [n for n in g.nodes if n.startswith("k=3/syrk") and n.endswith(":sub")]
    assert len(syrk) == 3  # one running difference per term, j = 0, 1, 2
    for result in (run_numpy(g), run_oracle(spec)):
        np.testing.assert_allclose(
            np.tril(result.arrays["L"]), np.linalg.cholesky(result.arrays["A"]), rtol=1e-12, atol=1e-12
        )


def test_a_stencil_exchanges_only_its_halos():
    """specs/heat2d.yaml placed at its size: every transfer between devices is one edge row
    or column of a tile (B elements), never a tile; and the boundary reads are constant
    edges (a part of a boundary tile is made alone). (At a toy size the cost model may ship a
    tile: it costs next to nothing.)"""
    spec = load_spec(ROOT / "specs" / "heat2d.yaml")
    g = compile_spec(spec)
    table = node_table(g)
    sends = [n["node"] for n in table.values() if n["node"].kind == "send"]
    assert sends, "the two workers exchange halos"
    for s in sends:
        source = table[s.inputs[0]]["node"]
        assert source.op == "part" and s.out_bytes == 512 * 8, (s.name, source.op, s.out_bytes)
    fills = [n["node"] for n in table.values() if n["node"].op == "fill"]
    assert fills and all(n.shape in ((1, 512), (512, 1)) for n in fills)  # only the halo made


RETILE = """dfc: 1
name: retile
params: {N: 64, P: 4}
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: {random: uniform, seed: 1}}
  y: {shape: [N], dtype: float64, tile: {cyclic: P}, output: true}
  z: {shape: [N], dtype: float64, tile: [N/2], output: true}
  w: {shape: [N], dtype: float64, tile: [N/8], output: true}
  A: {shape: [N, N], dtype: float64, tile: [N/P, N], init: {random: uniform, seed: 2}}
  B: {shape: [N, N], dtype: float64, tile: [N/P, N], output: true}
  C: {shape: [N, N], dtype: float64, tile: [N/2, N/4], output: true}
  D: {shape: [N, N], dtype: float64, tile: [N/8, N/2], output: true}
tasks:
  c: {compute: "x", out: y}
  d: {compute: "y", out: z}
  e: {compute: "x", out: w}
  t: {compute: "transpose(A)", out: B}
  u: {compute: "A.T", out: C}
  v: {compute: "C", out: D}
"""


def test_copies_into_another_tiling_and_transposes_gather_parts_of_tiles():
    """Block -> cyclic -> block, block -> smaller and larger blocks, a transpose of row
    blocks into row blocks and into 2-D blocks: each tile gathered from the parts it needs
    (no whole array assembled anywhere), the same values as NumPy on whole arrays."""
    spec = load_spec_text(RETILE.encode(), "retile.yaml")
    g = compile_spec(spec)
    ops = {n["node"].op for n in node_table(g).values()}
    assert "assemble" not in ops and "take_tile" not in ops and "part" in ops
    for result in (run_numpy(g), run_oracle(spec)):
        got = result.arrays
        np.testing.assert_array_equal(got["y"], got["x"])
        np.testing.assert_array_equal(got["z"], got["x"])
        np.testing.assert_array_equal(got["w"], got["x"])
        np.testing.assert_array_equal(got["B"], got["A"].T)
        np.testing.assert_array_equal(got["C"], got["A"].T)
        np.testing.assert_array_equal(got["D"], got["A"].T)


def test_fft2d_moves_parts_of_tiles_not_the_matrix():
    """specs/fft2d.yaml placed: the transposes take parts of row blocks (each a W-th of a
    tile), so what crosses between the workers is at most half of each tile per
    transpose, and no device receives the whole matrix. (Which parts cross is the
    placer's: the plan today makes both transposes on worker 0, worker 1 sending its
    transformed rows once.) The round-robin placement spreads the transposes and moves
    exactly the parts."""
    spec = load_spec(ROOT / "specs" / "fft2d.yaml")
    tile = 2048 * 2048 * 16 // 2
    for strategy in ("heft", "round-robin"):
        g = compile_spec(spec, strategy)
        table = node_table(g)
        sends = [n["node"] for n in table.values() if n["node"].kind == "send"]
        assert sends and sum(s.out_bytes for s in sends) <= 2 * tile  # each transpose: at most half of each tile
        received: dict[str, int] = {}
        for s in sends:
            received[s.data.to] = received.get(s.data.to, 0) + s.out_bytes
        assert max(received.values()) < 2 * tile, received
    assert all(table[s.inputs[0]]["node"].op == "part" and s.out_bytes == tile // 2 for s in sends)
    x = run_numpy(compile_spec(load_spec(ROOT / "specs" / "fft2d.yaml", ["N=64"])))
    np.testing.assert_allclose(x.arrays["X"], np.fft.fft2(x.arrays["x"]), rtol=1e-12, atol=1e-9)


MASKS_AND_CHAINS = """dfc: 1
name: g5
arrays:
  a: {shape: [4, 4], dtype: float64, tile: [2, 2], init: {expr: "where(0 <= i - j <= 1, 2, 0)"}, output: true}
  b: {shape: [8], dtype: float64, tile: [4], init: {expr: "(i > 3 and i < 6) or i == 0"}, output: true}
  c: {shape: [4, 4], dtype: float64, tile: [2, 2], init: {expr: "(i == 0 or j == 3)"}, output: true}
  x: {shape: [8], dtype: float64, tile: [2], init: {random: uniform, seed: 1}, output: true}
  s: {shape: [2], dtype: float64, output: true}
  t: {shape: [2], dtype: float64, output: true}
  m: {shape: [8], dtype: float64, tile: [2], output: true}
tasks:
  fold: {for: {k: 4}, update: {s: "s + sqrt(x[k])"}}
  chain: {for: {k: 4}, update: {t: "t - x[k] + 1 - x[k] * x[k]"}}
  mask: {for: {k: 4}, compute: "where(x[k] > 0.3 and not (x[k] > 0.8), x[k], -1)", out: "m[k]"}
"""


def test_masks_combine_elementwise_and_a_chain_after_the_target_is_one_term():
    """`and`/`or`/`not` and chained comparisons on masks are elementwise (in init
    expressions and tasks); `t - a + b - c` accumulates the term `a - b + c` (subtracted);
    a target named by a letter inside a function name (`s` in `sqrt`) is still found."""
    spec = load_spec_text(MASKS_AND_CHAINS.encode(), "g5.yaml")
    r = np.arange(4)
    band = np.where((r[:, None] - r[None, :] >= 0) & (r[:, None] - r[None, :] <= 1), 2.0, 0.0)
    for result in (run_numpy(compile_spec(spec)), run_oracle(spec)):
        got = result.arrays
        np.testing.assert_array_equal(got["a"], band)
        np.testing.assert_array_equal(got["b"], [1, 0, 0, 0, 1, 1, 0, 0])
        np.testing.assert_array_equal(got["c"], ((r[:, None] == 0) | (r[None, :] == 3)).astype(float))
        x = got["x"].reshape(4, 2)
        s, t = np.zeros(2), np.zeros(2)
        for k in range(4):
            s, t = s + np.sqrt(x[k]), t - (x[k] - 1 + x[k] * x[k])
        np.testing.assert_array_equal(got["s"], s)
        np.testing.assert_array_equal(got["t"], t)
        np.testing.assert_array_equal(got["m"], np.where((x > 0.3) & ~(x > 0.8), x, -1).ravel())
