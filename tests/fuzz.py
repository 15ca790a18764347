"""Random dfc programs for the differential fuzzer against the oracle.

``program(pick)`` writes one spec; ``pick(options)`` chooses one of a list, so the same
generator runs under hypothesis (which shrinks a failing program to a small one) and
under a seeded ``random.Random`` (the TF engine's sample). What it covers: every dtype,
block (square and row-block) and cyclic tilings, expressions with several reductions, nested reductions
(binding the same or other index names), matvecs inside reductions, scalars from
reductions (with and without a queue) used in later steps, ``update``/``out``/``push``
into a reducing queue (sum, max or min, static or dynamic schedule), whole-array writes,
``pop`` with ``fft_merge``, and loops that stop on ``until``.
"""

from __future__ import annotations

from typing import Callable, Sequence

Pick = Callable[[Sequence], object]

DTYPES = ["float32", "float64", "complex64", "complex128", "int32", "int64"]
VECTORS = ["u", "v", "w"]


class Program:
    def __init__(self, pick: Pick):
        self.pick = pick
        self.dtype = pick(DTYPES)
        self.complex = self.dtype.startswith("complex")
        self.int = self.dtype.startswith("int")
        self.real = not self.complex
        self.queues: dict[str, str] = {}
        self.scalars: list[str] = []  # declared scalars (visible everywhere)
        self.lets: list[str] = []  # let names bound so far in this loop iteration
        self.indices = ["k", "m", "n"]
        self.readable = VECTORS  # what expressions may read
        self.rows = bool(pick([False, True]))  # M in row blocks [T, N] (CG's tiling) or square tiles

    def coin(self) -> bool:
        return bool(self.pick([False, True]))

    # ------------------------------------------------------------ expressions
    def const(self) -> str:
        return str(self.pick([1, 2, 3, -1, 2.5])) if self.int else str(self.pick([0.5, 2, -1, 0.25, 1.5]))

    def vec(self) -> str:
        return self.pick(self.readable)

    def scalar_leaf(self, via: bool) -> str:
        """A number: a reduction over a free index, a norm, a name or a constant."""
        k, x, y = self.pick(self.indices), self.vec(), self.vec()
        free = [
            f"sum(dot({x}[{k}], {y}[{k}]))",
            f"sum(sum({x}[{k}]))",
            f"sum(sum(M[{k}, {self.pick(['m', 'j'])}]))",
            f"sum(dot(M[{k}, :] @ {x}, {y}[{k}]))",
        ]
        if self.real and not via:
            free += [f"max(max({x}[{k}]))", f"min(dot({x}[{k}], {y}[{k}]))", f"max(sum({x}[{k}]))"]
        if via:
            return self.pick(free)
        local = [f"sum({x})", self.const(), *self.scalars, *self.lets]
        if not self.int:
            local.append(f"norm({x})")
        return self.pick(free + local)

    def scalar(self, depth: int, via: bool = False) -> str:
        """A scalar expression; with ``via`` its reductions outside others go through a queue
        (so they must use the queue's op, sum) and it has at least one."""
        if depth == 0:
            return self.scalar_leaf(via)
        kind = self.pick(["leaf", "+", "-", "*", "/", "nested", "nested-same", "nested-mixed"])
        a = self.scalar(depth - 1, via)
        if kind == "leaf":
            return a
        if kind.startswith("nested"):  # a reduction whose term holds another reduction
            k = self.pick(self.indices)
            inner_k = k if kind == "nested-same" else self.pick([i for i in self.indices if i != k])
            x, y = self.vec(), self.vec()
            other = k if kind == "nested-mixed" else inner_k  # mixed: the inner one binds both
            return f"sum(dot({x}[{k}], {y}[{k}]) * sum(dot({y}[{inner_k}], {x}[{other}])))"
        b = self.scalar(depth - 1, False)
        if kind == "/":
            if self.int or self.complex:
                return f"({a}) * ({b})"
            return f"({a}) / (1 + ({b}) * ({b}))"
        return f"({a}) {kind} ({b})"

    def tile(self, depth: int, i: str = "i") -> str:
        """A vector tile expression with ``i`` bound by the task's `for:`."""
        if depth == 0:
            x = self.vec()
            return self.pick(
                [f"{x}[{i}]", f"{self.const()} * {x}[{i}]", *(f"{s} * {x}[{i}]" for s in self.scalars + self.lets)]
            )
        kind = self.pick(["+", "-", "*", "neg", "matvec", "rowsum", "scaled", "max", "abs"])
        a = self.tile(depth - 1, i)
        if kind == "neg":
            return f"-({a})"
        if kind == "matvec":
            return f"M[{i}, :] @ {self.vec()}"
        if kind == "rowsum" and not self.rows:  # a reduction over j inside a task over i
            return f"sum(M[{i}, j] @ {self.vec()}[j])"
        if kind == "rowsum":
            return f"M[{i}, :] @ {self.vec()}"
        if kind == "scaled":
            return f"({a}) * ({self.scalar(1)})"
        if kind in ("max", "abs") and self.complex:
            kind = "+"
        if kind == "max":
            return f"max({a}, {self.tile(depth - 1, i)})"
        if kind == "abs":
            return f"abs({a})"
        return f"({a}) {kind} ({self.tile(depth - 1, i)})"

    # ------------------------------------------------------------ sections
    def init(self, seed: int) -> str:
        if self.int:
            return self.pick([f"{{random: uniform, seed: {seed}, low: -4, high: 5}}", "ones", "{constant: 2}"])
        return self.pick(
            [f"{{random: uniform, seed: {seed}, low: -1, high: 1}}", f"{{random: normal, seed: {seed}}}", "ones"]
        )

    def via(self) -> str:
        self.queues.setdefault("dots", "{on: reducer, reduce: {op: sum, broadcast: worker}}")
        return "dots"

    def let(self, name: str) -> str:
        if self.coin():
            return f'    - {{let: {name}, reduce: "{self.scalar(self.pick([0, 1, 2]), True)}", via: {self.via()}}}'
        return f'    - {{let: {name}, value: "{self.scalar(self.pick([0, 1, 2]))}"}}'

    def product(self, name: str, scope: str, reducers: int) -> str:
        """A task over (i, j, k) pushing tiles into a reducer that fills C (``name``: a
        loop step's ``name: ...,`` prefix, or nothing)."""
        op = self.pick(["sum", "max", "min"] if self.real else ["sum"])
        self.queues["partials"] = (
            f"{{on: reducer, shards: {reducers}, shard: '(i + j) % {reducers}', reduce: {{op: {op}, into: C}}}}"
        )
        compute = self.pick(["M[i, k] @ M[k, j]", "M[i, k] * M[k, j]", "M[i, k] + M[k, j]"])
        schedule = self.pick(["static", "dynamic"]) if scope == "" else "static"
        return (
            f"{{{name}for: {{i: G, j: G, k: G}}, compute: '{compute}', push: 'partials[i, j]', "
            f"on: worker, schedule: {schedule}}}"
        )

    def text(self) -> str:
        pick = self.pick
        t, g = pick([2, 3]), pick([1, 2, 3])
        workers, reducers = pick([1, 2, 3]), pick([1, 2])
        d = self.dtype
        tiles = {x: pick(["[T]", "{cyclic: G}"]) for x in VECTORS}
        arrays = [
            f"  {x}: {{shape: [N], dtype: {d}, tile: {tiles[x]}, init: {self.init(s + 1)}, output: true}}"
            for s, x in enumerate(VECTORS)
        ]
        arrays += [
            f"  M: {{shape: [N, N], dtype: {d}, tile: {'[T, N]' if self.rows else '[T, T]'}, init: {self.init(7)}}}",
            f"  C: {{shape: [N, N], dtype: {d}, tile: [T, T], output: true}}",
            f"  z: {{shape: [N], dtype: {d}, tile: {pick(['[T]', '{cyclic: G}'])}, output: true}}",
        ]
        sdtype = d if not self.dtype.startswith("float") else pick([d, "float64"])
        scalars = []
        if self.coin():
            via = self.coin()
            self.readable = ["u", "v"]  # not w, which the first task writes from s: a cycle
            init = self.scalar(pick([0, 1, 2]), via)
            self.readable = VECTORS
            scalars.append(f'  s: {{init: "{init}", dtype: {sdtype}{", via: " + self.via() if via else ""}}}')
            self.scalars.append("s")
        counted = self.coin()
        if counted:
            scalars.append(f"  count: {{init: 0, dtype: {sdtype if self.real else 'float64'}}}")
        tasks = [f"  first: {{for: {{i: G}}, compute: '{self.tile(pick([0, 1, 2]))}', out: 'w[i]'}}"]
        if self.coin() and not self.rows:
            tasks.append("  product: " + self.product("", "", reducers))
        if self.coin():
            tasks.append(f"  whole: {{compute: '{pick(['u + v', '2 * u - w', 'u * v'])}', out: z}}")
        if self.complex and self.coin():
            self.queues["spectra"] = "{on: worker, capacity: 4}"
            arrays.append(f"  x: {{shape: [N], dtype: {d}, tile: {{cyclic: G}}, init: {self.init(9)}}}")
            arrays.append(f"  X: {{shape: [N], dtype: {d}, output: true}}")
            tasks.append("  sub: {for: {p: G}, compute: 'fft(x[p])', push: 'spectra[p]', on: worker}")
            tasks.append("  merge: {pop: spectra, compute: 'fft_merge(spectra, stride=G)', out: X}")
        loop = []
        if self.coin():
            steps = []
            if counted:
                steps.append('    - {let: count, value: "count + 1"}')
            for n in range(pick([1, 2, 3, 4])):
                kind = pick(["let", "update", "out", "push", "scalar"])
                if kind == "let":
                    name = f"a{n}"
                    steps.append(self.let(name))
                    self.lets.append(name)
                elif kind == "scalar" and self.scalars:
                    steps.append(self.let("s"))
                elif kind == "push" and not self.rows:
                    steps.append("    - " + self.product(f"name: prod{n}, ", "loop", reducers))
                elif kind in ("out", "push"):
                    steps.append(f"    - {{for: {{i: G}}, compute: '{self.tile(pick([0, 1]))}', out: 'z[i]'}}")
                else:
                    targets = sorted({pick(VECTORS), pick(VECTORS)})
                    ups = ", ".join(f"'{x}[i]': '{self.tile(pick([0, 1, 2]))}'" for x in targets)
                    steps.append(f"    - {{for: {{i: G}}, update: {{{ups}}}}}")
            until = []
            if counted and self.real:
                until = [f'  until: "count >= {pick([1, 2])}"']
            loop = ["loop:", f"  max: {pick([1, 2, 3])}", *until, "  steps:", *steps]
        queues = ["queues:", *(f"  {q}: {v}" for q, v in self.queues.items())] if self.queues else []
        return (
            "\n".join(
                [
                    "dfc: 1",
                    "name: fuzz",
                    f"params: {{T: {t}, G: {g}, N: {t * g}}}",
                    f"cluster: {{worker: {{tasks: {workers}}}, reducer: {{tasks: {reducers}}}}}",
                    "arrays:",
                    *arrays,
                    *queues,
                    *(["scalars:", *scalars] if scalars else []),
                    "tasks:",
                    *tasks,
                    *loop,
                ]
            )
            + "\n"
        )


