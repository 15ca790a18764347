"""dfc's Python API: load a program, plan it, run it. The command line (``dfc/cli.py``)
is a thin layer over it: it parses, calls these, and prints.

>>> import dfc
>>> prog = dfc.load("specs/cg.yaml", N=512)
>>> plan = prog.plan(strategy="heft")          # a Plan: devices, load, links, makespan
>>> report = prog.run()                         # a RunReport: verified, seconds, metrics
>>> report.verified, report.rate
>>> reports = prog.sweep("N", [256, 512, 1024], engine="numpy")

Mistakes in a program raise :class:`SpecError` (every diagnostic, with positions); a run
that fails raises :class:`RunError` (a task died, a call timed out: ``TaskLost``), the
setup of a cluster or of a checkpoint that does not fit raises :class:`ClusterMismatch`,
:class:`CheckpointError` or :class:`ClusterSourceError`. A run whose answer is wrong
returns a report with ``verified`` false: it is the caller's to act on.

TensorFlow is imported only by ``run(engine="tf")``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from . import passes
from .cost.profile import Profile, load_profile
from .diagnostics import SpecError
from .lang import load_spec
from .lang.model import Spec
from .passes import STRATEGIES

__all__ = ["load", "Program", "RunReport", "SpecError", "STRATEGIES", "ENGINES"]

#: where a program runs: TensorFlow servers, the compiled graph in NumPy, or its meaning
ENGINES = ("tf", "numpy", "oracle")
Say = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load(path: str | Path, overrides: Iterable[str] = (), *, local: bool = True, **params: Any) -> Program:
    """The program in the spec at ``path``, with params overridden (``N=8192``, or
    ``overrides`` as written on the command line: ``["N=2**13"]``). ``local``: it will run
    on the local cluster, whose servers' memory counts when its footprint is checked.
    Raises :class:`SpecError` with every mistake."""
    given = (*overrides, *(f"{k}={v}" for k, v in params.items()))
    return Program(load_spec(path, given, local), str(path), given, local)


@dataclass(frozen=True)
class Program:
    """A validated program (its :class:`Spec`), and how it was loaded."""

    spec: Spec
    file: str
    overrides: tuple[str, ...] = ()
    local: bool = True

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def params(self) -> dict:
        return dict(self.spec.params)

    def with_params(self, **params: Any) -> Program:
        """The same program with more params overridden (loaded and checked again)."""
        return load(self.file, self.overrides, local=self.local, **params)

    def profile(self, profile: str | Profile | None = None, layout=None) -> Profile:
        """The cost model's device profile: given, the spec's ``placement.profile``, the
        calibrated profile (``dfc calibrate``) of the cluster's hosts when ``layout`` (of
        ``--cluster``) names hosts other than this machine and one has a profile, else
        this machine's when there is one, or the built-in defaults."""
        if isinstance(profile, Profile):
            return profile
        from .cost.calibrate import hosts_profile, machine_profile

        mine = hosts_profile([t.host for t in layout.tasks]) if layout is not None else None
        mine = mine or machine_profile()
        return load_profile(profile or self.spec.placement.profile or (str(mine) if mine.is_file() else None))

    def layout(self, cluster: str):
        """The layout of a cluster source (a cluster file, ``tf_config`` or ``slurm``) for
        the program's jobs. Raises SpecError (a file's mistakes) or ClusterSourceError."""
        from .runtime.clusters import resolve

        return resolve(cluster, {j.name: j.tasks for j in self.spec.cluster.values()})

    def compile(
        self,
        strategy: str | None = None,
        profile: str | Profile | None = None,
        *,
        layout=None,
        stop_after: str | None = None,
        observe=None,
    ):
        """The placed IR (a networkx graph) after every pass (or ``stop_after`` one);
        ``observe(pass name, graph)`` sees it after each."""
        return passes.compile_spec(self.spec, strategy, self._profile(profile, layout), stop_after, observe)

    def plan(
        self,
        strategy: str | None = None,
        profile: str | Profile | None = None,
        *,
        layout=None,
        timeline: bool | None = None,
    ):
        """The placed graph with its predicted schedule (a :class:`~dfc.cost.plan.Plan`)."""
        from .cost.model import CostModel
        from .cost.plan import make_plan
        from .ir.devices import devices

        prof = self._profile(profile, layout)
        g = passes.compile_spec(self.spec, strategy, prof)
        return make_plan(g, CostModel(prof, devices(self.spec)), timeline=timeline)

    def _profile(self, profile, layout) -> Profile:
        from .runtime.clusters import cost_profile

        prof = self.profile(profile, layout)
        return prof if layout is None else cost_profile(prof, layout)

    def run(
        self,
        *,
        engine: str = "tf",
        strategy: str | None = None,
        profile: str | Profile | None = None,
        layout=None,
        timeout: float = 300.0,
        out: str | None = None,
        trace: str | None = None,
        checkpoint_dir: str | None = None,
        resume: str | None = None,
        retries: int = 0,
        verbose: bool = False,
        point: tuple[str, Any] | None = None,
        say: Say = _quiet,
        warn: Say = _stderr,
    ) -> RunReport:
        """Compile, run, verify and measure the program. ``layout``: servers that ``dfc
        serve`` started (see :meth:`layout`; None: a local cluster of this machine).
        ``out``: a folder for the output arrays (.npy). ``trace``: a Chrome trace file of
        the compute phase. ``checkpoint_dir``/``resume`` (a folder, or "" for the default
        one)/``retries``: see docs/running.md. ``point``: (param, value) of a sweep, whose
        files go to a folder of their own. ``say`` hears the progress, ``warn`` what the
        user must see even when quiet."""
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
        return _Run(
            self,
            engine,
            strategy,
            self._profile(profile, layout),
            layout,
            timeout,
            out,
            trace,
            checkpoint_dir,
            resume,
            retries,
            verbose,
            point,
            say,
            warn,
        ).report()

    def sweep(self, key: str, values: Iterable[Any], **run: Any) -> list[RunReport]:
        """One run per value of param ``key`` (each point's files in ``OUT/KEY=VALUE``)."""
        say = run.get("say", _quiet)
        reports = []
        for value in values:
            say(f"--- {key} = {value}")
            reports.append(self.with_params(**{key: value}).run(point=(key, value), **run))
        return reports


