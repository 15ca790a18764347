"""Properties of the compiler's passes and planner, on generated programs and on the
four specs (no TensorFlow)."""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dfc.cost.model import CostModel  # noqa: E402
from dfc.cost.profile import Profile  # noqa: E402
from dfc.cost.simulate import Predictor, simulate  # noqa: E402
from dfc.ir.devices import devices  # noqa: E402
from dfc.ir.interp import run_numpy  # noqa: E402
from dfc.ir.node import verify_ir, with_nodes  # noqa: E402
from dfc.lang import load_spec, load_spec_text  # noqa: E402
from dfc.passes import compile_spec  # noqa: E402
from dfc.passes.comm import comm  # noqa: E402
from dfc.passes.cse import cse  # noqa: E402
from dfc.passes.place import greedy_bytes, heft_variant, round_robin  # noqa: E402

from gen import random_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SEEDS = range(12)
STRATEGIES = ("heft", "round-robin", "greedy-bytes", "manual")


def gen(seed: int):
    return load_spec_text(random_spec(seed).encode(), f"gen{seed}.yaml")


@pytest.mark.parametrize("seed", SEEDS)
def test_every_pass_keeps_the_graph_acyclic_and_valid(seed):
    seen = []

    def check(name, g):
        assert nx.is_directed_acyclic_graph(g), name
        verify_ir(g, name)
        seen.append(name)

    compile_spec(gen(seed), "heft", observe=check)
    assert seen == ["build", "expand", "queues", "cse", "fuse", "place", "collective", "combine", "comm"]


@pytest.mark.parametrize("seed", SEEDS)
def test_cse_is_idempotent(seed):
    g = compile_spec(gen(seed), stop_after="queues")
    once = cse(g)
    twice = cse(once)
    assert sorted(once.nodes) == sorted(twice.nodes)
    assert all(once.nodes[n]["node"] == twice.nodes[n]["node"] for n in once.nodes)


def test_cse_merges_repeated_work():
    text = random_spec(3).replace(
        "compute: 'A[i, j] + 2*B[i, j]'", "compute: '(A[i, j] + B[i, j]) * (A[i, j] + B[i, j])'"
    )
    text = text.replace(
        "compute: 'A[i, j] * B[i, j] - A[i, j]'", "compute: '(A[i, j] + B[i, j]) * (A[i, j] + B[i, j])'"
    )
    text = text.replace(
        "compute: 'abs(B[i, j]) / (1 + A[i, j])'", "compute: '(A[i, j] + B[i, j]) * (A[i, j] + B[i, j])'"
    )
    text = text.replace("compute: 'A[i, j] @ B[j, i]'", "compute: '(A[i, j] + B[i, j]) * (A[i, j] + B[i, j])'")
    g = compile_spec(load_spec_text(text.encode(), "cse.yaml"), stop_after="queues")
    adds = lambda h: sum(1 for n in h.nodes if h.nodes[n]["node"].op == "add" and h.nodes[n]["node"].group == "ew")
    assert adds(cse(g)) == adds(g) // 2 > 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_one_send_recv_pair_per_tensor_and_destination(seed, strategy):
    g = compile_spec(gen(seed), strategy)
    pairs = []
    for name in g.nodes:
        n = g.nodes[name]["node"]
        if n.kind == "send":
            (recv,) = list(g.successors(name))
            pairs.append((n.inputs[0], g.nodes[recv]["node"].device, n.scope))
        for src in n.inputs:  # no data edge crosses devices except send -> recv (and the
            s = g.nodes[src]["node"]  # other members' partials of an all-reduce: it carries them)
            if s.kind != "const" and s.device and n.device and s.device != n.device:
                assert (s.kind, n.kind) == ("send", "recv") or n.kind == "allreduce", (src, name)
    assert len(pairs) == len(set(pairs))


@pytest.mark.parametrize("seed", SEEDS)
def test_prediction_is_never_below_the_lower_bound(seed):
    spec = gen(seed)
    for strategy in STRATEGIES:
        s = simulate(compile_spec(spec, strategy), CostModel(Profile(), devices(spec)))
        assert s.makespan >= s.lower_bound * (1 - 1e-9) > 0


