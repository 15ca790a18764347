"""Build the frozen :class:`Spec` from a schema-valid document.

Evaluates params (with ``--set`` overrides) exactly, turns every size into a checked
integer, parses every expression, resolves ``like:`` and tilings, and collects every error
it finds with its position.

An expression that does not parse is left out of the Spec (``None``). When that is all
that went wrong, the Spec is still sound and the semantic checks run on it too, so a
syntax error in `verify:` does not hide the mistakes in the tasks; an error in a param,
a size or a tiling stops here, since what depends on it would be checked against a guess.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

from ..diagnostics import Collector, Pos, did_you_mean
from ..ops import functions as op_functions
from .expr import MATH_FUNCTIONS, Expr, ExprError, as_number, evaluate, parse_expr, whole
from .model import (
    INIT_FUNCTIONS,
    Array,
    Checkpoint,
    InitConstant,
    InitCopy,
    InitExpr,
    InitFile,
    InitFill,
    InitRandom,
    Job,
    Let,
    Location,
    Loop,
    Metrics,
    Placement,
    Queue,
    Reduce,
    Scalar,
    Spec,
    Task,
    Threads,
    Tiling,
    VerifyExact,
    VerifyFreivalds,
    VerifyReference,
    VerifyResidual,
)
from .yamlsrc import SourceMap

DEFAULT_CLUSTER = {"worker": {"tasks": 1}}
_MEM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(i?)B?$")


class Override:
    """A ``--set NAME=VALUE`` from the command line."""

    def __init__(self, text: str):
        self.text = text
        self.name, _, self.value = text.partition("=")
        self.name = self.name.strip()
        self.pos = Pos("<command line>", 1, 7 + len(text) - len(text.lstrip()), 6 + len(text))


def parse_memory(value: int | str) -> int:
    if isinstance(value, int):
        return value
    m = _MEM.match(value.strip())
    assert m is not None  # the schema's pattern
    num, unit, binary = m.groups()
    base = 1024 if binary or unit else 1000
    return int(float(num) * base ** " KMGT".index(unit or " "))


class Builder:
    def __init__(self, data: dict, smap: SourceMap, overrides: list[Override], spec_dir: str):
        self.data, self.smap, self.overrides, self.dir = data, smap, overrides, spec_dir
        self.errors = Collector()
        self.params: dict[str, Any] = {}
        self.dropped = 0  # errors that only left an expression out of the Spec

    # ----------------------------------------------------------------- helpers
    def pos(self, *path) -> Pos:
        return self.smap.value(path)

    def expr(
        self,
        value: Any,
        path: tuple,
        functions: tuple[str, ...] | None = None,
        essential: bool = False,
        elements: bool = False,
    ) -> Expr | None:
        """The parsed expression, or None after reporting why not; ``functions``: the names
        it may call (default: a compute expression's, the registry's ops and the math
        functions). An ``essential`` one (a
        param, size or number) is needed to build the rest; others may be left out. A
        compute expression whose only mistakes are unknown functions is kept, so that the
        checks find the mistakes in the rest of it (they skip the unknown calls); a number
        expression is evaluated, where an unknown call would be reported again."""
        start = self.smap.content_start(path)
        compute = functions is None
        names = tuple(sorted({*op_functions(), *MATH_FUNCTIONS})) if functions is None else functions
        try:
            return parse_expr(value, start or self.smap.value(path), start is not None, names, elements)
        except ExprError as e:
            self.errors.extend(e.diagnostics)
            self.dropped += 0 if essential else len(e.diagnostics)
            return e.parsed if not essential and compute else None

    def size(self, value: Any, path: tuple, what: str, minimum: int | None = 1, default: int = 1) -> int:
        e = self.expr(value, path, MATH_FUNCTIONS, essential=True)
        if e is None:
            return default
        try:
            return whole(e, self.params, what, minimum)
        except ExprError as err:
            self.errors.extend([err.diagnostic])
            return default

    def number(self, value: Any, path: tuple, what: str) -> float | int:
        e = self.expr(value, path, MATH_FUNCTIONS, essential=True)
        if e is None:
            return 0
        try:
            v = evaluate(e, self.params)
        except ExprError as err:
            self.errors.extend([err.diagnostic])
            return 0
        if isinstance(v, bool):
            self.errors.error(e.pos, "bad-type", f"{what} must be a number, not a condition")
            return 0
        return as_number(v)

    def location(self, text: str | None, path: tuple, jobs: dict[str, Job]) -> Location | None:
        if text is None:
            return None
        loc = Location.parse(text)
        if loc.job not in jobs:
            self.errors.error(
                self.pos(*path),
                "unknown-job",
                f"the cluster has no job '{loc.job}'",
                did_you_mean(loc.job, jobs) or "add it under `cluster:`",
            )
        elif loc.task is not None and loc.task >= jobs[loc.job].tasks:
            self.errors.error(
                self.pos(*path),
                "out-of-range",
                f"job '{loc.job}' has {jobs[loc.job].tasks} task(s); '{text}' does not exist",
                f"tasks are numbered 0 to {jobs[loc.job].tasks - 1}",
            )
        return loc

    # ----------------------------------------------------------------- params
    def build_params(self) -> None:
        raw: dict[str, tuple[Any, tuple, Pos | None]] = {
            k: (v, ("params", k), None) for k, v in (self.data.get("params") or {}).items()
        }
        for o in self.overrides:
            if not o.name.isidentifier() or not o.value.strip():
                self.errors.error(
                    o.pos, "bad-override", f"cannot read --set '{o.text}'", "write --set NAME=VALUE, e.g. --set N=4096"
                )
            elif o.name not in raw:
                self.errors.error(
                    o.pos,
                    "unknown-param",
                    f"--set names '{o.name}', which is not a param",
                    did_you_mean(o.name, raw) or "declare it under `params:`",
                )
            else:
                raw[o.name] = (o.value.strip(), ("params", o.name), o.pos)
        exprs: dict[str, Expr] = {}
        for name, (value, path, opos) in raw.items():
            if opos is not None:
                try:
                    exprs[name] = parse_expr(value, opos.shifted(len(name) + 1, len(value)), True, MATH_FUNCTIONS)
                except ExprError as e:
                    self.errors.extend(e.diagnostics)
            elif (parsed := self.expr(value, path, MATH_FUNCTIONS, essential=True)) is not None:
                exprs[name] = parsed
        for name in _dependency_order(exprs, self.errors):
            if name not in exprs:
                continue
            try:
                v = evaluate(exprs[name], self.params)
                if isinstance(v, bool):
                    raise exprs[name].error(None, "bad-type", f"param '{name}' must be a number, not a condition")
                self.params[name] = v
            except ExprError as e:
                self.errors.extend([e.diagnostic])

    # ----------------------------------------------------------------- sections
    def build_cluster(self) -> dict[str, Job]:
        jobs = {}
        cluster: dict[str, dict[str, Any]] = self.data.get("cluster") or DEFAULT_CLUSTER
        for name, d in cluster.items():
            p = ("cluster", name)
            t = d.get("threads") or {}
            jobs[name] = Job(
                name,
                self.pos(*p),
                tasks=self.size(d.get("tasks", 1), p + ("tasks",), f"{name}.tasks"),
                device=d.get("device", "cpu"),
                gpus=d.get("gpus", 1),
                threads=Threads(t.get("intra"), t.get("inter")),
                memory=parse_memory(d["memory"]) if "memory" in d else None,
                gpu_memory=parse_memory(d["gpu_memory"]) if "gpu_memory" in d else None,
            )
        return jobs  # task counts and memory against a server's footprint: checks.check_memory

    def build_arrays(self, jobs: dict[str, Job]) -> dict[str, Array]:
        raw = self.data.get("arrays") or {}
        out: dict[str, Array | None] = {}  # None: a mistake, reported
        active: set[str] = set()

        def build(name: str) -> Array | None:
            if name in out:
                return out[name]
            if name in active:
                self.errors.error(
                    self.smap.key(("arrays", name, "like")),
                    "cycle",
                    f"array '{name}' is `like:` itself through a chain of arrays",
                )
                return None
            active.add(name)
            out[name] = arr = self.build_array(name, raw[name], raw, jobs, build)
            active.discard(name)
            return arr

        for name in raw:
            build(name)
        return {k: v for k, v in out.items() if v is not None}

    def build_array(self, name: str, d: dict, raw: dict, jobs, build: Callable) -> Array | None:
        p = ("arrays", name)
        base: Array | None = None
        if "like" in d:
            if d["like"] not in raw:
                self.errors.error(
                    self.pos(*p, "like"),
                    "undefined-name",
                    f"no array named '{d['like']}'",
                    did_you_mean(d["like"], [a for a in raw if a != name]),
                )
            else:
                base = build(d["like"])
        if "shape" not in d and base is None:
            if "like" in d:  # the broken `like:` is already reported
                return None
            self.errors.error(self.smap.key(p), "missing-key", f"array '{name}' needs a `shape:` (or `like:`)")
            return None
        if "shape" in d:
            shape = tuple(self.size(v, p + ("shape", i), f"extent {i} of '{name}'") for i, v in enumerate(d["shape"]))
        else:
            assert base is not None  # returned above otherwise
            shape = base.shape
        dtype = d.get("dtype", base.dtype if base else "float32")
        if "tile" in d:
            tiling = self.tiling(name, d["tile"], shape, p + ("tile",))
        elif base is not None and base.shape == shape:
            tiling = base.tiling
        else:
            tiling = Tiling("block", shape, (1,) * len(shape))
        return Array(
            name,
            self.pos(*p),
            shape,
            dtype,
            tiling,
            self.init(name, d.get("init"), p + ("init",), raw),
            d.get("like"),
            self.location(d.get("on"), p + ("on",), jobs),
            d.get("resident", False),
            d.get("output", False),
            d.get("description", ""),
            self.number(d["boundary"], p + ("boundary",), "boundary") if "boundary" in d else None,
        )

    def tiling(self, name: str, t: Any, shape: tuple[int, ...], p: tuple) -> Tiling:
        if isinstance(t, dict) and "cyclic" in t:
            parts = self.size(t["cyclic"], p + ("cyclic",), f"cyclic tiling of '{name}'")
            if len(shape) != 1:
                self.errors.error(
                    self.pos(*p),
                    "bad-tiling",
                    f"cyclic tiling needs a 1-D array; '{name}' has {len(shape)} dimensions",
                    "tile it in blocks instead: tile: [..]",
                )
            elif shape[0] % parts:
                self.errors.error(
                    self.pos(*p, "cyclic"),
                    "tile-divide",
                    f"{parts} cyclic tiles do not divide the {shape[0]} elements of '{name}'",
                    _divisor_hint(shape[0], parts),
                )
            else:
                return Tiling("cyclic", (shape[0] // parts,), (parts,))
            return Tiling("block", shape, (1,) * len(shape))
        sizes = t["block"] if isinstance(t, dict) else t
        sp = p + ("block",) if isinstance(t, dict) else p
        tile = tuple(self.size(v, sp + (i,), f"tile extent {i} of '{name}'") for i, v in enumerate(sizes))
        if len(tile) != len(shape):
            self.errors.error(
                self.pos(*sp),
                "bad-tiling",
                f"'{name}' has {len(shape)} dimensions but its tile has {len(tile)}",
                "give one tile size per dimension",
            )
            return Tiling("block", shape, (1,) * len(shape))
        ok = True
        for i, (n, k) in enumerate(zip(shape, tile)):
            if n % k:
                ok = False
                self.errors.error(
                    self.pos(*sp, i),
                    "tile-divide",
                    f"tile extent {k} does not divide extent {n} of '{name}' (dimension {i})",
                    _divisor_hint(n, k),
                )
        if not ok:
            return Tiling("block", shape, (1,) * len(shape))
        return Tiling("block", tile, tuple(n // k for n, k in zip(shape, tile)))

    def init(self, name: str, v: Any, p: tuple, arrays: dict):
        if v is None or v == "zeros":
            return InitFill(0.0)
        if v == "ones":
            return InitFill(1.0)
        if v == "eye" and v not in arrays:
            return InitExpr(parse_expr("_row == _col", self.pos(*p)), ("_row", "_col"))
        if isinstance(v, str):
            if v not in arrays or v == name:
                self.errors.error(
                    self.pos(*p),
                    "undefined-name",
                    f"init '{v}' is neither 'zeros', 'ones', 'eye' nor another array",
                    did_you_mean(v, [*arrays, "zeros", "ones", "eye"]),
                )
                return InitFill(0.0)
            return InitCopy(v)
        if "constant" in v:
            return InitConstant(self.number(v["constant"], p + ("constant",), "constant"))
        if "random" in v:
            diagonal = self.number(v["diagonal"], p + ("diagonal",), "diagonal") if "diagonal" in v else None
            return InitRandom(
                v["random"],
                v.get("seed", 0),
                v.get("low", 0.0),
                v.get("high", 1.0),
                v.get("mean", 0.0),
                v.get("std", 1.0),
                diagonal,
            )
        if "expr" in v:
            return InitExpr(self.expr(v["expr"], p + ("expr",), INIT_FUNCTIONS), tuple(v.get("index", ())))
        return InitFile(self.relative(v["file"]))

    def relative(self, path: str) -> str:
        """A path the spec names: relative ones are from the spec file's folder."""
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.dir, path))

    def build_scalars(self) -> dict[str, Scalar]:
        return {
            name: Scalar(
                name,
                self.pos("scalars", name),
                self.expr(d["init"], ("scalars", name, "init")) if "init" in d else None,
                d.get("via"),
                d.get("dtype", "float64"),
                d.get("description", ""),
                bool(d.get("output", False)),
            )
            for name, d in (self.data.get("scalars") or {}).items()
        }

    def build_queues(self, jobs) -> dict[str, Queue]:
        out = {}
        for name, d in (self.data.get("queues") or {}).items():
            p = ("queues", name)
            r = d.get("reduce")
            out[name] = Queue(
                name,
                self.pos(*p),
                self.location(d.get("on"), p + ("on",), jobs),
                self.size(d.get("shards", 1), p + ("shards",), f"shards of '{name}'"),
                self.expr(d["shard"], p + ("shard",), MATH_FUNCTIONS) if "shard" in d else None,
                self.size(d.get("capacity", 8), p + ("capacity",), f"capacity of '{name}'"),
                Reduce(r["op"], r.get("into"), r.get("broadcast"), r.get("via", "auto")) if r else None,
                d.get("description", ""),
            )
            if r and r.get("broadcast") and r["broadcast"] not in jobs:
                self.errors.error(
                    self.pos(*p, "reduce", "broadcast"),
                    "unknown-job",
                    f"the cluster has no job '{r['broadcast']}' to broadcast to",
                    did_you_mean(r["broadcast"], jobs),
                )
        return out

    def build_task(self, name: str, d: dict, p: tuple, jobs) -> Task:
        domain = tuple(
            (idx, self.size(ext, p + ("for", idx), f"extent of index '{idx}'"))
            for idx, ext in (d.get("for") or {}).items()
        )
        update = []
        for t, v in (d.get("update") or {}).items():
            kp = p + ("update", t)
            try:
                target = parse_expr(t, self.smap.key(kp), True, ())
            except ExprError as e:
                self.errors.extend(e.diagnostics)
                self.dropped += len(e.diagnostics)
                target = None
            value = self.expr(v, kp)
            if target is not None and value is not None:
                update.append((target, value))
        push = self.target(d, "push", p)
        # a push whose key has a mistake (reported) still names its queue: it has a producer
        unparsed = isinstance(d.get("push"), str) and push is None and re.match(r"\s*([A-Za-z_]\w*)", d["push"])
        task = Task(
            name,
            self.pos(*p),
            domain,
            self.expr(d["compute"], p + ("compute",)) if "compute" in d else None,
            push,
            d.get("pop"),
            self.target(d, "out", p),
            tuple(update),
            self.location(d.get("on"), p + ("on",), jobs),
            d.get("schedule", "static"),
            d.get("description", ""),
            self.expr(d["where"], p + ("where",), MATH_FUNCTIONS) if "where" in d else None,
            unparsed[1] if unparsed else None,
        )
        self.check_task_shape(task, d, p)
        return task

    def target(self, d: dict, k: str, p: tuple) -> Expr | None:
        return self.expr(d[k], p + (k,), ()) if k in d else None

    def check_task_shape(self, task: Task, d: dict, p: tuple) -> None:
        sinks = [k for k in ("push", "out", "update") if k in d]
        where = self.smap.key(p)
        if len(sinks) > 1:
            self.errors.error(
                where,
                "task-form",
                f"'{task.name}' has both `{sinks[0]}:` and `{sinks[1]}:`",
                "a task either pushes into a queue, writes `out:`, or updates in place",
            )
        elif "compute" in d and not sinks:
            self.errors.error(
                where,
                "task-form",
                f"the result of '{task.name}' goes nowhere",
                "add `out: ARRAY[...]` or `push: QUEUE[...]`",
            )
        elif "compute" not in d and sinks and sinks[0] != "update":
            self.errors.error(
                where,
                "task-form",
                f"'{task.name}' has `{sinks[0]}:` but no `compute:`",
                "say what it computes with `compute: EXPR`",
            )
        elif not sinks and "compute" not in d:
            self.errors.error(
                where,
                "task-form",
                f"'{task.name}' does nothing",
                "give it `compute:` with `out:`/`push:`, or `update:`",
            )
        if d.get("schedule") == "dynamic":
            why = (
                "needs a `for:` domain to hand out"
                if not d.get("for")
                else "hands out tasks outside the loop only"
                if p[0] == "loop"
                else "hands out tasks that `push:` into a queue"
                if "push" not in d
                else ""
            )
            if why:
                self.errors.error(
                    self.pos(*p, "schedule"),
                    "task-form",
                    f"`schedule: dynamic` {why}",
                    "remove it (the compiler places static tasks), or make the task a `push:` task of "
                    "`tasks:` with a `for:` domain",
                )

    def build_loop(self, jobs) -> Loop | None:
        d = self.data.get("loop")
        if d is None:
            return None
        steps: list[Let | Task] = []
        for i, s in enumerate(d["steps"]):
            p = ("loop", "steps", i)
            if "let" in s:
                if ("reduce" in s) == ("value" in s):
                    self.errors.error(
                        self.smap.key(p), "task-form", f"`let: {s['let']}` needs exactly one of `reduce:` or `value:`"
                    )
                if "reduce" in s and "via" not in s:
                    self.errors.error(
                        self.smap.key(p),
                        "task-form",
                        f"`let: {s['let']}` reduces but names no queue",
                        "add `via: QUEUE`: the queue whose reducer combines the partial results",
                    )
                steps.append(
                    Let(
                        s.get("name", s["let"]),
                        self.pos(*p),
                        s["let"],
                        self.expr(s["reduce"], p + ("reduce",)) if "reduce" in s else None,
                        self.expr(s["value"], p + ("value",)) if "value" in s else None,
                        s.get("via"),
                    )
                )
            else:
                steps.append(self.build_task(s.get("name", f"step{i + 1}"), s, p, jobs))
        cp = d.get("checkpoint")
        return Loop(
            self.pos("loop"),
            self.size(d["max"], ("loop", "max"), "loop.max"),
            d.get("index"),
            self.expr(d["until"], ("loop", "until")) if "until" in d else None,
            Checkpoint(
                self.size(cp["every"], ("loop", "checkpoint", "every"), "checkpoint.every"),
                self.relative(cp["path"]) if cp.get("path") else None,
            )
            if cp
            else None,
            tuple(steps),
        )

    def build_verify(self):
        d = self.data.get("verify")
        if d is None:
            return None
        p, pos = ("verify",), self.pos("verify")
        if "freivalds" in d:
            return VerifyFreivalds(
                pos, self.expr(d["freivalds"], p + ("freivalds",), elements=True), d.get("trials", 3)
            )
        if "residual" in d:
            return VerifyResidual(
                pos,
                self.expr(d["residual"], p + ("residual",), elements=True),
                float(self.number(d["below"], p + ("below",), "verify.below")),
            )
        if "reference" in d:
            return VerifyReference(
                pos,
                self.expr(d["reference"], p + ("reference",), elements=True),
                d.get("of", ""),
                d.get("rtol", 1e-6),
                d.get("atol", 0.0),
            )
        return VerifyExact(pos, self.expr(d["exact"], p + ("exact",), elements=True), d.get("rtol", 0.0))

    def build(self, file: str) -> Spec:
        self.build_params()
        jobs = self.build_cluster()
        arrays = self.build_arrays(jobs)
        tasks = {n: self.build_task(n, d, ("tasks", n), jobs) for n, d in (self.data.get("tasks") or {}).items()}
        placement = self.data.get("placement") or {}
        constraints = {
            k: loc
            for k, v in (placement.get("constraints") or {}).items()  # the schema: strings
            if (loc := self.location(v, ("placement", "constraints", k), jobs)) is not None
        }
        metrics = self.data.get("metrics") or {}
        sweep = {}
        for k, values in (self.data.get("sweep") or {}).items():
            if k not in self.params:
                self.errors.error(
                    self.smap.key(("sweep", k)),
                    "unknown-param",
                    f"sweep over '{k}', which is not a param",
                    did_you_mean(k, self.params) or "declare it under `params:`",
                )
            sweep[k] = tuple(self.number(v, ("sweep", k, i), f"sweep value of '{k}'") for i, v in enumerate(values))
        return Spec(
            file,
            self.smap,
            self.data["dfc"],
            self.data["name"],
            self.data.get("description", ""),
            {k: as_number(v) for k, v in self.params.items()},
            jobs,
            arrays,
            self.build_scalars(),
            self.build_queues(jobs),
            tasks,
            self.build_loop(jobs),
            Placement(placement.get("strategy", "heft"), constraints, placement.get("profile")),
            self.build_verify(),
            Metrics(
                *(
                    self.expr(metrics[k], ("metrics", k), MATH_FUNCTIONS) if k in metrics else None
                    for k in ("flops", "bytes")
                )
            ),
            sweep,
        )


