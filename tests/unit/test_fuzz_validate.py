"""`dfc validate` on mutated specs and random YAML: never raises, never hangs, and always
exits 0 or 2 (70 would be an internal error: a bug)."""

import contextlib
import io
import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dfc.cli import main

SPECS = Path(__file__).resolve().parents[2] / "specs"
TEXTS = {p.stem: p.read_text() for p in sorted(SPECS.glob("*.yaml"))}
DATA = {k: yaml.safe_load(v) for k, v in TEXTS.items()}
FUZZ = settings(
    max_examples=int(os.environ.get("DFC_FUZZ_EXAMPLES", "120")),
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.sampled_from(
        [
            "N",
            "N/T",
            "P",
            "zeros",
            "worker",
            "reducer",
            "A[i, k] @ B[k, j]",
            "sum(dot(r[i], r[i]))",
            "fft(x[p])",
            "float64",
            "complex128",
            "dynamic",
            "2**22",
            "10**30",
            "0",
            "-1",
            "N/0",
            "i",
            "x[i] + alpha*p[i]",
            "rr < tol**2",
            "worker:7",
            "C == A @ B",
            "q[i]",
            "__import__",
        ]
    ),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.text(max_size=8)
            | st.sampled_from(
                ["shape", "tile", "for", "on", "init", "reduce", "into", "compute", "push", "out", "update", "let"]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


def run_validate(data: bytes, *extra: str) -> int:
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as f:
        f.write(data)
    try:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["validate", f.name, *extra])
        assert "internal error" not in err.getvalue(), err.getvalue()
        return rc
    finally:
        os.unlink(f.name)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def mutate(data, path, action, value, new_key):
    import copy

    data = copy.deepcopy(data)
    if not path:
        return value if action == "replace" else data
    parent = data
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = value
    elif action == "rename" and isinstance(parent, dict):
        parent[new_key] = parent.pop(last)
    elif action == "insert" and isinstance(parent[last], dict):
        parent[last][new_key] = value
    return data


@FUZZ
@given(
    st.sampled_from(sorted(DATA)),
    st.data(),
    st.sampled_from(["delete", "replace", "rename", "insert"]),
    values,
    st.text(min_size=1, max_size=10),
)
def test_structural_mutations(name, data, action, value, new_key):
    all_paths = list(paths(DATA[name]))
    path = data.draw(st.sampled_from(all_paths))
    mutated = mutate(DATA[name], path, action, value, new_key)
    text = yaml.safe_dump(mutated, allow_unicode=True)
    rc = run_validate(text.encode())
    assert rc in (0, 2)
    if rc == 0:  # what validates must compile and plan: no crash past validation
        compiles(text)


def compiles(text: str) -> None:
    from dfc.cost.model import CostModel
    from dfc.cost.profile import Profile
    from dfc.cost.simulate import simulate
    from dfc.ir.devices import devices
    from dfc.lang import load_spec_text
    from dfc.passes import compile_spec

    spec = load_spec_text(text.encode(), "mutated.yaml")
    if spec.tile_tasks + spec.ntiles <= 2000:
        simulate(compile_spec(spec), CostModel(Profile(), devices(spec)))


@FUZZ
@given(
    st.sampled_from(sorted(TEXTS)),
    st.integers(0, 2000),
    st.integers(0, 20),
    st.text(alphabet="[]{}:,-'\"\t\n #&*!|>%@`?=()0123456789abcNiPT/\\", max_size=20),
)
def test_text_mutations(name, at, cut, insert):
    text = TEXTS[name]
    at %= len(text) + 1
    mutated = text[:at] + insert + text[at + cut :]
    assert run_validate(mutated.encode("utf-8", "surrogatepass")) in (0, 2)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(blob):
    assert run_validate(blob) in (0, 2)


@FUZZ
@given(values)
def test_random_yaml_documents(doc):
    assert run_validate(yaml.safe_dump(doc).encode()) in (0, 2)


@FUZZ
@given(
    st.sampled_from(sorted(TEXTS)),
    st.sampled_from(["N", "T", "P", "MB", "reps", "iterations", "tol", "X"]),
    st.one_of(st.integers(-5, 2**40).map(str), st.sampled_from(["0", "2**70", "1/3", "N", "x[", "1e400", "nan"])),
)
def test_random_overrides(name, key, value):
    assert run_validate(TEXTS[name].encode(), "--set", f"{key}={value}") in (0, 2)


ADVERSARIAL = {
    "long param chain": "dfc: 1\nname: a\nparams: {"
    + ", ".join(f"p{i}: p{i + 1}" for i in range(3000))
    + ", p3000: 1}\n",
    "astronomic task count": "dfc: 1\nname: a\narrays: {x: {shape: [16], output: true}}\n"
    "tasks: {t: {for: {i: 10**12, j: 10**12}, update: {x: x + 1}}}\n",
    "infinite param": "dfc: 1\nname: a\nparams: {N: .inf}\narrays: {x: {shape: [N]}}\n",
    "zero cyclic tiles": "dfc: 1\nname: a\narrays: {x: {shape: [16], tile: {cyclic: 0}}}\n",
    "huge sum": "dfc: 1\nname: a\nparams: {N: '" + "+".join(["1"] * 900) + "'}\n",
    "tower of powers": "dfc: 1\nname: a\nparams: {N: 2**2**2**2**2**2}\n",
    "zero memory": "dfc: 1\nname: a\ncluster: {w: {tasks: 1, memory: '0B'}}\n",
    "long key": "dfc: 1\nname: a\nparams: {" + "N" * 5000 + ": 1}\n",
}


def test_adversarial_inputs_are_refused_quickly():
    import time

    for name, text in ADVERSARIAL.items():
        t = time.perf_counter()
        rc = run_validate(text.encode())
        assert time.perf_counter() - t < 5, name
        assert rc in (0, 2), name
    assert run_validate(ADVERSARIAL["long param chain"].encode()) == 0
    assert run_validate(ADVERSARIAL["astronomic task count"].encode()) == 2