def _rename(text: str, mapping: dict[str, str]) -> str:
    for old, new in mapping.items():
        text = text.replace(f"  {old}: {{", f"  {new}: {{")
    return text


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_plan_does_not_change_when_task_names_are_permuted(seed):
    text = random_spec(seed)
    spec = load_spec_text(text.encode(), "a.yaml")
    swapped = load_spec_text(_rename(text, {"product": "zz_product", "ew": "aa_ew", "mv": "b_mv"}).encode(), "b.yaml")
    a = simulate(compile_spec(spec), CostModel(Profile(), devices(spec)))
    b = simulate(compile_spec(swapped), CostModel(Profile(), devices(swapped)))
    assert a.makespan == pytest.approx(b.makespan, rel=1e-9)
    assert a.bytes_moved == b.bytes_moved
    assert sorted(a.busy.values()) == pytest.approx(sorted(b.busy.values()), rel=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_engine_agrees_with_whole_array_numpy(seed):
    spec = gen(seed)
    r = run_numpy(compile_spec(spec, "heft"))
    A, B = r.arrays["A"], r.arrays["B"]
    np.testing.assert_allclose(r.arrays["C"], A @ B, rtol=1e-4, atol=1e-4)
    assert r.iterations_run == spec.loop.max


@pytest.mark.parametrize("name", ["matmul", "cg", "fft", "stream"])
def test_heft_is_at_least_as_good_as_the_baselines(name):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    cm = CostModel(Profile(), devices(spec))
    t = {s: simulate(compile_spec(spec, s), cm).makespan for s in ("heft", "round-robin", "greedy-bytes")}
    assert t["heft"] <= t["round-robin"] * (1 + 1e-9)
    assert t["heft"] <= t["greedy-bytes"] * (1 + 1e-9)


@pytest.mark.parametrize(
    "name,sets",
    [("matmul", ["N=1024", "T=256"]), ("matmul", ["N=2048", "T=256"]), ("cg", ["P=4"]), ("fft", ["N=2**18", "P=8"])],
)
def test_placement_search_predicts_what_the_simulator_says(name, sets):
    """The search's Predictor stands for simulate(comm(placed graph)); any gap would let it
    pick placements the plan then reports as slower."""
    spec = load_spec(ROOT / "specs" / f"{name}.yaml", sets)
    g = compile_spec(spec, stop_after="cse")
    devs = devices(spec)
    cm = CostModel(Profile(), devs)
    predict = Predictor(g, cm)
    for strategy in (round_robin, greedy_bytes, heft_variant):
        where = strategy(g, cm, devs)
        placed = comm(with_nodes(g, [g.nodes[k]["node"].evolve(device=where.get(k, "")) for k in g.nodes]))
        assert predict(where) == pytest.approx(simulate(placed, cm).makespan, rel=1e-12)


def test_loop_body_appears_once():
    # (not 5 against 500: the passes may weigh a short loop otherwise, the graph's first
    # run against the loop's control)
    spec = load_spec(ROOT / "specs" / "cg.yaml", ["N=64", "iterations=500"])
    more = load_spec(ROOT / "specs" / "cg.yaml", ["N=64", "iterations=50000"])
    assert compile_spec(spec, "round-robin").number_of_nodes() == compile_spec(more, "round-robin").number_of_nodes()


def test_ir_nodes_carry_yaml_positions():
    spec = load_spec(ROOT / "specs" / "matmul.yaml", ["N=1024"])
    g = compile_spec(spec, stop_after="expand")
    n = g.nodes["product[i=0,j=1,k=1]"]["node"]
    assert (n.op, n.pos.file, n.pos.line, n.pos.col) == ("matmul", str(ROOT / "specs" / "matmul.yaml"), 29, 14)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["matmul", "cg", "fft", "stream"])
def test_numpy_engine_verifies_the_four_specs_at_default_sizes(name):
    from dfc.runtime.verify import verify

    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    r = run_numpy(compile_spec(spec))
    v = verify(spec, r.arrays, r.scalars)
    assert v is not None and v.ok, v


def _dequeues(g):
    return [g.nodes[k]["node"] for k in g.nodes if g.nodes[k]["node"].kind == "dequeue"]


