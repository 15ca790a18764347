"""The ``dfc`` command line: parse arguments, call the stages, print.

Exit codes: 0 success; 1 a run or its verification failed; 2 bad input (the spec, a
flag); 70 an internal error in dfc (a bug: it asks for a report); 130 interrupted (Ctrl-C); 143
terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Sequence

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 70, 130, 143
ISSUES_URL = "https://github.com/dfc-hpc/dfc/issues"


def _color(stream) -> bool:
    return hasattr(stream, "isatty") and stream.isatty() and not os.environ.get("NO_COLOR")


def _summary(spec) -> str:
    steps = len(spec.loop.steps) if spec.loop else 0
    parts = [f"{len(spec.arrays)} array{'s' * (len(spec.arrays) != 1)}",
             f"{len(spec.tasks)} task{'s' * (len(spec.tasks) != 1)}"
             + (f" + {steps} loop step{'s' * (steps != 1)}" if steps else ""),
             f"{spec.tile_tasks} tile task{'s' * (spec.tile_tasks != 1)}",
             f"{spec.ntiles} tile{'s' * (spec.ntiles != 1)}"]
    return f"{spec.file}: ok: {spec.name}: " + ", ".join(parts)


def cmd_validate(args: argparse.Namespace) -> int:
    from .diagnostics import render_json, render_text
    from .lang import SpecError, load_spec

    all_diags, sources, status = [], {}, EXIT_OK
    for file in args.files:
        try:
            spec = load_spec(file, args.set or ())
        except SpecError as e:
            status = EXIT_USAGE
            all_diags.extend(e.diagnostics)
            sources[file] = _read_text(file)
            continue
        if args.format == "text":
            print(_summary(spec))
    if args.format == "json":
        print(render_json(all_diags))
    elif all_diags:
        sources["<command line>"] = " ".join(f"--set {s}" for s in (args.set or []))
        text = render_text(all_diags, sources, _color(sys.stderr))
        print(text, file=sys.stderr)
        n = len(all_diags)
        print(f"{n} error{'s' * (n != 1)} found", file=sys.stderr)
    return status


def _read_text(file: str) -> str:
    """The source lines the diagnostics quote ("" for a file that cannot be a spec)."""
    from .inputs import InputError, read_bounded
    from .lang.yamlsrc import MAX_BYTES

    try:
        return read_bounded(file, MAX_BYTES).decode("utf-8", errors="replace")
    except InputError:
        return ""


def _load(args, local: bool = True) -> object:
    """The spec of ``args.file`` with ``--set``; prints every error and returns None if
    invalid. ``local``: it will run on the local cluster (its servers' memory counts)."""
    from .diagnostics import render_text
    from .lang import SpecError, load_spec

    try:
        return load_spec(args.file, args.set or (), local)
    except SpecError as e:
        sources = {args.file: _read_text(args.file),
                   "<command line>": " ".join(f"--set {s}" for s in (args.set or []))}
        print(render_text(e.diagnostics, sources, _color(sys.stderr)), file=sys.stderr)
        return None


def _profile(args, spec):
    from .cost.profile import ProfileError, load_profile

    path = getattr(args, "profile", None) or spec.placement.profile
    try:
        return load_profile(path)
    except ProfileError as e:
        print(f"dfc: {e}", file=sys.stderr)
        return None


def _spec_and_profile(args, local: bool = True):
    """(spec, profile) for a command, or None after printing why not."""
    spec = _load(args, local)
    if spec is None:
        return None
    profile = _profile(args, spec)
    return None if profile is None else (spec, profile)


def _compile(args, spec, profile, observe=None):
    from .passes import compile_spec

    return compile_spec(spec, args.strategy, profile, observe=observe)


def _write(path: str | None, data: str | bytes) -> None:
    """To standard output, or to ``path`` whole or not at all (dfc/outputs.py)."""
    from .outputs import write_file

    if path is None or path == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    write_file(path, data)


def cmd_plan(args: argparse.Namespace) -> int:
    from .ir.node import gc_paused

    # planning allocates millions of objects and makes no garbage cycles: the collector
    # would re-scan the graph again and again (rendering 150k nodes as JSON took 5 s with
    # it, 0.5 s without)
    with gc_paused():
        return _plan(args)


def _plan(args: argparse.Namespace) -> int:
    from .passes import PASS_NAMES, PIPELINE

    if args.passes:
        print("build   one task node per task, scalar initialisation and loop step")
        for p in PIPELINE:
            print(f"{p.name:7s} {p.doc}")
        return EXIT_OK
    if not args.file:
        print("dfc plan: give a spec file (or --passes)", file=sys.stderr)
        return EXIT_USAGE
    if args.print_after and args.print_after not in PASS_NAMES:
        print(f"dfc plan: no pass '{args.print_after}'; the passes are: {', '.join(PASS_NAMES)}", file=sys.stderr)
        return EXIT_USAGE
    loaded = _spec_and_profile(args, local=False)  # plans start no server
    if loaded is None:
        return EXIT_USAGE
    spec, profile = loaded
    if args.cluster != "local":  # the plan the cluster will run: its hosts and links
        placed = _placed_for("plan", args, spec, profile)
        if placed is None:
            return EXIT_USAGE
        profile = placed[1]
    why = _bad_destinations("plan", args, spec, {"-o": args.output, "--gantt": args.gantt})
    if why:
        print(why, file=sys.stderr)
        return EXIT_USAGE
    from .cost.model import CostModel
    from .cost.plan import make_plan
    from .ir.devices import devices
    from .ir.node import describe
    from .outputs import OutputError

    if args.print_after:
        shown = {}
        _compile(args, spec, profile, lambda name, g: shown.setdefault(name, g) if name == args.print_after else None)
        try:
            _write(args.output, describe(shown[args.print_after]))
        except OutputError as e:
            print(f"dfc plan: {e}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    g = _compile(args, spec, profile)
    plan = make_plan(g, CostModel(profile, devices(spec)), timeline=True if args.gantt else None)
    from .viz import dot, gantt, text

    try:
        if args.format == "text":
            _write(args.output, text.render(plan, color=_color(sys.stdout) and args.output is None))
        elif args.format == "json":
            _write(args.output, plan.dumps())
        elif args.format == "dot":
            _write(args.output, dot.render(plan))
        else:
            if args.output is None and sys.stdout.isatty():
                print(f"dfc plan: --format {args.format} writes binary data: give -o FILE", file=sys.stderr)
                return EXIT_USAGE
            _write(args.output, dot.to_image(dot.render(plan), args.format))
        if args.gantt:
            _write(args.gantt, gantt.png(plan) if args.gantt.endswith(".png") else gantt.svg(plan))
    except (dot.RenderError, RuntimeError, OSError, OutputError) as e:
        print(f"dfc plan: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def run_once(args, spec, profile, say) -> dict:
    """Compile, run, verify and measure one spec; returns the JSON report."""
    import time

    from .cost.model import CostModel
    from .cost.simulate import simulate
    from .ir.devices import devices
    from .outputs import OutputError
    from .runtime.verify import metrics, verify

    t0 = time.perf_counter()
    traced = g = None
    unsaved: list[str] = []  # why an output could not be written
    if args.engine != "oracle":  # the oracle reads the spec alone: nothing is compiled for it
        g = _compile(args, spec, profile)
        say(f"{spec.name}: compiled {g.number_of_nodes()} nodes in {time.perf_counter() - t0:.2f} s "
            f"({g.graph.get('strategy')})")
    compile_s = time.perf_counter() - t0
    if args.engine == "oracle":
        from .oracle import run_oracle

        say("evaluating the program's meaning on whole arrays (the oracle)")
        result = run_oracle(spec)
    elif args.engine == "tf":
        trace = None
        if args.trace:
            from .runtime.trace import Trace

            trace = Trace()
        saver = _checkpointer(args, spec, g, say)
        result, retries = _run_retrying(args, g, saver, dict(timeout=args.timeout, verbose=args.verbose, say=say,
                                                             trace=trace, layout=getattr(args, "layout", None)))
        if trace is not None:
            traced = trace.summary()
            try:
                _write(args.trace, trace.chrome())
            except OutputError as e:
                print(f"dfc run: --trace: {e}", file=sys.stderr)
                unsaved.append(str(e))
    else:
        from .ir.interp import run_numpy

        say("running on the NumPy engine (one process)"
            + (": it writes no checkpoints (loop.checkpoint is for the TF engine)"
               if spec.loop and spec.loop.checkpoint else ""))
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
    predicted = simulate(g, CostModel(profile, devices(spec)), result.iterations_run) if g is not None else None
    seconds = {"compile": compile_s, **result.seconds, "verify": verify_s, "total": time.perf_counter() - t0}
    if args.out:
        unsaved += _save_outputs(args, spec, result.arrays, say)
    return {"name": spec.name, "params": dict(spec.params), "engine": args.engine,
            "verified": verdict is None or verdict.ok, "verification": verdict.to_json() if verdict else None,
            "seconds": seconds, "metrics": m, "iterations_run": result.iterations_run,
            "predicted_seconds": predicted.makespan if predicted else None,
            "strategy": g.graph.get("strategy") if g is not None else None,
            **({"trace": traced} if traced is not None else {}),
            **({"checkpoints": result.checkpoints} if getattr(result, "checkpoints", None) else {}),
            **({"retries": retries} if args.engine == "tf" and retries else {}),
            **({"output_error": "; ".join(unsaved)} if unsaved else {})}


def _run_retrying(args, g, saver, options: dict):
    """Run on the TF engine; when a task dies, up to ``--retries`` times, start the cluster
    again and resume from the newest checkpoint. (result, what each retry said)."""
    from .runtime.tf_engine import TaskLost, run_tf

    retries: list[str] = []
    resume = args.resume is not None
    if saver is not None:
        saver.store.prepare()
        if resume:
            saver.check()
    while True:
        try:
            again = saver is not None and len(retries) < args.retries
            return run_tf(g, checkpoint=saver, resume=resume, again=again, **options), retries
        except TaskLost as e:
            if saver is None and args.retries:
                raise TaskLost(f"{e}\n  --retries {args.retries}: nothing can be resumed: the loop has no "
                               "`checkpoint:` (add `checkpoint: {every: 50}` to `loop:`)") from None
            if saver is None or len(retries) >= args.retries:
                _resumable(saver)
                raise
            first = str(e).splitlines()[0]
            where = (f"resuming from the checkpoint of iteration {saver.newest[1]}" if saver.newest else
                     "no checkpoint was written yet, so from the beginning")
            retries.append(f"{first}; {where}")
            print(f"dfc run: retry {len(retries)} of {args.retries}: {first}; starting the cluster again, {where}",
                  file=sys.stderr)
            resume = saver.newest is not None
        except (KeyboardInterrupt, SystemExit):
            _resumable(saver)
            raise


def _resumable(saver) -> None:
    """After a run that stopped early: where its newest checkpoint is, if it wrote one."""
    if saver is not None and saver.newest:
        print(f"dfc run: the newest checkpoint (iteration {saver.newest[1]}) is in {saver.store.folder}: "
              "run again with --resume to go on from it", file=sys.stderr)


def _checkpointer(args, spec, g, say):
    """The checkpointer of a run whose loop has ``checkpoint:`` (None without); its folder
    is made, and checked writable, by ``_run_retrying``."""
    from .runtime.checkpoint import Checkpointer, Store, identity

    if not (spec.loop and spec.loop.checkpoint):
        return None
    return Checkpointer(Store(_checkpoint_folder(args, spec)), spec.loop.checkpoint.every, identity(spec, g), say)


def _checkpoint_folder(args, spec) -> str:
    from .runtime.checkpoint import default_folder

    point = getattr(args, "point", None)
    given = args.resume or args.checkpoint_dir
    if given:
        return os.path.join(given, f"{point[0]}={point[1]}") if point else given
    return default_folder(spec, args.out, point)


def _out_folder(args) -> str:
    """Where ``--out`` puts a run's arrays: DIR, or DIR/KEY=VALUE for each point of a sweep."""
    point = getattr(args, "point", None)
    return os.path.join(args.out, f"{point[0]}={point[1]}") if point else args.out


def _out_files(args, spec) -> dict[str, str]:
    """Output array name -> the .npy file ``--out`` writes it to."""
    folder = _out_folder(args)
    return {a.name: os.path.join(folder, f"{a.name}.npy") for a in spec.arrays.values() if a.output}


def _save_outputs(args, spec, arrays, say) -> list[str]:
    """Save the output arrays for ``--out``, all or none; why not (nothing when saved)."""
    import numpy as np

    from .outputs import OutputError, write_files

    files = _out_files(args, spec)
    try:
        os.makedirs(_out_folder(args), exist_ok=True)
        write_files({path: (lambda f, x=arrays[name]: np.save(f, x)) for name, path in files.items()})
    except OSError as e:
        why = f"cannot make {_out_folder(args)}: {e.strerror or e}"
    except OutputError as e:
        why = str(e)
    else:
        say(f"saved {', '.join(files)} in {_out_folder(args)}")
        return []
    print(f"dfc run: --out: {why}", file=sys.stderr)
    return [why]


def _inputs(args, spec) -> list[str]:
    """Every file this command reads: the spec, its profile, its .npy inputs."""
    from .lang.model import InitFile

    return [args.file, getattr(args, "profile", None) or spec.placement.profile,
            *(a.init.file for a in spec.arrays.values() if isinstance(a.init, InitFile))]


def _bad_destinations(command: str, args, spec, destinations: dict[str, str | None],
                      made: dict[str, str] | None = None) -> str | None:
    """Why the destinations (flag -> file) cannot be written, or None: checked before
    anything runs. ``made``: files in folders the run makes, checked for clashes only."""
    from .outputs import clashes, unwritable

    named = {flag: path for flag, path in destinations.items() if path and path != "-"}
    for flag, path in named.items():
        why = unwritable(path)
        if why:
            return f"dfc {command}: {flag} {path}: {why}"
    for flag, path in (made or {}).items():
        folder = os.path.dirname(path)
        why = (f"'{path}' is a folder" if os.path.isdir(path) else
               f"'{folder}' is a file, not a folder" if os.path.exists(folder) and not os.path.isdir(folder) else None)
        if why:
            return f"dfc {command}: {flag}: {why}"
    why = clashes({**named, **(made or {})}, _inputs(args, spec))
    return f"dfc {command}: {why}" if why else None


def _summary_lines(r: dict) -> list[str]:
    v = r["verification"]
    state = "no verification" if v is None else "verified" if r["verified"] else "VERIFICATION FAILED"
    lines = [f"{r['name']} ({r['engine']} engine): {state}",
             "  time: " + ", ".join(f"{k} {x:.3f} s" for k, x in r["seconds"].items())]
    if r["iterations_run"]:
        lines.append(f"  iterations: {r['iterations_run']}")
    if v:
        lines.append(f"  verify: {v['detail']}")
    m, c = r["metrics"], r["seconds"]["compute"]
    if "gflops" in m:
        lines.append(f"  {m['flops'] / 1e9:.3f} GFLOP in {c:.3f} s = {m['gflops']:.2f} GFLOP/s")
    if "gbps" in m:
        lines.append(f"  {m['bytes'] / 1e9:.3f} GB in {c:.3f} s = {m['gbps']:.2f} GB/s")
    if r["predicted_seconds"] is not None:
        lines.append(f"  compute: predicted {r['predicted_seconds']:.3f} s, measured {c:.3f} s")
    if r.get("checkpoints"):
        lines += _checkpoint_lines(r["checkpoints"])
    for retry in r.get("retries", []):
        lines.append(f"  retried: {retry}")
    if r.get("trace"):
        from .runtime.trace import summary_lines

        lines += summary_lines(r["trace"])
    return lines


def _checkpoint_lines(c: dict) -> list[str]:
    lines = []
    if c.get("resumed_from"):
        lines.append(f"  resumed from: the checkpoint of iteration {c['resumed_from']['iteration']} "
                     f"in {c['resumed_from']['folder']}")
    each = f", {c['seconds_each']:.3f} s and {c['bytes'] / 1e6:.3g} MB each" if c["written"] else ""
    lines.append(f"  checkpoints: {c['written']} written every {c['every']} iterations{each}, in {c['folder']}"
                 + (f"; {len(c['failed'])} failed" if c["failed"] else ""))
    return lines


def _seconds(text: str) -> float:
    """A time limit: a finite number of seconds above zero (0, -1, nan and inf are no limit
    a user means, and every blocking call needs one)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}': give a number of seconds above 0, such as 300")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}': give a whole number, 0 or more")
    return value


def _checkpoint_flags(args, spec, sweep) -> str | None:
    """Why --resume, --retries or --checkpoint-dir cannot be used as given (None: they can)."""
    has = bool(spec.loop and spec.loop.checkpoint)
    for flag, given in (("--resume", args.resume is not None), ("--checkpoint-dir", args.checkpoint_dir)):
        if not given:
            continue
        if args.engine != "tf":
            return f"{flag}: the {args.engine} engine writes no checkpoints; checkpoints are the TF engine's"
        if not has:
            return (f"{flag}: {spec.file}: the loop has no `checkpoint:`, so no run of it saves its state"
                    + ("" if spec.loop else " (the spec has no loop)")
                    + "\n  hint: add `checkpoint: {every: 50}` to `loop:`")
    if args.resume is not None and sweep:
        return f"--resume: a sweep runs several programs; pin the param (--set {next(iter(sweep))}=...) and resume one"
    if args.retries and args.engine != "tf":
        return f"--retries: the {args.engine} engine runs in this process; it has no tasks that can die"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from .outputs import unwritable
    from .runtime.cluster import install_sigterm_handler

    if args.plot and os.path.splitext(args.plot)[1].lower() not in PLOT_FORMATS:
        print(f"dfc run: --plot {args.plot}: a plot is {', '.join(PLOT_FORMATS)}", file=sys.stderr)
        return EXIT_USAGE
    install_sigterm_handler()
    if args.cluster != "local" and args.engine != "tf":
        print(f"dfc run: --cluster {args.cluster}: the {args.engine} engine runs in this process; "
              "a cluster needs the TF engine", file=sys.stderr)
        return EXIT_USAGE
    loaded = _spec_and_profile(args, local=args.engine == "tf" and args.cluster == "local")
    if loaded is None:
        return EXIT_USAGE
    spec, profile = loaded
    args.layout = None
    if args.cluster != "local":
        placed = _placed_for("run", args, spec, profile)
        if placed is None:
            return EXIT_USAGE
        args.layout, profile = placed
    from .viz.progress import Progress

    progress = Progress(args.quiet)
    say = progress.say
    pinned = {s.partition("=")[0].strip() for s in (args.set or [])}
    sweep = {k: v for k, v in spec.sweep.items() if k not in pinned}  # --set K=V pins a swept param
    if args.sweep:
        key, _, values = args.sweep.partition("=")
        if key not in spec.params or not values:
            print(f"dfc run: --sweep {args.sweep}: give a param and values, e.g. --sweep MB=2,8,32 "
                  f"(params: {', '.join(spec.params)})", file=sys.stderr)
            return EXIT_USAGE
        sweep = {key: tuple(v.strip() for v in values.split(","))}
    if args.trace and (args.engine != "tf" or sweep):
        why = "the numpy engine has no trace" if args.engine != "tf" else \
            f"it traces one run: pin the swept param, e.g. --set {next(iter(sweep))}=..."
        print(f"dfc run: --trace: {why}", file=sys.stderr)
        return EXIT_USAGE
    if sweep and args.layout is not None:
        key = next(iter(sweep))
        print(f"dfc run: --cluster {args.cluster}: the spec sweeps {key}, and each point of a sweep runs on "
              f"fresh servers, but `dfc serve` serves one run; pin the param (--set {key}=...) and run one job "
              "per point", file=sys.stderr)
        return EXIT_USAGE
    why = _checkpoint_flags(args, spec, sweep)
    if why:
        print(f"dfc run: {why}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot and not sweep:
        print("dfc run: --plot draws a sweep: give --sweep K=a,b,c (or a spec with `sweep:`)", file=sys.stderr)
        return EXIT_USAGE
    arrays = {}
    if args.out:
        key, values = next(iter(sweep.items()), (None, ()))
        for point in [(key, v) for v in values] or [None]:
            args.point = point
            arrays.update({f"--out ({name})": path for name, path in _out_files(args, spec).items()})
        args.point = None
    why = (f"dfc run: --out {args.out}: {unwritable(args.out, folder=True)}"
           if args.out and unwritable(args.out, folder=True) else
           _bad_destinations("run", args, spec, {"--json": args.json, "--trace": args.trace, "--plot": args.plot},
                             arrays))
    if why:
        print(why, file=sys.stderr)
        return EXIT_USAGE
    reports = []
    with progress:
        status = _run_all(args, spec, profile, say, sweep, reports)
    if status is not None:
        return status
    ok = all(r["verified"] for r in reports)
    if not args.quiet:
        for r in reports:
            print("\n".join(_summary_lines(r)))
    else:  # quiet still says why it fails
        for r in reports:
            if not r["verified"]:
                print(f"dfc run: {r['name']}: verification failed: {r['verification']['detail']}", file=sys.stderr)
    if len(reports) > 1:  # a sweep: its table, quiet or not
        print(_sweep_table(next(iter(sweep)), reports))
    from .outputs import OutputError

    key = next(iter(sweep)) if sweep else None
    report = reports[0] if len(reports) == 1 else {"sweep": key, "runs": reports}
    try:
        if args.json:
            _write(args.json, json.dumps(_no_nan(report), indent=1, allow_nan=False) + "\n")
        if args.plot:
            _plot_sweep(key, reports, args.plot)
    except (OSError, RuntimeError, OutputError) as e:
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if ok and not any("output_error" in r for r in reports) else EXIT_FAILED


def _run_all(args, spec, profile, say, sweep, reports) -> int | None:
    """Run the spec (or each point of its sweep) into ``reports``; an exit code on failure."""
    from .diagnostics import SpecError, render_text
    from .oracle import OracleError
    from .runtime.checkpoint import CheckpointError
    from .runtime.tf_engine import ClusterMismatch, RunError

    try:
        if not sweep:
            reports.append(run_once(args, spec, profile, say))
        else:
            (key, values), = list(sweep.items())[:1]
            for value in values:
                args_set = [*(args.set or []), f"{key}={value}"]
                point = _load(argparse.Namespace(file=args.file, set=args_set), args.engine == "tf")
                if point is None:
                    return EXIT_USAGE
                say(f"--- {key} = {value}")
                args.point = (key, value)
                reports.append(run_once(args, point, profile, say))
    except (ClusterMismatch, CheckpointError) as e:  # the setup is wrong, not the run
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OracleError as e:
        print(f"dfc run: {spec.file}: the program has no single meaning: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:  # an input that changed after validation (a .npy cut short)
        print(render_text(e.diagnostics, {spec.file: _read_text(spec.file)}, _color(sys.stderr)), file=sys.stderr)
        return EXIT_USAGE
    return None


def _rate(r: dict) -> tuple[str, float]:
    m = r["metrics"]
    return ("GFLOP/s", m["gflops"]) if "gflops" in m else ("GB/s", m.get("gbps", 0.0))


def _sweep_table(key: str, reports: list[dict]) -> str:
    unit = _rate(reports[0])[0]
    lines = [f"{key:>10}  {'compute s':>10}  {unit:>9}  verified"]
    for r in reports:
        lines.append(f"{r['params'][key]:>10}  {r['seconds']['compute']:>10.4f}  {_rate(r)[1]:>9.3f}  {r['verified']}")
    return "\n".join(lines)


def _no_nan(value):
    """The report with every NaN or infinity as null: they are not JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_nan(v) for v in value]
    return value


#: what --plot writes (by the file's extension)
PLOT_FORMATS = (".png", ".svg", ".pdf")


def _plot_sweep(key: str, reports: list[dict], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib (pip install 'dfc[plot]')") from None
    unit = _rate(reports[0])[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["params"][key] for r in reports], [_rate(r)[1] for r in reports], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(key)
    ax.set_ylabel(unit)
    ax.set_title(reports[0]["name"])
    fig.tight_layout()
    from .outputs import write_files

    try:
        write_files({path: lambda f: fig.savefig(f, dpi=120, format=os.path.splitext(path)[1][1:].lower())})
    finally:
        plt.close(fig)


def _placed_for(command: str, args, spec, profile):
    """(layout, profile for its hosts and links) of ``args.cluster``, or None after printing why not."""
    from .runtime.clusters import cost_profile

    layout = _layout(command, args, spec)
    return None if layout is None else (layout, cost_profile(profile, layout))


def _layout(command: str, args, spec):
    """The layout of ``args.cluster`` for the spec's jobs, or None after printing why not."""
    from .diagnostics import SpecError, render_text
    from .runtime.clusters import ClusterSourceError, resolve

    jobs = {j.name: j.tasks for j in spec.cluster.values()}
    try:
        layout = resolve(args.cluster, jobs)
    except SpecError as e:
        print(render_text(e.diagnostics, {args.cluster: _read_text(args.cluster)}, _color(sys.stderr)),
              file=sys.stderr)
        return None
    except ClusterSourceError as e:
        print(f"dfc {command}: --cluster {args.cluster}: {e}", file=sys.stderr)
        return None
    for idle in layout.idle:
        print(f"dfc {command}: {idle} has no task of the spec and stays idle", file=sys.stderr)
    return layout


def cmd_serve(args: argparse.Namespace) -> int:
    from .runtime.clusters import ClusterSourceError
    from .runtime.serve import serve
    from .runtime.trust import check_serve

    spec = _load(args, local=False)
    if spec is None:
        return EXIT_USAGE
    layout = _layout("serve", args, spec)
    if layout is None:
        return EXIT_USAGE
    try:
        me = _my_task(args, layout)
    except ClusterSourceError as e:
        print(f"dfc serve: {e}", file=sys.stderr)
        return EXIT_USAGE
    if me is None:  # a rank of the allocation that the spec's cluster does not need
        print("dfc serve: this rank has no task of the spec; exiting", file=sys.stderr)
        return EXIT_OK
    why = check_serve(args.trust_network)
    if why:
        print(f"dfc serve: refused: {why}", file=sys.stderr)
        return EXIT_USAGE
    from .runtime.clusters.slurm import gpus_of_this_task
    from .runtime.gpus import GPUError, for_served_task

    try:  # before TensorFlow loads: the GPUs it may see, and memory growth where they are shared
        os.environ.update(for_served_task(spec, layout, me, os.environ,
                                          gpus_of_this_task(os.environ) if args.cluster == "slurm" else ()))
    except GPUError as e:
        print(f"dfc serve: {me.label}: {e}", file=sys.stderr)
        return EXIT_USAGE
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    if not args.child:  # the supervisor: it starts the server (again when it dies)
        from .runtime.serve import supervise

        return supervise(_serve_argv(args), me.label, say)
    # run() then leaves at once, skipping TensorFlow's teardown of the server (it can hang)
    return serve(layout, me, args.idle_timeout, say=say)


def _serve_argv(args) -> list[str]:
    """The arguments of this ``dfc serve``, for its child."""
    out = [args.file, *(a for s in (args.set or []) for a in ("--set", s)), "--cluster", args.cluster,
           "--idle-timeout", str(args.idle_timeout)]
    if args.job is not None:
        out += ["--job", args.job]
    if args.task is not None:
        out += ["--task", str(args.task)]
    return out + (["--trust-network"] if args.trust_network else [])


def _my_task(args, layout):
    """This process's task: --job/--task, else TF_CONFIG's task, else Slurm's rank."""
    from .runtime.clusters import ClusterSourceError

    if args.job is not None or args.task is not None:
        me = next((t for t in layout.tasks if (t.job, t.index) == (args.job, args.task)), None)
        if me is None:
            raise ClusterSourceError(f"--job {args.job} --task {args.task} is not a task of the cluster "
                                     f"({', '.join(t.label for t in layout.tasks)})")
        return me
    if args.cluster == "tf_config":
        from .runtime.clusters.tfconfig import this_task

        return this_task(os.environ, layout)
    if args.cluster == "slurm":
        from .runtime.clusters.slurm import this_rank

        return layout.task_of_rank(this_rank(os.environ))
    raise ClusterSourceError("give --job J --task I: which task of the cluster file this process serves")


def cmd_schema(args: argparse.Namespace) -> int:
    from .lang import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dfc", description="dfc: a declarative dataflow compiler for HPC. "
        "Write a YAML program of tiled arrays, tasks and queues; dfc validates, plans and runs it.")
    p.add_argument("--version", action="version", version=f"dfc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("validate", help="check specs and report every mistake as file:line:col",
                       description="Check specs against the schema and the language's rules. "
                       "Exit 0 when all are valid, 2 otherwise.")
    v.add_argument("files", nargs="+", metavar="FILE", help="spec files")
    v.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    v.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or a JSON list of diagnostics for editors and CI")
    v.set_defaults(func=cmd_validate)

    strategies = ("heft", "round-robin", "greedy-bytes", "manual")
    pl = sub.add_parser("plan", help="compile and place a spec; show the plan",
                        description="Compile a spec, place it on its cluster and predict the run: task classes, "
                        "devices with load and memory, bytes per link, predicted makespan and lower bound.")
    pl.add_argument("file", nargs="?", metavar="FILE", help="spec file")
    pl.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    pl.add_argument("--strategy", choices=strategies, help="placement strategy (default: the spec's, or heft)")
    pl.add_argument("--format", choices=("text", "json", "dot", "svg", "png"), default="text")
    pl.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    pl.add_argument("--gantt", metavar="FILE", help="also draw the simulated schedule (.svg, or .png with matplotlib)")
    pl.add_argument("--profile", metavar="FILE", help="device profile (YAML) for the cost model")
    pl.add_argument("--cluster", default="local", metavar="SOURCE",
                    help="plan for the hosts of a cluster: a cluster FILE (with its links), tf_config or slurm "
                         "(default local: one machine)")
    pl.add_argument("--passes", action="store_true", help="list the compiler's passes and exit")
    pl.add_argument("--print-after", metavar="PASS", help="print the IR after this pass and stop")
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("run", help="run a spec, verify the answer, report GFLOP/s or GB/s",
                       description="Compile and run a spec, verify its result and report its metrics. "
                       "Exit 0 when verified, 1 when verification fails, 2 on bad input.")
    r.add_argument("file", metavar="FILE", help="spec file")
    r.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    r.add_argument("--engine", choices=("tf", "numpy", "oracle"), default="tf",
                   help="tf (default): TensorFlow servers, one per task, on 127.0.0.1; "
                   "numpy: the compiled graph interpreted in this process; "
                   "oracle: the program's meaning on whole arrays, not compiled (the tests' reference)")
    r.add_argument("--timeout", type=_seconds, default=300.0, metavar="S",
                   help="limit for each call to the cluster, in seconds (default 300)")
    r.add_argument("--out", metavar="DIR", help="save the output arrays as .npy files")
    r.add_argument("--sweep", metavar="K=a,b,c", help="run once per value of a param and print a table")
    r.add_argument("--plot", metavar="FILE.png", help="with a sweep: draw it (needs matplotlib)")
    r.add_argument("--verbose", action="store_true", help="show TensorFlow's own logging")
    r.add_argument("--strategy", choices=strategies, help="placement strategy")
    r.add_argument("--profile", metavar="FILE", help="device profile (YAML) for the prediction")
    r.add_argument("--json", metavar="OUT", help="write a JSON report")
    r.add_argument("--trace", metavar="FILE.json",
                   help="tf engine: trace the compute phase into a Chrome trace and summarise it per device")
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.add_argument("--cluster", default="local", metavar="SOURCE",
                   help="local (default: servers started here, in a private network), a cluster FILE, "
                        "tf_config or slurm (servers started by `dfc serve`)")
    r.add_argument("--checkpoint-dir", metavar="DIR",
                   help="where a loop with `checkpoint:` saves its state (default: the spec's checkpoint.path, "
                        "else OUT/checkpoints with --out, else ./checkpoints/NAME); each task writes on its own machine")
    r.add_argument("--resume", nargs="?", const="", metavar="DIR",
                   help="start from the newest complete checkpoint (in DIR, else where the run saves them)")
    r.add_argument("--retries", type=_count, default=0, metavar="N",
                   help="when a task dies: start the cluster again and resume from the last checkpoint, "
                        "up to N times (default 0)")
    r.set_defaults(func=cmd_run)

    sv = sub.add_parser("serve", help="serve one task of a cluster across hosts",
                        description="Start this process's TensorFlow server for one task of the spec's "
                                    "cluster; it exits when the client releases it.")
    sv.add_argument("file", metavar="FILE", help="spec file")
    sv.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    sv.add_argument("--cluster", required=True, metavar="SOURCE", help="a cluster FILE, tf_config or slurm")
    sv.add_argument("--job", help="the job this process serves (with a cluster file)")
    sv.add_argument("--task", type=int, help="the task index this process serves (with a cluster file)")
    sv.add_argument("--idle-timeout", type=_seconds, default=600.0, metavar="S",
                    help="exit when no client says hello within S seconds (default 600)")
    sv.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the server under the supervisor
    sv.add_argument("--trust-network", action="store_true",
                    help="serve although this machine has a globally reachable address (no authentication!)")
    sv.set_defaults(func=cmd_serve)

    s = sub.add_parser("schema", help="print the spec's JSON Schema",
                       description="Print schemas/dfc.schema.json (JSON Schema draft 2020-12).")
    s.set_defaults(func=cmd_schema)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("dfc: interrupted: stopped, with every server it started", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as e:
        if type(e).__name__ != "Terminated":  # the SIGTERM of dfc.runtime.cluster
            raise
        print("dfc: terminated (SIGTERM): stopped, with every server it started", file=sys.stderr)
        return EXIT_TERMINATED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug in dfc, not a user mistake
        print("dfc: internal error — this is a bug in dfc, not in your spec.\n"
              f"Please report it at {ISSUES_URL} with the spec and this trace:\n", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def _private_network() -> None:
    """Before ``dfc run`` starts a local cluster, move into a network of its own (see
    dfc/runtime/private.py); through a user namespace, dfc executes itself again inside it."""
    import contextlib
    import io

    from .runtime import private

    try:  # silently: main() parses again and reports a usage error, or prints --help
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = build_parser().parse_args()
    except SystemExit:
        return
    if getattr(args, "func", None) is not cmd_run or args.engine != "tf" or args.cluster != "local" \
            or private.ENV in os.environ:
        return
    if private.enter() == "user+net":  # exactly as started: the same script, flags and arguments
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def run() -> None:  # console-script entry point
    _private_network()
    code = main()
    # Every file is written and closed and the cluster is stopped by now; what is left is
    # the interpreter's teardown: TensorFlow's (about a second here) and freeing every
    # object one by one (seconds after planning a graph of a million nodes). Skip it, but
    # stop any cluster still up first (the atexit hook would have).
    cluster = sys.modules.get("dfc.runtime.cluster")
    if cluster is not None:
        cluster.stop_all()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # the reader went away, or it is closed
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
