"""The simulator's arithmetic on graphs small enough to compute by hand, with a profile of
round numbers: each figure below is written out from the cost model's definition
(docs/compiler.md, "The cost model"), not taken from the code that computes it."""

from __future__ import annotations

import pytest

from dfc.cost.model import CostModel
from dfc.cost.profile import Link, Profile
from dfc.cost.simulate import simulate
from dfc.ir.devices import devices
from dfc.lang import load_spec_text
from dfc.passes import compile_spec

# a host of 1 GFLOP/s and 10 GB/s shared by two tasks (each gets half), 10 us an op; a
# link of 100 us, 1 GB/s and 1 ns of CPU per byte at each end; 1 ms a session.run; a
# graph's first run 2 ms and 50 us an IR node more (in the loop: 4 ms and 60 us); 300 us
# an iteration of a loop across two tasks
PROFILE = Profile(
    cpu_flops={"float64": 1e9},
    cpu_mem_bandwidth=1e10,
    op_overhead=1e-5,
    same_host=Link(1e-4, 1e9, 1e-9),
    run_overhead=1e-3,
    first_run=2e-3,
    first_run_node=5e-5,
    first_run_loop=4e-3,
    first_run_loop_node=6e-5,
    loop_overhead=3e-4,
)

ONE_TRANSFER = """dfc: 1
name: hand
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [1000], dtype: float64, init: ones, on: "worker:0"}
  y: {shape: [1000], dtype: float64, on: "worker:1", output: true}
tasks:
  t: {compute: "2 * x", out: y, on: "worker:1"}
placement: {strategy: manual}
"""


def _schedule(text: str, **kw):
    spec = load_spec_text(text.encode(), "hand.yaml")
    g = compile_spec(spec)
    return simulate(g, CostModel(PROFILE, devices(spec)), **kw), g


def test_a_transfer_then_an_op_then_its_write():
    """x (8000 bytes) crosses from worker 0 to worker 1, is doubled there and written.
    Worker 0 computes nothing, so worker 1 has the host to itself (1 GFLOP/s, 10 GB/s)."""
    s, _ = _schedule(ONE_TRANSFER)
    send = 8000 * 1e-9  # the sender's CPU
    wire = 1e-4 + 8000 / 1e9  # latency + bytes / bandwidth
    unpack = 8000 * 1e-9  # the receiver's CPU
    # 1000 flops at 1 GFLOP/s = 1 us; it reads 8000 + 8 and writes 8000 bytes (16008)
    # at 10 GB/s = 1.6008 us: memory-bound, plus the overhead
    mul = max(1000 / 1e9, 16008 / 1e10) + 1e-5
    assign = 2 * 8000 / 1e10 + 1e-5  # an assign reads and writes its tile
    # one session.run, whose graph runs for the first time: the multiply, the write and
    # the recv (the variables were made by the init phase; a send is the recv's)
    first = 1e-3 + 2e-3 + 3 * 5e-5
    assert s.overhead == pytest.approx(first, rel=1e-12)
    assert s.makespan == pytest.approx(send + wire + unpack + mul + assign + first, rel=1e-12)
    assert s.bytes_moved == 8000
    w0, w1 = (d for d in s.busy)
    assert s.busy[w0] == pytest.approx(send, rel=1e-12)
    assert s.busy[w1] == pytest.approx(unpack + mul + assign, rel=1e-12)
    # the bound: transfers free, every op on its cheapest allowed device: the chain of the
    # op and its write (all the work may run on worker 1 alone), and the run's overheads
    # less the transfers'
    assert s.lower_bound == pytest.approx(mul + assign + 1e-3 + 2e-3 + 2 * 5e-5, rel=1e-12)


TWO_DEVICES = """dfc: 1
name: hand
params: {N: 4000, P: 4}
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [N], dtype: float64, tile: [N/P], init: ones}
  y: {shape: [N], dtype: float64, tile: [N/P], output: true}
placement: {strategy: manual, constraints: {x: "worker:0", y: "worker:0", t: "worker:0"}}
tasks:
  t: {for: {i: P}, compute: "x[i] * x[i]", out: "y[i]"}
"""