def test_combine_pushes_one_item_per_device_and_key():
    spec = load_spec(ROOT / "specs" / "matmul.yaml")  # 512x512 float32 tiles: bandwidth-bound
    g = compile_spec(spec, stop_after="combine")  # before comm puts a recv in front of each push
    before = compile_spec(spec, stop_after="place")
    for d in _dequeues(g):
        producers = [g.nodes[g.nodes[e]["node"].inputs[0]]["node"] for e in d.inputs]
        devices_ = [p.device for p in producers]
        assert len(devices_) == len(set(devices_)) == d.data.count  # one item per device
        assert all(p.op == "accumulate" or p.group == "product" for p in producers)
    products = sum(1 for k in before.nodes if before.nodes[k]["node"].kind == "enqueue")
    pushes = sum(1 for k in g.nodes if g.nodes[k]["node"].kind == "enqueue")
    assert pushes < products
    got = run_numpy(g)  # the reduced tiles are still A @ B
    a, b = got.arrays["A"].astype(np.float64), got.arrays["B"].astype(np.float64)
    np.testing.assert_allclose(got.arrays["C"], a @ b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sets", [["N=64"], ["schedule=dynamic"]])
def test_combine_leaves_small_items_and_dynamic_pushes_alone(sets):
    name = "cg" if sets == ["N=64"] else "matmul"
    text = (ROOT / "specs" / f"{name}.yaml").read_text()
    if name == "matmul":  # the same program with workers pulling (i, j, k) at run time
        text = text.replace("schedule: static", "schedule: dynamic")
        sets = []
    else:  # the queue form (auto might take all-reduces, which leave no queue to combine in)
        text = text.replace("broadcast: worker}", "broadcast: worker, via: queue}")
    spec = load_spec_text(text.encode(), f"{name}.yaml", sets)
    # round-robin: CG's partials pushed from two workers (HEFT may keep a dot product's
    # tiles on the reducer, where combining its partials is a local sum)
    placed, final = compile_spec(spec, "round-robin", stop_after="place"), compile_spec(spec, "round-robin")
    node = {k: v["node"] for k, v in placed.nodes(data=True)}
    pushers = {node[node[e].inputs[0]].device for d in _dequeues(placed) for e in d.inputs}
    assert len(pushers) > 1 and all(d.data.count > 1 for d in _dequeues(placed))
    assert [d.data.count for d in _dequeues(final)] == [d.data.count for d in _dequeues(placed)]


def test_node_constructor_keeps_the_dataclass_fields_and_defaults():
    """Node writes its fields in one go (faster than the frozen dataclass's __init__): its
    parameters are the fields, in order, with the same defaults, and it stays frozen."""
    import dataclasses
    import inspect

    from dfc.diagnostics import Pos
    from dfc.ir.node import Node

    params = list(inspect.signature(Node.__init__).parameters.values())[1:]
    fields = dataclasses.fields(Node)
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields):
        if f.default_factory is not dataclasses.MISSING:
            assert p.default is None and getattr(Node("n", "const"), f.name) == f.default_factory()
        else:
            assert p.default == (inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
    n = Node("a", "compute", "add", ("x", "y"), pos=Pos("f.yaml", 2, 3, 4))
    assert n == dataclasses.replace(n) and n.evolve(device="d") == dataclasses.replace(n, device="d")
    with pytest.raises(dataclasses.FrozenInstanceError):
        n.device = "d"


def test_paused_collector_is_restored_and_still_collects_cycles():
    import gc

    from dfc.ir.node import gc_paused

    class Cycle:
        pass

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        c = Cycle()
        c.me = c
        del c
    assert gc.isenabled()
    assert gc.collect() >= 1  # the cycle made while paused is found by a full collection
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # a caller's choice is kept
    finally:
        gc.enable()


def test_a_verified_graph_vouches_for_no_copy():
    """verify_ir skips a graph it passed and that has not changed since (a pass with
    nothing to do returns its input); a graph made from it is checked in full."""
    import pytest as _pytest

    from dfc.ir.node import IRError, copy_graph

    g = compile_spec(load_spec(str(ROOT / "specs" / "stream.yaml")), stop_after="cse")
    verify_ir(g)
    victim = next(d["node"] for d in g._node.values() if d["node"].inputs)
    broken = with_nodes(g, [victim.evolve(inputs=("nowhere",))])
    with _pytest.raises(IRError, match="do not match its inputs"):
        verify_ir(broken)
    copied = copy_graph(g)
    del copied._pred[victim.name][victim.inputs[0]]
    with _pytest.raises(IRError, match="do not match its inputs"):
        verify_ir(copied)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no node", "has no Node"),
        ("bad kind", "bad node"),
        ("cycle", "cycle"),
        ("prologue reads the loop", "runs once, before the loop, but reads a loop value"),
    ],
)
def test_verify_ir_reports_each_broken_invariant(breakage, message):
    from dfc.ir.node import IRError, copy_graph

    g = copy_graph(compile_spec(load_spec(str(ROOT / "specs" / "cg.yaml")), stop_after="cse"))
    verify_ir(g)
    g = copy_graph(g)
    once = next(d["node"] for d in g._node.values() if d["node"].scope == "" and d["node"].kind == "compute")
    looped = next(d["node"] for d in g._node.values() if d["node"].scope == "loop" and d["node"].kind == "compute")
    if breakage == "no node":
        g._node[once.name] = {}
    elif breakage == "bad kind":
        g._node[once.name] = {"node": once.evolve(kind="wat")}
    elif breakage == "cycle":
        first = once.inputs[0]
        g._succ[once.name][first] = g._pred[first][once.name] = {"bytes": 0}
    else:
        g._node[once.name] = {"node": once.evolve(inputs=once.inputs + (looped.name,))}
        g._succ[looped.name][once.name] = g._pred[once.name][looped.name] = {"bytes": 0}
    with pytest.raises(IRError, match=message):
        verify_ir(g, "test")


