"""Random valid dfc programs: tiled elementwise ops, matmuls through reducer queues,
row-block matvecs, scalar reductions through a queue, and a loop of in-place updates.
Used by property tests (passes, planner) and differential tests (engines)."""

from __future__ import annotations

import random


def random_spec(seed: int) -> str:
    rnd = random.Random(seed)
    t = rnd.choice([4, 8])
    g = rnd.choice([1, 2, 3])
    n = t * g
    workers, reducers = rnd.choice([1, 2, 3]), rnd.choice([1, 2])
    dtype = rnd.choice(["float32", "float64"])
    lines = [
        "dfc: 1",
        f"name: gen{seed}",
        f"params: {{N: {n}, T: {t}, G: {g}}}",
        f"cluster: {{worker: {{tasks: {workers}}}, reducer: {{tasks: {reducers}}}}}",
        "arrays:",
        f"  A: {{shape: [N, N], dtype: {dtype}, tile: [T, T], init: {{random: uniform, seed: {seed % 97}}}}}",
        f"  B: {{shape: [N, N], dtype: {dtype}, tile: [T, T], init: {{random: normal, seed: {seed % 89 + 1}}}}}",
        f"  x: {{shape: [N], dtype: {dtype}, tile: [T], init: {{random: uniform, seed: {seed % 83 + 2}}}}}",
        f"  C: {{shape: [N, N], dtype: {dtype}, tile: [T, T], output: true}}",
        f"  D: {{shape: [N, N], dtype: {dtype}, tile: [T, T], output: true}}",
        f"  y: {{shape: [N], dtype: {dtype}, tile: [T], init: ones, output: true}}",
        "queues:",
        f"  q: {{on: reducer, shards: {reducers}, shard: '(i + j) % {reducers}', reduce: {{op: sum, into: C}}}}",
        "  dots: {on: reducer, reduce: {op: sum, broadcast: worker}}",
        "scalars:",
        "  s: {init: 'sum(dot(x[i], x[i]))', via: dots}",
        "tasks:",
        "  product: {for: {i: G, j: G, k: G}, compute: 'A[i, k] @ B[k, j]', push: 'q[i, j]', on: worker}",
    ]
    ew = rnd.choice(
        [
            "A[i, j] + 2*B[i, j]",
            "A[i, j] * B[i, j] - A[i, j]",
            "abs(B[i, j]) / (1 + A[i, j])",
            "A[i, j] @ B[j, i]" if g > 0 else "A[i, j]",
        ]
    )
    lines.append(f"  ew: {{for: {{i: G, j: G}}, compute: '{ew}', out: 'D[i, j]'}}")
    if rnd.random() < 0.5:
        lines.append("  mv: {for: {i: G}, compute: 'A[i, :] @ x', out: 'y[i]'}")
    iters = rnd.choice([1, 2, 3])
    lines += [
        "loop:",
        f"  max: {iters}",
        "  steps:",
        "    - {for: {i: G}, update: {'y[i]': 'y[i] + 0.5 * x[i]'}}",
        "    - {let: t, reduce: 'sum(dot(y[i], x[i]))', via: dots}",
        "    - {for: {i: G}, update: {'x[i]': 'x[i] * (1 / (1 + abs(t)))'}}",
        "metrics: {flops: 2*N**3}",
    ]
    return "\n".join(lines) + "\n"