def test_work_confined_to_one_device_runs_one_op_at_a_time_and_bounds_the_schedule():
    """Four independent squares and their writes, all pinned to worker 0: they run one
    after another there, with the host to themselves (worker 1 computes nothing); the
    bound divides that work by one device, not two."""
    s, _ = _schedule(TWO_DEVICES)
    # a square reads its operand as both inputs and writes its result: 3 x 8000 bytes at
    # 10 GB/s = 2.4 us, above its 1 us of flops; then the overhead
    square = max(1000 / 1e9, 24000 / 1e10) + 1e-5
    assign = 2 * 8000 / 1e10 + 1e-5
    first = 1e-3 + 2e-3 + 8 * 5e-5  # one run; four squares and four writes run the first time
    assert s.bytes_moved == 0
    assert s.makespan == pytest.approx(4 * (square + assign) + first, rel=1e-12)
    assert s.busy[next(iter(s.busy))] == pytest.approx(4 * (square + assign), rel=1e-12)
    # the bound: all of it may run on worker 0 alone (the writes where y lives): 4 x both
    assert s.lower_bound == pytest.approx(s.makespan, rel=1e-12)


A_LOOP = """dfc: 1
name: hand
cluster: {worker: {tasks: 2}}
arrays:
  x: {shape: [2], dtype: float64, init: ones, on: "worker:0"}
  y: {shape: [2], dtype: float64, init: ones, on: "worker:1"}
loop:
  max: 20
  steps:
    - {update: {x: x * 2}, on: "worker:0"}
    - {update: {y: y * 2}, on: "worker:1"}
placement: {strategy: manual}
"""


def test_a_loop_across_two_tasks_pays_its_control_every_iteration_and_runs_in_chunks():
    """Twenty iterations of two independent products, one on each worker (each has half
    the host): each iteration costs one product and its write (both run at once) and
    300 us of the loop's control;
    the engine runs one iteration, then as many as take half a second but at most 8 times
    more each run (8, then the 11 left), so three session.runs; the loop's graph runs
    first once: its 5 nodes (two products, two writes, the loop's control)."""
    s, g = _schedule(A_LOOP)
    # a product reads 16 + 8 bytes and writes 16: 40 bytes at 5 GB/s (8 ns), above its
    # 2 flops at 0.5 GFLOP/s (4 ns); its write reads and writes 16 bytes each
    product = 40 / 5e9 + 1e-5
    assign = 2 * 16 / 5e9 + 1e-5
    assert s.iteration == pytest.approx(product + assign, rel=1e-12)
    assert s.overhead == pytest.approx(20 * 3e-4 + 3 * 1e-3 + 4e-3 + 5 * 6e-5, rel=1e-12)
    assert s.makespan == pytest.approx(20 * (product + assign) + s.overhead, rel=1e-12)
    # the bound: a loop whose variables live on two tasks spans two, whatever the placement
    assert s.lower_bound == pytest.approx(s.makespan, rel=1e-12)


@pytest.mark.parametrize("name", ["matmul", "cg"])
def test_heft_is_within_1_2_of_the_constraint_aware_bound(name):
    """The bound divides the products' work by the two workers they may run on (`on:
    worker`), not by every device: HEFT's prediction for matmul and CG at their sizes is
    within 1.2x of it (issue 16's goal, with the built-in profile)."""
    from pathlib import Path

    from dfc.cost.profile import Profile
    from dfc.lang import load_spec

    spec = load_spec(Path(__file__).resolve().parents[2] / "specs" / f"{name}.yaml")
    g = compile_spec(spec)
    s = simulate(g, CostModel(Profile(), devices(spec)))
    assert s.lower_bound <= s.makespan <= 1.2 * s.lower_bound, (s.makespan, s.lower_bound)