@pytest.mark.parametrize("each", [True, False])
def test_a_pass_that_breaks_the_ir_is_caught_after_it_or_after_the_last_pass(each, monkeypatch):
    """On graphs past VERIFY_EACH_LIMIT the IR is verified once, after the last pass (unless
    DFC_VERIFY_EACH=1): a broken pass is still caught, only not named."""
    import dfc.passes as passes
    from dfc.ir.node import IRError

    def broken(g, ctx):  # an edge lost: the later passes run on, as a subtle bug lets them
        from dfc.ir.node import copy_graph

        g = copy_graph(g)
        victim = next(d["node"] for d in g._node.values() if d["node"].kind == "assign")
        del g._pred[victim.name][victim.inputs[-1]], g._succ[victim.inputs[-1]][victim.name]
        return g

    pipeline = list(passes.PIPELINE)
    pipeline.insert(2, passes.Pass("broken", "breaks an invariant", broken))
    monkeypatch.setattr(passes, "PIPELINE", tuple(pipeline))
    monkeypatch.setattr(passes, "VERIFY_EACH_LIMIT", 0)
    monkeypatch.setenv("DFC_VERIFY_EACH", "1" if each else "0")
    seen = []
    where = "after broken" if each else r"after the passes \(up to comm\)"
    with pytest.raises(IRError, match=f"do not match its inputs {where}"):
        compile_spec(load_spec(str(ROOT / "specs" / "stream.yaml")), observe=lambda name, g: seen.append(name))
    assert seen == (
        ["build", "expand", "queues"]
        if each
        else ["build", "expand", "queues", "broken", "cse", "fuse", "place", "collective", "combine"]
    )


@pytest.mark.parametrize("n", [64, 1024])  # 1024: past POPULATE_BYTES, a mapped array
def test_gather_puts_each_block_tile_in_its_place(n):
    from dfc.ir.interp import POPULATE_BYTES, gather

    g = compile_spec(load_spec(str(ROOT / "specs" / "matmul.yaml"), [f"N={n}", f"T={n // 4}"]), stop_after="expand")
    rng = np.random.default_rng(n)
    storage, blocks = {}, [[None] * 4 for _ in range(4)]
    for d in g._node.values():
        v = d["node"]
        if v.kind == "variable" and v.data.tile is not None:
            storage[v.name] = rng.random(v.shape, dtype=np.float32)
            if v.data.tile.array == "A":
                i, j = v.data.tile.index
                blocks[i][j] = storage[v.name]
    whole = gather(g, storage)["A"]
    assert (whole.nbytes >= POPULATE_BYTES) == (n == 1024) and whole.flags.writeable
    np.testing.assert_array_equal(whole, np.block(blocks))


def _cg(via: str | None, sets=("N=256", "shift=48", "tol=0", "iterations=12")):
    text = (ROOT / "specs" / "cg.yaml").read_text()
    if via is not None:
        text = text.replace("broadcast: worker}", f"broadcast: worker, via: {via}}}")
    return load_spec_text(text.encode(), "cg.yaml", list(sets))


