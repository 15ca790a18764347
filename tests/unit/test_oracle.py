"""The oracle against plain NumPy, and the NumPy engine against the oracle on every spec
in specs/ and every complete example in the docs.

The oracle (dfc/oracle.py) reads the frozen Spec and nothing downstream of it; the
engines share the expander, CSE, queues and placement. So a bug in those shows here as a
disagreement, which the engine-against-engine tests cannot see."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from dfc.ir.interp import run_numpy
from dfc.lang import load_spec, load_spec_text
from dfc.ops.random import uniform01
from dfc.oracle import run_oracle
from dfc.passes import compile_spec

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"stream": ["MB=1", "reps=3"], "matmul": ["N=64", "T=16"], "cg": ["N=64"], "fft": ["N=2**10"]}
DOCS = [
    (p.name, i, b)
    for p in sorted((ROOT / "docs").glob("*.md"))
    for i, b in enumerate(re.findall(r"```yaml\n(.*?)```", p.read_text(), re.S))
    if b.startswith("dfc: 1")
]


def assert_agree(spec, rtol=1e-9):
    """The NumPy engine's results equal the oracle's (arrays, scalars, iterations)."""
    want, got = run_oracle(spec), run_numpy(compile_spec(spec))
    assert got.iterations_run == want.iterations_run
    for name, w in want.arrays.items():
        g = got.arrays[name]
        assert g.shape == w.shape and g.dtype == w.dtype, name
        scale = max(float(np.max(np.abs(w))), 1e-300) if w.size else 1.0
        np.testing.assert_allclose(g, w, rtol=0, atol=rtol * scale, err_msg=name)
    for name, w in want.scalars.items():
        assert got.scalars[name] == pytest.approx(w, rel=rtol, abs=1e-300), name
    return want


@pytest.mark.parametrize("name", sorted(SMALL))
def test_specs_agree_with_the_oracle(name):
    assert_agree(load_spec(ROOT / "specs" / f"{name}.yaml", SMALL[name]))


@pytest.mark.parametrize("doc, index, block", DOCS, ids=[f"{d}#{i}" for d, i, _ in DOCS])
def test_doc_examples_agree_with_the_oracle(doc, index, block):
    assert_agree(load_spec_text(block.encode(), f"{doc}#{index}"))


def test_the_issue_case_gives_the_true_ratio():
    text = (ROOT / "tests" / "unit" / "data" / "ratio.yaml").read_bytes()
    r = assert_agree(load_spec_text(text, "ratio.yaml"))
    a, b = r.arrays["a"], r.arrays["b"]
    np.testing.assert_allclose(r.arrays["y"], np.full(8, a @ a / (b @ b)), rtol=1e-14)
    assert a @ a / (b @ b) == pytest.approx(1.0229, abs=5e-5)


# ---- the oracle itself, against NumPy written out here on whole arrays


def test_oracle_matmul_is_a_product():
    r = run_oracle(load_spec(ROOT / "specs" / "matmul.yaml", ["N=32", "T=8"]))
    np.testing.assert_allclose(r.arrays["C"], r.arrays["A"].astype(np.float64) @ r.arrays["B"], rtol=1e-5)


def test_oracle_cg_solves_the_system():
    r = run_oracle(load_spec(ROOT / "specs" / "cg.yaml", ["N=64"]))
    a, b, x = r.arrays["A"], r.arrays["b"], r.arrays["x"]
    np.testing.assert_allclose(a, a.T)
    assert np.linalg.norm(b - a @ x) / np.linalg.norm(b) < 1e-8
    assert r.iterations_run < 64


def test_oracle_fft_is_numpy_fft():
    r = run_oracle(load_spec(ROOT / "specs" / "fft.yaml", ["N=2**8", "P=4"]))
    np.testing.assert_allclose(r.arrays["X"], np.fft.fft(r.arrays["x"]), rtol=1e-12, atol=1e-9)


def test_oracle_stream_adds_reps_times():
    r = run_oracle(load_spec(ROOT / "specs" / "stream.yaml", ["MB=1", "reps=5"]))
    np.testing.assert_array_equal(r.arrays["acc"], 5 * r.arrays["v"])


def spec_text(body: str) -> bytes:
    return f"dfc: 1\nname: t\nparams: {{N: 6, P: 3}}\n{body}".encode()


def test_oracle_reads_old_values_within_a_task():
    text = spec_text("""arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: {random: uniform, seed: 4}, output: true}