def test_a_link_with_measured_sizes_reads_a_message_off_them():
    """Between two measured sizes a message's whole time is interpolated; past the last,
    the last segment goes on; each end's CPU is its bytes times ``cpu`` but never 45 % of
    the flight; the link's own time is what is left."""
    link = Link(1e-4, 1e9, 1e-9, 2e-5, sizes=((1_000_000, 2e-3), (4_000_000, 5e-3)))
    assert link.whole(2_500_000) == pytest.approx(3.5e-3, rel=1e-12)
    assert link.whole(8_000_000) == pytest.approx(9e-3, rel=1e-12)  # 1e-3 per MB more
    assert link.whole(500_000) == pytest.approx(1.2e-4 + (2e-3 - 1.2e-4) / 2, rel=1e-12)
    # 1 MB is 1 ms of CPU at each end, but 0.45 x (2 ms - 0.1 ms) = 0.855 ms caps it
    assert link.ends(1_000_000) == pytest.approx(0.855e-3, rel=1e-12)
    assert link.wire(1_000_000) == pytest.approx(2e-3 - 1e-4 - 2 * 0.855e-3, rel=1e-12)
    assert link.ends(4_000_000) == pytest.approx(min(4e-3, 0.45 * 4.9e-3), rel=1e-12)
    # without sizes, LogGP's parts add up: latency, gap, bytes / bandwidth, both ends
    plain = Link(1e-4, 1e9, 1e-9, 2e-5)
    assert plain.whole(1_000_000) == pytest.approx(1e-4 + 2e-5 + 1e-3 + 2e-3, rel=1e-12)
    assert plain.wire(1_000_000) == pytest.approx(2e-5 + 1e-3, rel=1e-12)


def test_a_measured_kernel_prices_its_size_and_scales_to_others():
    """A kernel measured with two tasks on the host (each half of it): a node of that size
    costs what was measured; one of twice the bytes (memory-bound), the part above the
    per-op overhead twice over; on a host of one task (the whole of it), half of that."""
    from dataclasses import replace as _replace

    from dfc.cost.kernels import Kernel
    from dfc.ir.node import Node

    measured = Kernel("add", "float64", 24_000, 1000, 5e-5)
    profile = _replace(PROFILE, kernels={"add": (measured,)}, kernel_tasks=2)
    two = CostModel(profile, ("/job:worker/task:0/device:CPU:0", "/job:worker/task:1/device:CPU:0"))
    one = CostModel(profile, ("/job:worker/task:0/device:CPU:0",))
    dev = "/job:worker/task:0/device:CPU:0"
    same = Node("a", "compute", op="add", dtype="float64", flops=1000, mem_bytes=24_000, out_bytes=8000)
    double = same.evolve(name="b", flops=2000, mem_bytes=48_000, out_bytes=16000)
    assert two.compute(same, dev) == pytest.approx(5e-5, rel=1e-12)
    assert two.compute(double, dev) == pytest.approx(1e-5 + 2 * 4e-5, rel=1e-12)
    assert one.compute(same, dev) == pytest.approx(1e-5 + 4e-5 / 2, rel=1e-12)
    # measured alone too (35 us: it gains little from the whole host): a task alone on
    # its host pays that, one sharing it with a task half as busy (1.5 competing) pays
    # halfway between alone and two at once
    both = _replace(profile, kernels={"add": (_replace(measured, alone=3.5e-5),)})
    assert CostModel(both, one.devices).compute(same, dev) == pytest.approx(3.5e-5, rel=1e-12)
    halfway = CostModel(both, two.devices).sharing({dev: 2.0, "/job:worker/task:1/device:CPU:0": 1.0})
    assert halfway.compute(same, dev) == pytest.approx(1e-5 + (2.5e-5 + 4e-5) / 2, rel=1e-12)
    # an op never measured keeps the roofline: 48000 bytes at 5 GB/s, plus the overhead
    other = double.evolve(name="c", op="sub")
    assert two.compute(other, dev) == pytest.approx(48_000 / 5e9 + 1e-5, rel=1e-12)