@pytest.mark.parametrize("strategy", ["round-robin", "heft"])
def test_all_reduces_compute_what_the_queue_form_computes(strategy):
    """The collective pass on the NumPy engine: every via: reduction of CG an all-reduce,
    the let's arithmetic made on each device that reads it, the answer the queue form's.
    (HEFT puts all of CG's vector work at N=256 on one device: local sums, no exchange.)"""
    coll, queue = compile_spec(_cg("collective"), strategy), compile_spec(_cg("queue"), strategy)
    kinds = {d["node"].kind for d in coll._node.values()}
    assert ("allreduce" in kinds) == (strategy == "round-robin")
    assert "dequeue" not in kinds and "broadcast" not in kinds
    assert "allreduce" not in {d["node"].kind for d in queue._node.values()}
    got, want = run_numpy(coll), run_numpy(queue)
    assert got.iterations_run == want.iterations_run == 12
    for name, ref in want.arrays.items():
        np.testing.assert_allclose(got.arrays[name], ref, rtol=1e-12, atol=1e-14, err_msg=name)
    for n in (d["node"] for d in coll._node.values()):
        if n.kind == "allreduce":  # every member's partial is an input; the local one on its device
            assert len(n.inputs) == len(n.data.members) and n.device in n.data.members
            assert coll.nodes[n.inputs[n.data.members.index(n.device)]]["node"].device == n.device


@pytest.mark.parametrize("strategy", ["heft", "round-robin"])
@pytest.mark.parametrize("latency", [1e-5, 1e-3])
def test_auto_takes_the_form_the_simulator_predicts_faster(strategy, latency):
    """reduce: {via: auto} (CG's default): the form with the lower predicted makespan, and
    that prediction is the plan's."""
    import dataclasses

    from dfc.cost.profile import Link

    profile = dataclasses.replace(Profile(), same_host=Link(latency, 1.8e9))
    spec = _cg(None, ("N=1024",))
    g = compile_spec(spec, strategy, profile=profile)
    r = g.graph["reductions"]["dots"]
    assert r["asked"] == "auto" and r["form"] == ("collective" if r["collective_s"] < r["queue_s"] else "queue")
    planned = simulate(g, CostModel(profile, devices(spec)), timeline=False, bound=False).makespan
    assert planned == pytest.approx(r[f"{r['form']}_s"], rel=1e-9)
    assert ("dequeue" in {d["node"].kind for d in g._node.values()}) == (r["form"] == "queue")