@dataclass
class RunReport:
    """What one run did: ``to_json()`` is ``dfc run --json``'s document."""

    name: str
    params: dict
    engine: str
    verified: bool
    verification: dict | None
    seconds: dict[str, float]
    metrics: dict[str, float]
    iterations_run: int
    predicted_seconds: float | None
    strategy: str | None
    trace: dict | None = None
    checkpoints: dict | None = None
    retries: list[str] = field(default_factory=list)
    output_error: str | None = None
    arrays: dict = field(default_factory=dict, repr=False)  # the output arrays (not in the JSON)
    scalars: dict = field(default_factory=dict, repr=False)
    outputs: dict = field(default_factory=dict)  # the output scalars (in the JSON)
    profile: str = ""  # the cost profile the prediction used

    @property
    def rate(self) -> tuple[str, float]:
        """('GFLOP/s', value) or ('GB/s', value), by the spec's metrics."""
        m = self.metrics
        return ("GFLOP/s", m["gflops"]) if "gflops" in m else ("GB/s", m.get("gbps", 0.0))

    @property
    def ok(self) -> bool:
        """Verified, and every output written."""
        return self.verified and self.output_error is None

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "params": self.params,
            "engine": self.engine,
            "verified": self.verified,
            "verification": self.verification,
            "seconds": self.seconds,
            "metrics": self.metrics,
            "iterations_run": self.iterations_run,
            "predicted_seconds": self.predicted_seconds,
            "strategy": self.strategy,
        }
        for key in ("outputs", "profile", "trace", "checkpoints", "retries", "output_error"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return _no_nan(out)


def _no_nan(value):
    """``value`` with every NaN or infinity as None: they are not JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


@dataclass
class _Run:
    """One run of a program: compile, run on an engine (with retries), verify, measure, save."""

    program: Program
    engine: str
    strategy: str | None
    profile: Profile
    layout: Any
    timeout: float
    out: str | None
    trace_file: str | None
    checkpoint_dir: str | None
    resume: str | None
    retries: int
    verbose: bool
    point: tuple[str, Any] | None
    say: Say
    warn: Say

    def report(self) -> RunReport:
        import numpy as np

        from .cost.model import CostModel
        from .cost.simulate import simulate
        from .ir.devices import devices
        from .runtime.verify import metrics, verify

        spec, say = self.program.spec, self.say
        t0 = time.perf_counter()
        g = None
        unsaved: list[str] = []  # why an output could not be written
        traced: dict | None = None
        retried: list[str] = []
        result: Any  # the engine's result: arrays, scalars, iterations_run, seconds
        if self.engine != "oracle":  # the oracle reads the spec alone: nothing is compiled for it
            g = passes.compile_spec(spec, self.strategy, self.profile)
            say(
                f"{spec.name}: compiled {g.number_of_nodes()} nodes in {time.perf_counter() - t0:.2f} s "
                f"({g.graph.get('strategy')})"
            )
        compile_s = time.perf_counter() - t0
        if self.engine == "oracle":
            from .oracle import run_oracle

            say("evaluating the program's meaning on whole arrays (the oracle)")
            result = run_oracle(spec)
        elif self.engine == "tf":
            result, retried, traced = self.on_tf(g, unsaved)
        else:
            from .ir.interp import run_numpy

            say(
                "running on the NumPy engine (one process)"
                + (
                    ": it writes no checkpoints (loop.checkpoint is for the TF engine)"
                    if spec.loop and spec.loop.checkpoint
                    else ""
                )
            )
            result = run_numpy(g)
        t2 = time.perf_counter()
        say("verifying")
        verdict = verify(spec, result.arrays, result.scalars)
        verify_s = time.perf_counter() - t2
        m = metrics(spec, result.iterations_run)
        resumed_at = getattr(result, "resumed_at", 0)  # the oracle resumes nothing
        here = metrics(spec, result.iterations_run - resumed_at) if resumed_at else m  # this run's work
        compute = result.seconds["compute"]
        if "flops" in m:
            m["gflops"] = here["flops"] / compute / 1e9 if compute > 0 else float("inf")
        if "bytes" in m:
            m["gbps"] = here["bytes"] / compute / 1e9 if compute > 0 else float("inf")
        predicted = (
            simulate(g, CostModel(self.profile, devices(spec)), result.iterations_run) if g is not None else None
        )
        seconds = {"compile": compile_s, **result.seconds, "verify": verify_s, "total": time.perf_counter() - t0}
        outputs = {  # the output scalars, in their dtypes
            s.name: np.asarray(result.scalars[s.name]).astype(s.dtype)[()] for s in spec.scalars.values() if s.output
        }
        if self.out:
            unsaved += self.save_outputs({**result.arrays, **outputs})
        return RunReport(
            spec.name,
            dict(spec.params),
            self.engine,
            verdict is None or verdict.ok,
            verdict.to_json() if verdict else None,
            seconds,
            m,
            result.iterations_run,
            predicted.makespan if predicted else None,
            g.graph.get("strategy") if g is not None else None,
            traced,
            getattr(result, "checkpoints", None) or None,
            retried,
            "; ".join(unsaved) or None,
            result.arrays,
            result.scalars,
            {k: v.item() for k, v in outputs.items()},
            self.profile.describe() if predicted else "",
        )

    def on_tf(self, g, unsaved: list[str]):
        """(result, what each retry said, the trace's summary) of a run on TensorFlow."""
        from .outputs import OutputError, write_file

        trace = None
        if self.trace_file:
            from .runtime.trace import Trace

            trace = Trace()
        result, retried = self.retrying(
            g,
            self.checkpointer(g),
            dict(timeout=self.timeout, verbose=self.verbose, say=self.say, trace=trace, layout=self.layout),
        )
        if trace is None or self.trace_file is None:
            return result, retried, None
        # the predicted schedule beside the measured one: its prologue and first iteration
        from .cost.model import CostModel
        from .cost.simulate import simulate
        from .ir.devices import devices

        predicted = simulate(g, CostModel(self.profile, devices(self.program.spec)), result.iterations_run, True)
        try:
            write_file(self.trace_file, trace.chrome(predicted.timeline))
        except OutputError as e:
            self.warn(f"dfc run: --trace: {e}")
            unsaved.append(str(e))
        return result, retried, trace.summary(predicted.busy)

    def retrying(self, g, saver, options: dict):
        """Run on the TF engine; when a task dies, up to ``retries`` times, start the cluster
        again and resume from the newest checkpoint. (result, what each retry said)."""
        from .runtime.tf_engine import TaskLost, run_tf

        retried: list[str] = []
        resume = self.resume is not None
        if saver is not None:
            saver.store.prepare()
            if resume:
                saver.check()
        while True:
            try:
                again = saver is not None and len(retried) < self.retries
                return run_tf(g, checkpoint=saver, resume=resume, again=again, **options), retried
            except TaskLost as e:
                if saver is None and self.retries:
                    raise TaskLost(
                        f"{e}\n  --retries {self.retries}: nothing can be resumed: the loop has no "
                        "`checkpoint:` (add `checkpoint: {every: 50}` to `loop:`)"
                    ) from None
                if saver is None or len(retried) >= self.retries:
                    self.resumable(saver)
                    raise
                first = str(e).splitlines()[0]
                where = (
                    f"resuming from the checkpoint of iteration {saver.newest[1]}"
                    if saver.newest
                    else "no checkpoint was written yet, so from the beginning"
                )
                retried.append(f"{first}; {where}")
                self.warn(
                    f"dfc run: retry {len(retried)} of {self.retries}: {first}; starting the cluster again, {where}"
                )
                resume = saver.newest is not None
            except (KeyboardInterrupt, SystemExit):
                self.resumable(saver)
                raise

    def resumable(self, saver) -> None:
        """After a run that stopped early: where its newest checkpoint is, if it wrote one."""
        if saver is not None and saver.newest:
            self.warn(
                f"dfc run: the newest checkpoint (iteration {saver.newest[1]}) is in {saver.store.folder}: "
                "run again with --resume to go on from it"
            )

    def checkpointer(self, g):
        """The checkpointer of a run whose loop has ``checkpoint:`` (None without); its
        folder is made, and checked writable, by :meth:`retrying`."""
        from .runtime.checkpoint import Checkpointer, Store, identity

        spec = self.program.spec
        if not (spec.loop and spec.loop.checkpoint):
            return None
        return Checkpointer(Store(self.checkpoint_folder()), spec.loop.checkpoint.every, identity(spec, g), self.say)

    def checkpoint_folder(self) -> str:
        return checkpoint_folder(self.program.spec, self.resume or self.checkpoint_dir, self.out, self.point)

    def save_outputs(self, arrays) -> list[str]:
        """Save the output arrays in ``out``, all or none; why not (nothing when saved)."""
        import numpy as np

        from .outputs import OutputError, write_files

        assert self.out is not None
        folder = out_folder(self.out, self.point)
        files = out_files(self.program.spec, self.out, self.point)

        def saver(x) -> Callable[[Any], None]:
            return lambda f: np.save(f, x)

        try:
            os.makedirs(folder, exist_ok=True)
            write_files({path: saver(arrays[name]) for name, path in files.items()})
        except OSError as e:
            why = f"cannot make {folder}: {e.strerror or e}"
        except OutputError as e:
            why = str(e)
        else:
            self.say(f"saved {', '.join(files)} in {folder}")
            return []
        self.warn(f"dfc run: --out: {why}")
        return [why]


def checkpoint_folder(spec: Spec, given: str | None, out: str | None, point=None) -> str:
    """Where a run saves its checkpoints: ``given`` (``--resume DIR`` or
    ``--checkpoint-dir DIR``), else the default (runtime/checkpoint.py); a sweep's point in
    a folder of its own."""
    from .runtime.checkpoint import default_folder

    if given:
        return os.path.join(given, f"{point[0]}={point[1]}") if point else given
    return default_folder(spec, out, point)


def out_folder(out: str, point=None) -> str:
    """Where ``out`` puts a run's arrays: OUT, or OUT/KEY=VALUE for each point of a sweep."""
    return os.path.join(out, f"{point[0]}={point[1]}") if point else out


def out_files(spec: Spec, out: str, point=None) -> dict[str, str]:
    """Output array or scalar name -> the .npy file a run with ``out`` writes it to (a
    scalar's holds a 0-d array)."""
    from .lang.checks import output_names

    folder = out_folder(out, point)
    return {name: os.path.join(folder, f"{name}.npy") for name in output_names(spec)}