def program(pick: Pick) -> str:
    return Program(pick).text()


#: how close an engine must come to the oracle, relative to each array's largest
#: magnitude: summation order differs (queues, combiners), so floats agree to rounding
TOLERANCE = {"float32": 2e-4, "complex64": 2e-4, "float64": 1e-10, "complex128": 1e-10, "int32": 0, "int64": 0}


def disagreements(want, got) -> list[str]:
    """Where an engine's result differs from the oracle's (empty: they agree)."""
    import numpy as np

    out = []
    if got.iterations_run != want.iterations_run:
        out.append(f"iterations: {got.iterations_run} != {want.iterations_run}")
    for name, w in want.arrays.items():
        g = np.asarray(got.arrays.get(name))
        if g.shape != w.shape or g.dtype != w.dtype:
            out.append(f"{name}: {g.dtype}{list(g.shape)} != {w.dtype}{list(w.shape)}")
            continue
        # at least an absolute 1 x tolerance: a converged residual (1e-12) is rounding noise
        tol = TOLERANCE[w.dtype.name] * max(float(np.max(np.abs(w))), 1.0)
        bad = np.abs(g.astype(np.complex128) - w) > tol
        if np.any(bad):
            at = tuple(int(k) for k in np.argwhere(bad)[0])
            out.append(f"{name}{list(at)}: {g[at]} != {w[at]} ({int(bad.sum())} of {w.size} elements)")
    loosest = max(TOLERANCE[w.dtype.name] for w in want.arrays.values())  # scalars come from the arrays
    for name, w in want.scalars.items():
        g = got.scalars.get(name)
        if g is None or abs(g - w) > loosest * max(abs(w), 1.0) * 10:
            out.append(f"scalar {name}: {g} != {w}")
    return out


def finite(result) -> bool:
    import numpy as np

    return all(np.all(np.isfinite(a)) for a in result.arrays.values()) and all(
        np.isfinite(v) for v in result.scalars.values()
    )