def test_the_plan_says_how_reductions_run(capsys, tmp_path):
    import json

    from dfc.cli import main

    assert main(["plan", str(ROOT / "specs" / "cg.yaml"), "--format", "json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)["reductions"]
    assert r["queue"] == "dots" and r["asked"] == "auto" and r["form"] in ("queue", "collective")
    queue = tmp_path / "cg.yaml"
    queue.write_text((ROOT / "specs" / "cg.yaml").read_text().replace("worker}", "worker, via: queue}"))
    assert main(["plan", str(queue)]) == 0
    assert "reductions via dots: through the queue, as the spec asks" in capsys.readouterr().out


def test_a_ring_all_reduce_costs_two_steps_per_member_less_one():
    cm = CostModel(Profile(), devices(_cg(None)))
    ring = tuple(d for d in cm.devices if "worker" in d)
    link = Profile().same_host
    assert len(ring) == 2
    assert cm.all_reduce(8, ring) == pytest.approx(2 * (link.latency + 4 / link.bandwidth) + Profile().op_overhead)


_TWO_LETS = """dfc: 1
name: lets
params: {P: 2}
cluster: {worker: {tasks: P}, reducer: {tasks: 1}}
arrays:
  c: {shape: [64], dtype: float64, tile: [32], init: {random: uniform, seed: 3}, output: true}
queues:
  q1: {on: reducer, reduce: {op: sum, via: VIA1}}
  q2: {on: reducer, reduce: {op: sum, broadcast: worker, via: VIA2}}
  q3: {on: reducer, reduce: {op: sum, broadcast: worker, via: VIA1}}
scalars:
  g: {init: "0.0"}
loop:
  max: 50
  until: done
  steps:
    - {for: {i: P}, update: {"c[i]": "c[i]*0.5 + g*0.001"}}
    - {let: g, reduce: "2*sum(dot(c[i], c[i]))", via: q1}
    - {let: h, reduce: "g*sum(dot(c[i], c[i]))", via: q2}
    - {let: done, reduce: "sum(dot(c[i], c[i])) < 1e-3", via: q3}
"""


@pytest.mark.parametrize("strategy", ["heft", "round-robin"])
def test_a_collective_let_ends_the_loop_and_a_queue_kept_stays(strategy):
    """`until:` naming a let reduced through an all-reduce (the loop's condition follows it,
    on both engines' reading of it), and a second queue's `via: queue` kept although its
    let reads the first one's all-reduced value."""
    from collections import Counter

    def run(via1: str, via2: str):
        spec = load_spec_text(_TWO_LETS.replace("VIA1", via1).replace("VIA2", via2).encode(), "lets.yaml")
        g = compile_spec(spec, strategy)
        loop = g.nodes["loop"]["node"]
        assert loop.inputs == (loop.data.until,)
        return g, run_numpy(g)

    g, got = run("collective", "queue")
    queues = Counter(n.data.queue for n in (d["node"] for d in g._node.values()) if n.kind in ("dequeue", "broadcast"))
    assert queues["q1"] == queues["q3"] == 0 and queues["q2"] == 2  # q2: its dequeue and broadcast
    assert g.graph["reductions"]["q2"] == {"asked": "queue", "form": "queue"}
    _, want = run("queue", "queue")
    _, both = run("collective", "collective")
    assert 1 < got.iterations_run == want.iterations_run == both.iterations_run < 50
    for other in (want, both):
        np.testing.assert_allclose(got.arrays["c"], other.arrays["c"], rtol=1e-12)


def test_fuse_merges_an_fft_in_blocks_from_the_tiles():
    """specs/fft.yaml: fft_merge of Y's cyclic tiles reads the tiles (no interleaved Y) and
    each block of X is its own fft_combine part, on the worker that owns the block; the
    bytes that cross are the sub-spectra a worker lacks, no input tile and no whole vector."""
    spec = load_spec(ROOT / "specs" / "fft.yaml", ["N=2**12", "P=4"])
    g = compile_spec(spec)
    nodes = [d["node"] for d in g._node.values()]
    assert not [n for n in nodes if n.op in ("interleave", "take_tile", "fft_merge")]
    parts = sorted((n for n in nodes if n.op == "fft_combine"), key=lambda n: n.name)
    assert [dict(n.data.kwargs) for n in parts] == [
        {"stride": 4, "lo": 0, "hi": 2048},
        {"stride": 4, "lo": 2048, "hi": 4096},
    ]
    assert [n.name for n in parts] == ["merge/1:fft_combine", "merge/2:fft_combine"]
    assert all(len(n.inputs) == 4 and n.shape == (2048,) for n in parts)
    owner = {n.data.target: n.device for n in nodes if n.kind == "assign"}
    x_owner = {n.name: n.device for n in nodes if n.kind == "variable"}
    assert {n.device for n in parts} == {owner["X[0]"], owner["X[1]"]} and len({n.device for n in parts}) == 2
    s = simulate(g, CostModel(Profile(), devices(spec)))
    sub_spectrum = 1024 * 16
    assert s.bytes_moved == 4 * sub_spectrum  # each worker receives the two it did not make
    crossing = {n.inputs[0] for n in nodes if n.kind == "send"}
    assert not crossing & set(x_owner), crossing  # no variable (x, Y) is shipped
    want = np.fft.fft(run_numpy(g).arrays["x"])
    np.testing.assert_allclose(run_numpy(g).arrays["X"], want, rtol=1e-12, atol=1e-12 * np.abs(want).max())


def test_fuse_leaves_what_no_registry_entry_offers_as_it_was():
    """A stride other than the tile count, and ops without the hooks: the whole array is
    built, the op applied, its tiles taken; the answers are the same."""
    text = """dfc: 1
name: f
params: {N: 64}
cluster: {worker: {tasks: 2}}
arrays:
  y: {shape: [N], dtype: complex128, tile: {cyclic: 4}, init: {random: normal, seed: 1}}
  X: {shape: [N], dtype: complex128, tile: [N/2], output: true}
  Z: {shape: [N], dtype: complex128, tile: [N/2], output: true}
tasks:
  m: {compute: "fft_merge(y, stride=8)", out: X}
  d: {compute: "2 * y", out: Z}
"""
    spec = load_spec_text(text.encode(), "f.yaml")
    g = compile_spec(spec)
    ops = sorted(d["node"].op for d in g._node.values() if d["node"].kind == "compute")
    assert ops.count("take_tile") == 4 and "fft_merge" in ops and "fft_combine" not in ops
    got = run_numpy(g).arrays
    from dfc.oracle import run_oracle

    want = run_oracle(spec)
    for name in ("X", "Z"):
        np.testing.assert_allclose(got[name], want.arrays[name], rtol=1e-12, atol=1e-12)


def test_a_transfer_costs_cpu_at_both_ends():
    """A chain worker:0 -> worker:1 by hand: the link's cpu (seconds per byte) adds exactly
    bytes * cpu to each end's busy time and twice that to the makespan; the placement
    search's Predictor and HEFT's own finish times say the same."""
    from dataclasses import replace

    from dfc.cost.profile import Link

    text = """dfc: 1
name: chain
params: {N: 2**16}
cluster: {worker: {tasks: 2}}
arrays:
  a: {shape: [N], dtype: float64, init: ones, on: "worker:0"}
  b: {shape: [N], dtype: float64, on: "worker:0"}
  c: {shape: [N], dtype: float64, output: true, on: "worker:1"}
tasks:
  make: {compute: "2 * a", out: b, on: "worker:0"}
  use:  {compute: "3 * b", out: c, on: "worker:1"}
"""
    spec = load_spec_text(text.encode(), "chain.yaml")
    nbytes = 8 * 2**16
    runs = {}
    for cpu in (0.0, 1e-9):
        profile = replace(Profile(), same_host=Link(1e-4, 1e9, cpu))
        cm = CostModel(profile, devices(spec))
        g = compile_spec(spec, profile=profile)
        s = simulate(g, cm)
        pre = compile_spec(spec, profile=profile, stop_after="fuse")
        where = {k: v["node"].device for k, v in g.nodes(data=True) if k in pre}
        assert Predictor(pre, cm)(where) == pytest.approx(s.makespan, rel=1e-12)
        from dfc.passes.place import _Heft

        h = _Heft(pre, cm, devices(spec), slack=True)
        h.rank_upward()
        h.pin_data()
        h.project_work()
        h.schedule("")
        # (HEFT schedules ops: the runs' and the loop's overheads are the simulator's)
        assert max(h.finish.values()) == pytest.approx(s.makespan - s.overhead, rel=1e-12)
        runs[cpu] = s
    w0, w1 = sorted(runs[0.0].busy)
    assert runs[1e-9].busy[w0] - runs[0.0].busy[w0] == pytest.approx(nbytes * 1e-9)
    assert runs[1e-9].busy[w1] - runs[0.0].busy[w1] == pytest.approx(nbytes * 1e-9)
    assert runs[1e-9].makespan - runs[0.0].makespan == pytest.approx(2 * nbytes * 1e-9)
    kinds = {slot.kind for slot in runs[1e-9].timeline}
    assert "unpack" in kinds and "unpack" not in {slot.kind for slot in runs[0.0].timeline}


def test_a_profile_refuses_link_keys_it_does_not_know(tmp_path):
    from dfc.cost.profile import ProfileError, load_profile

    p = tmp_path / "p.yaml"
    p.write_text("same_host: {latency: 1e-4, cpu: 2e-10}\n")
    assert load_profile(str(p)).same_host.cpu == 2e-10
    bad_values = ("{cpu: -1}", "{cpu: .nan}", "{cpu: .inf}", "{cpu: true}", "{cpu: x}", "{bandwidth: 0}", "{gap: -1}")
    for bad, why in (("{latency: 1e-4, cpus: 1}", "same_host.cpus"), *((b, "bad value") for b in bad_values)):
        p.write_text(f"same_host: {bad}\n")
        with pytest.raises(ProfileError, match=why):
            load_profile(str(p))
    # measured sizes: [bytes, seconds], bytes growing, times positive
    p.write_text("same_host: {sizes: [[1000, 1.0e-4], [4000, 3.0e-4]]}\n")
    assert load_profile(str(p)).same_host.sizes == ((1000, 1e-4), (4000, 3e-4))
    for bad in ("[[4000, 1.0e-4], [1000, 3.0e-4]]", "[[1000, 0]]", "[[1000]]", "x", "[[-1, 1.0]]"):
        p.write_text(f"same_host: {{sizes: {bad}}}\n")
        with pytest.raises(ProfileError, match="sizes"):
            load_profile(str(p))


def test_a_profile_takes_measured_kernels_of_known_ops_only(tmp_path):
    from dfc.cost.profile import ProfileError, load_profile

    p = tmp_path / "p.yaml"
    p.write_text("kernels: {matmul: [{dtype: float32, bytes: 12, flops: 34, seconds: 1.0e-3}]}\nkernel_tasks: 3\n")
    prof = load_profile(str(p))
    assert prof.kernels["matmul"][0].seconds == 1e-3 and prof.kernel_tasks == 3
    assert prof.to_json()["kernels"] == {"matmul": [{"dtype": "float32", "bytes": 12, "flops": 34, "seconds": 1e-3}]}
    for bad, why in (
        ("kernels: {matmull: []}", "names no op 'matmull'"),
        ("kernels: {matmul: {}}", "must be a list"),
        ("kernels: {matmul: [{dtype: float32, bytes: 1, flops: 1}]}", "exactly dtype, bytes, flops, seconds"),
        ("kernels: {matmul: [{dtype: float32, bytes: 1, flops: 1, seconds: 0}]}", "bad entry"),
        ("kernels: {matmul: [{dtype: float32, bytes: x, flops: 1, seconds: 1}]}", "bad entry"),
        ("kernels: []", "must map an op"),
        ("kernel_tasks: 0", "kernel_tasks"),
    ):
        p.write_text(bad + "\n")
        with pytest.raises(ProfileError, match=why):
            load_profile(str(p))


@pytest.mark.parametrize(
    "tasks",
    [
        # in a loop: this iteration's merge reads Y before the step after it doubles Y
        """tasks:
  sub: {for: {p: P}, compute: "fft(x[p])", out: "Y[p]"}
loop:
  max: 3
  steps:
    - {compute: "fft_merge(Y, stride=P)", out: X}
    - {for: {p: P}, compute: "2 * Y[p]", out: "Y[p]"}
""",
        # one update: every right-hand side reads the old values (Y's initial tiles)
        """tasks:
  both: {update: {"X": "fft_merge(Y, stride=P)", "Y[0]": "2 * Y[0]"}}
""",
    ],
)
def test_fuse_keeps_every_read_before_the_write_after_it(tasks):
    """The fused readers (fft_combine parts, reading Y's tiles) come before the assigns
    that overwrite those tiles, as the reads they replace did; nothing is left of the
    interleaved Y; both engines' answers are the oracle's."""
    from dfc.oracle import run_oracle

    text = f"""dfc: 1
name: war
params: {{N: 64, P: 4}}
cluster: {{worker: {{tasks: 2}}}}
arrays:
  x: {{shape: [N], dtype: complex128, tile: {{cyclic: P}}, init: {{random: normal, seed: 3}}}}
  Y: {{like: x, init: {{random: normal, seed: 4}}}}
  X: {{shape: [N], dtype: complex128, tile: [N/2], output: true}}
{tasks}"""
    spec = load_spec_text(text.encode(), "war.yaml")
    fused = compile_spec(spec, stop_after="fuse")
    nodes = {k: v["node"] for k, v in fused.nodes(data=True)}
    assert not [n for n in nodes.values() if n.op == "interleave"]
    parts = [n for n in nodes.values() if n.op == "fft_combine"]
    writes = [n for n in nodes.values() if n.kind == "assign" and n.data.target.startswith("Y[")]
    checked = 0
    for w in writes:  # a part that reads the variable w overwrites runs before w
        for part in parts:
            if w.data.target in part.inputs and part.scope == w.scope:
                assert nx.has_path(fused, part.name, w.name), (part.name, w.name)
                checked += 1
    assert checked >= 2
    want = run_oracle(spec).arrays["X"]
    np.testing.assert_allclose(run_numpy(compile_spec(spec)).arrays["X"], want, rtol=1e-12, atol=1e-12)


def test_a_let_naming_a_loop_variable_reads_it_before_the_variable_is_written():
    """`let: prev, value: lam` then `let: lam, ...` in one body: prev is this iteration's
    old lam (a copy made before the write), so `until: abs(lam - prev) ...` stops when lam
    stops moving, on the NumPy engine as in the oracle (it stopped after one iteration)."""
    from dfc.oracle import run_oracle

    spec = load_spec(ROOT / "specs" / "power.yaml", ["N=64"])
    g = compile_spec(spec)
    nodes = {k: v["node"] for k, v in g.nodes(data=True)}
    copy = next(k for k, n in nodes.items() if n.op == "copy" and n.inputs == ("scalar:lam",))
    write = next(k for k, n in nodes.items() if n.kind == "assign" and n.data.target == "scalar:lam" and n.scope)
    assert nx.has_path(g, copy, write)
    got, want = run_numpy(g), run_oracle(spec)
    assert got.iterations_run == want.iterations_run > 1
    assert got.scalars["lam"] == pytest.approx(want.scalars["lam"], rel=1e-12)