def _dependency_order(exprs: dict[str, Expr], errors: Collector) -> list[str]:
    """Params in an order where each comes after those it uses (an iterative depth-first
    search: thousands of chained params must not exhaust the stack). Params on a cycle, and
    those that use them, are reported once and left out."""
    deps = {n: sorted(e.names() & set(exprs)) for n, e in exprs.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    order: list[str] = []
    bad: set[str] = set()
    for root in sorted(exprs):
        if root in state:
            continue
        stack = [(root, iter(deps[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            dep = next(it, None)
            if dep is None:
                stack.pop()
                state[node] = 2
                if bad & set(deps[node]):
                    bad.add(node)
                else:
                    order.append(node)
            elif state.get(dep) == 1:
                chain = [n for n, _ in stack]
                members = chain[chain.index(dep) :]
                errors.error(
                    exprs[dep].pos,
                    "cycle",
                    f"params depend on each other: {' -> '.join(members + [dep])}",
                    "give one of them a number",
                )
                bad.update(members)
            elif dep not in state:
                state[dep] = 1
                stack.append((dep, iter(deps[dep])))
    return [n for n in order if n not in bad]


def _divisor_hint(n: int, k: int) -> str:
    near = [d for d in range(max(1, k // 2), min(n, 2 * k) + 1) if n % d == 0]
    best = sorted(near, key=lambda d: (abs(d - k), d))[:3]
    return (
        ("sizes must divide exactly; try " + " or ".join(map(str, sorted(best))))
        if best
        else "sizes must divide exactly"
    )


def build_spec(data: dict, smap: SourceMap, overrides: list[Override], file: str) -> tuple[Spec, Collector, bool]:
    """The Spec, the errors found, and whether the Spec can be checked all the same (every
    error only left an expression out)."""
    b = Builder(data, smap, overrides, str(Path(file).parent))
    spec = b.build(file)
    return spec, b.errors, b.dropped == len(b.errors.diagnostics)