tasks:
  rotate: {for: {i: P}, update: {"x[i]": "x[(i + 1) % P]"}}
""")
    after = assert_agree(load_spec_text(text, "t.yaml")).arrays["x"]
    np.testing.assert_array_equal(after, np.roll(uniform01(np.arange(6), 4), -2))  # x's init, by definition


def test_oracle_orders_a_reader_after_its_writer():
    text = spec_text("""arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: ones, output: true}
  y: {shape: [N], dtype: float64, tile: [N/P], output: true}
tasks:
  use: {for: {i: P}, compute: "x[i] * 2", out: "y[i]"}
  make: {for: {i: P}, compute: "x[i] + 3", out: "x[i]"}
""")
    # the reader of x (use) runs after x's writer (make), although the file lists it first
    r = assert_agree(load_spec_text(text, "t.yaml"))
    np.testing.assert_array_equal(r.arrays["y"], np.full(6, 8.0))


def test_oracle_refuses_two_writes_of_one_tile():
    text = spec_text("""arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: ones, output: true}
tasks:
  both: {for: {i: P}, compute: "x[i] + i", out: "x[i // P]"}
""")
    from dfc.diagnostics import SpecError

    with pytest.raises(SpecError) as info:  # validation refuses it now, before the oracle would
        load_spec_text(text, "t.yaml")
    assert "instances i=0 and i=1 of 'both' both write x[0]" in str(info.value.diagnostics)


def test_oracle_imports_nothing_downstream_of_the_spec():
    tree = ast.parse((ROOT / "dfc" / "oracle.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    allowed = {
        "__future__",
        "ast",
        "itertools",
        "time",
        "typing",
        "dataclasses",
        "fractions",
        "numpy",
        "lang.expr",
        "lang.model",
        "ops.random",
        "ops.npyfile",
    }  # npyfile: validation's own reader
    assert imported <= allowed, imported - allowed


def test_dfc_run_engine_oracle(tmp_path):
    import json

    from dfc.cli import main

    out = tmp_path / "r.json"
    assert (
        main(
            [
                "run",
                str(ROOT / "specs" / "cg.yaml"),
                "--set",
                "N=64",
                "--engine",
                "oracle",
                "--quiet",
                "--json",
                str(out),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["engine"] == "oracle" and report["verified"] and report["predicted_seconds"] is None
    assert (tmp_path / "o" / "x.npy").exists()


def test_dfc_run_engine_oracle_refuses_a_program_without_one_meaning(tmp_path, capsys):
    from dfc.cli import main

    f = tmp_path / "t.yaml"
    f.write_bytes(
        spec_text("""arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: ones, output: true}
tasks:
  both: {for: {i: P}, compute: "x[i] + i", out: "x[0]"}
""")
    )
    assert main(["run", str(f), "--engine", "oracle", "--quiet"]) == 2  # refused by validation (lost updates)
    assert "the 3 instances of 'both' write 'x[0]', one tile whatever 'i' is" in capsys.readouterr().err


# ---- what the differential fuzzer found, one regression test each

VECS = """arrays:
  u: {shape: [N], dtype: float64, tile: {cyclic: P}, init: {random: uniform, seed: 1}, output: true}
  w: {shape: [N], dtype: float64, tile: [N/P], init: {random: uniform, seed: 2}, output: true}
  z: {shape: [N], dtype: float64, tile: ZTILE, output: true}
"""


@pytest.mark.parametrize("ztile", ["[N/P]", "{cyclic: P}"])
def test_whole_array_out_of_several_tiles(ztile):
    text = spec_text(VECS.replace("ZTILE", ztile) + "tasks:\n  whole: {compute: '2 * u - w', out: z}\n")
    r = assert_agree(load_spec_text(text, "t.yaml"))
    np.testing.assert_array_equal(r.arrays["z"], 2 * r.arrays["u"] - r.arrays["w"])


def test_two_loop_steps_push_into_one_reducing_queue():
    text = spec_text("""cluster: {worker: {tasks: 2}, reducer: {tasks: 2}}
arrays:
  M: {shape: [N, N], dtype: float64, tile: [N/P, N/P], init: {random: uniform, seed: 3}}
  C: {shape: [N, N], dtype: float64, tile: [N/P, N/P], output: true}
queues:
  partials: {on: reducer, shards: 2, shard: '(i + j) % 2', reduce: {op: sum, into: C}}
loop:
  max: 1
  steps:
    - {name: mul, for: {i: P, j: P, k: P}, compute: 'M[i, k] @ M[k, j]', push: 'partials[i, j]'}
    - {name: add, for: {i: P, j: P, k: P}, compute: 'M[i, k] + M[k, j]', push: 'partials[i, j]'}
""")
    r = assert_agree(load_spec_text(text, "t.yaml"))
    m, t = r.arrays["M"], 2
    want = np.block(
        [
            [
                sum(
                    m[i * t : (i + 1) * t, k * t : (k + 1) * t] + m[k * t : (k + 1) * t, j * t : (j + 1) * t]
                    for k in range(3)
                )
                for j in range(3)
            ]
            for i in range(3)
        ]
    )
    np.testing.assert_allclose(r.arrays["C"], want, rtol=1e-14)  # the last step's reduction


def test_a_let_repeated_in_the_body_through_one_queue():
    text = spec_text(
        VECS.replace("ZTILE", "[N/P]")
        + """cluster: {worker: {tasks: 2}, reducer: {tasks: 1}}
queues:
  dots: {on: reducer, reduce: {op: sum, broadcast: worker}}
scalars:
  s: {init: 0}
loop:
  max: 2
  steps:
    - {let: s, reduce: "sum(dot(u[k], u[k]))", via: dots}
    - {for: {i: P}, update: {"w[i]": "w[i] + s"}}
    - {let: s, reduce: "s * sum(dot(w[k], w[k]))", via: dots}
    - {for: {i: P}, update: {"z[i]": "z[i] + s"}}
"""
    )
    r = assert_agree(load_spec_text(text, "t.yaml"))
    u = r.arrays["u"]
    z, w = np.zeros(6), uniform01(np.arange(6), 2)  # w's init, by the definition of `random: uniform`
    for _ in range(2):
        s = u @ u
        w = w + s
        s = s * (w @ w)
        z = z + s
    np.testing.assert_allclose(r.arrays["z"], z, rtol=1e-13)


def test_a_number_takes_the_dtype_it_meets():
    text = spec_text("""arrays:
  x: {shape: [N], dtype: int64, tile: [N/P], init: {constant: 3}}
  y: {shape: [N], dtype: int64, tile: [N/P], output: true}
  f: {shape: [N], dtype: float32, tile: [N/P], init: ones}
  g: {shape: [N], dtype: float32, tile: [N/P], output: true}
tasks:
  ints: {for: {i: P}, compute: "2.5 * x[i] + x[i]", out: "y[i]"}
  floats: {for: {i: P}, compute: "0.1 * f[i]", out: "g[i]"}
""")
    r = assert_agree(load_spec_text(text, "t.yaml"))
    np.testing.assert_array_equal(r.arrays["y"], np.full(6, 2 * 3 + 3))  # 2.5 as an int64 is 2
    np.testing.assert_array_equal(r.arrays["g"], np.full(6, np.float32(0.1), dtype=np.float32))


def test_two_loop_steps_of_one_name():
    text = spec_text(
        VECS.replace("ZTILE", "[N/P]")
        + """loop:
  max: 2
  steps:
    - {name: t, for: {i: P}, update: {"w[i]": "w[i] + u[i]"}}
    - {name: t, for: {i: P}, update: {"w[i]": "2 * w[i]"}}
"""
    )
    r = assert_agree(load_spec_text(text, "t.yaml"))
    u, w = r.arrays["u"], uniform01(np.arange(6), 2)
    u_tiles = np.concatenate([u[i::3] for i in range(3)])  # u's cyclic tiles, in w's block order
    np.testing.assert_allclose(r.arrays["w"], 2 * (2 * (w + u_tiles) + u_tiles), rtol=1e-15)
