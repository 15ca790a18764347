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
    parts = [
        f"{len(spec.arrays)} array{'s' * (len(spec.arrays) != 1)}",
        f"{len(spec.tasks)} task{'s' * (len(spec.tasks) != 1)}"
        + (f" + {steps} loop step{'s' * (steps != 1)}" if steps else ""),
        f"{spec.tile_tasks} tile task{'s' * (spec.tile_tasks != 1)}",
        f"{spec.ntiles} tile{'s' * (spec.ntiles != 1)}",
    ]
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


def _load(args, local: bool = True):
    """The program of ``args.file`` with ``--set``; prints every error and returns None if
    invalid. ``local``: it will run on the local cluster (its servers' memory counts)."""
    from . import api
    from .diagnostics import render_text

    try:
        return api.load(args.file, args.set or (), local=local)
    except api.SpecError as e:
        sources = {args.file: _read_text(args.file), "<command line>": " ".join(f"--set {s}" for s in (args.set or []))}
        print(render_text(e.diagnostics, sources, _color(sys.stderr)), file=sys.stderr)
        return None


def _program_and_profile(args, local: bool = True, command: str = ""):
    """(program, its cost profile, the layout of ``--cluster`` or None) for a command, or
    None after printing why not. ``command``: the command whose ``--cluster`` other than
    local is resolved here (its hosts' calibrated profile is then the default)."""
    from .cost.profile import ProfileError

    program = _load(args, local)
    if program is None:
        return None
    layout = None
    if command and args.cluster != "local":
        layout = _layout(command, args, program)
        if layout is None:
            return None
    try:
        return program, program.profile(getattr(args, "profile", None), layout), layout
    except ProfileError as e:
        print(f"dfc: {e}", file=sys.stderr)
        return None


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
    # would re-scan the graph again and again (docs/compiler.md, "Compiler speed")
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
    # plans start no server; with --cluster, the plan the cluster will run: its hosts and links
    loaded = _program_and_profile(args, local=False, command="" if args.sweep else "plan")
    if loaded is None:
        return EXIT_USAGE
    program, profile, layout = loaded
    if args.sweep:
        return _plan_sweep(args, program, profile)
    spec = program.spec
    why = _bad_destinations("plan", args, spec, {"-o": args.output, "--gantt": args.gantt})
    if why:
        print(why, file=sys.stderr)
        return EXIT_USAGE
    from .ir.node import describe
    from .outputs import OutputError

    if args.print_after:
        shown: dict[str, object] = {}
        program.compile(
            args.strategy,
            profile,
            layout=layout,
            observe=lambda name, g: shown.setdefault(name, g) if name == args.print_after else None,
        )
        try:
            _write(args.output, describe(shown[args.print_after]))
        except OutputError as e:
            print(f"dfc plan: {e}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    plan = program.plan(args.strategy, profile, layout=layout, timeline=True if args.gantt else None)
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


def _inputs(args, spec) -> list[str]:
    """Every file this command reads: the spec, its profile, its .npy inputs."""
    from .lang.model import InitFile

    return [
        args.file,
        getattr(args, "profile", None) or spec.placement.profile,
        *(a.init.file for a in spec.arrays.values() if isinstance(a.init, InitFile)),
    ]


def _bad_destinations(
    command: str, args, spec, destinations: dict[str, str | None], made: dict[str, str] | None = None
) -> str | None:
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
        why = (
            f"'{path}' is a folder"
            if os.path.isdir(path)
            else f"'{folder}' is a file, not a folder"
            if os.path.exists(folder) and not os.path.isdir(folder)
            else None
        )
        if why:
            return f"dfc {command}: {flag}: {why}"
    why = clashes({**named, **(made or {})}, _inputs(args, spec))
    return f"dfc {command}: {why}" if why else None


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
            return (
                f"{flag}: {spec.file}: the loop has no `checkpoint:`, so no run of it saves its state"
                + ("" if spec.loop else " (the spec has no loop)")
                + "\n  hint: add `checkpoint: {every: 50}` to `loop:`"
            )
    if args.resume is not None and sweep:
        return f"--resume: a sweep runs several programs; pin the param (--set {next(iter(sweep))}=...) and resume one"
    if args.retries and args.engine != "tf":
        return f"--retries: the {args.engine} engine runs in this process; it has no tasks that can die"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    from .outputs import unwritable
    from .runtime.cluster import install_sigterm_handler
    from .viz.report import PLOT_FORMATS

    if args.plot and os.path.splitext(args.plot)[1].lower() not in PLOT_FORMATS:
        print(f"dfc run: --plot {args.plot}: a plot is {', '.join(PLOT_FORMATS)}", file=sys.stderr)
        return EXIT_USAGE
    install_sigterm_handler()
    if args.cluster != "local" and args.engine != "tf":
        print(
            f"dfc run: --cluster {args.cluster}: the {args.engine} engine runs in this process; "
            "a cluster needs the TF engine",
            file=sys.stderr,
        )
        return EXIT_USAGE
    loaded = _program_and_profile(args, local=args.engine == "tf" and args.cluster == "local", command="run")
    if loaded is None:
        return EXIT_USAGE
    program, profile, layout = loaded
    spec = program.spec
    from .viz.progress import Progress

    progress = Progress(args.quiet)
    pinned = {s.partition("=")[0].strip() for s in (args.set or [])}
    sweep = {k: v for k, v in spec.sweep.items() if k not in pinned}  # --set K=V pins a swept param
    if args.sweep:
        key, _, values = args.sweep.partition("=")
        if key not in spec.params or not values:
            print(
                f"dfc run: --sweep {args.sweep}: give a param and values, e.g. --sweep MB=2,8,32 "
                f"(params: {', '.join(spec.params)})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        sweep = {key: tuple(v.strip() for v in values.split(","))}
    why: str | None
    if args.trace and (args.engine != "tf" or sweep):
        why = (
            "the numpy engine has no trace"
            if args.engine != "tf"
            else f"it traces one run: pin the swept param, e.g. --set {next(iter(sweep))}=..."
        )
        print(f"dfc run: --trace: {why}", file=sys.stderr)
        return EXIT_USAGE
    if sweep and layout is not None:
        key = next(iter(sweep))
        print(
            f"dfc run: --cluster {args.cluster}: the spec sweeps {key}, and each point of a sweep runs on "
            f"fresh servers, but `dfc serve` serves one run; pin the param (--set {key}=...) and run one job "
            "per point",
            file=sys.stderr,
        )
        return EXIT_USAGE
    why = _checkpoint_flags(args, spec, sweep)
    if why:
        print(f"dfc run: {why}", file=sys.stderr)
        return EXIT_USAGE
    if args.plot and not sweep:
        print("dfc run: --plot draws a sweep: give --sweep K=a,b,c (or a spec with `sweep:`)", file=sys.stderr)
        return EXIT_USAGE
    why = (
        f"dfc run: --out {args.out}: {unwritable(args.out, folder=True)}"
        if args.out and unwritable(args.out, folder=True)
        else _bad_destinations(
            "run",
            args,
            spec,
            {"--json": args.json, "--trace": args.trace, "--plot": args.plot},
            _out_arrays(args, spec, sweep),
        )
    )
    if why:
        print(why, file=sys.stderr)
        return EXIT_USAGE
    options = dict(
        engine=args.engine,
        strategy=args.strategy,
        profile=profile,
        layout=layout,
        timeout=args.timeout,
        out=args.out,
        trace=args.trace,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        retries=args.retries,
        verbose=args.verbose,
        say=progress.say,
    )
    with progress:
        reports = _run_all(program, options, sweep)
    if isinstance(reports, int):
        return reports
    return _report(args, reports, next(iter(sweep), ""))


def _out_arrays(args, spec, sweep) -> dict[str, str]:
    """'--out (NAME)' -> the file each output array goes to, at every point of a sweep."""
    from .api import out_files

    if not args.out:
        return {}
    key, values = next(iter(sweep.items()), (None, ()))
    points: list[tuple | None] = [(key, v) for v in values] or [None]
    return {f"--out ({name})": path for point in points for name, path in out_files(spec, args.out, point).items()}


def _run_all(program, options: dict, sweep: dict):
    """The reports of the program's run (or of each point of its sweep); an exit code on failure."""
    from .diagnostics import SpecError, render_text
    from .oracle import OracleError
    from .runtime.checkpoint import CheckpointError
    from .runtime.tf_engine import ClusterMismatch, RunError

    try:
        if not sweep:
            return [program.run(**options)]
        ((key, values),) = list(sweep.items())[:1]
        return program.sweep(key, values, **options)
    except (ClusterMismatch, CheckpointError) as e:  # the setup is wrong, not the run
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OracleError as e:
        print(f"dfc run: {program.file}: the program has no single meaning: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SpecError as e:  # a sweep's point that is not valid, an input that changed after validation
        sources = {
            program.file: _read_text(program.file),
            "<command line>": " ".join(f"--set {s}" for s in program.overrides),
        }
        print(render_text(e.diagnostics, sources, _color(sys.stderr)), file=sys.stderr)
        return EXIT_USAGE


def _report(args, reports: list, key: str) -> int:
    """Print the reports (the summaries, a sweep's table), write --json and --plot; the exit code."""
    from .outputs import OutputError
    from .viz.report import plot_sweep, summary_lines, sweep_table

    if not args.quiet:
        for r in reports:
            print("\n".join(summary_lines(r)))
    else:  # quiet still says why it fails
        for r in reports:
            if not r.verified:
                print(f"dfc run: {r.name}: verification failed: {r.verification['detail']}", file=sys.stderr)
    if len(reports) > 1:  # a sweep: its table, quiet or not
        print(sweep_table(key, reports))
    document = reports[0].to_json() if len(reports) == 1 else {"sweep": key, "runs": [r.to_json() for r in reports]}
    try:
        if args.json:
            _write(args.json, json.dumps(document, indent=1, allow_nan=False) + "\n")
        if args.plot:
            plot_sweep(key, reports, args.plot)
    except (OSError, RuntimeError, OutputError) as e:
        print(f"dfc run: {e}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


def _layout(command: str, args, program):
    """The layout of ``args.cluster`` for the program's jobs, or None after printing why not."""
    from .diagnostics import SpecError, render_text
    from .runtime.clusters import ClusterSourceError

    try:
        layout = program.layout(args.cluster)
    except SpecError as e:
        print(render_text(e.diagnostics, {args.cluster: _read_text(args.cluster)}, _color(sys.stderr)), file=sys.stderr)
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

    program = _load(args, local=False)
    if program is None:
        return EXIT_USAGE
    spec = program.spec
    layout = _layout("serve", args, program)
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
        os.environ.update(
            for_served_task(
                spec, layout, me, os.environ, gpus_of_this_task(os.environ) if args.cluster == "slurm" else ()
            )
        )
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
    out = [
        args.file,
        *(a for s in (args.set or []) for a in ("--set", s)),
        "--cluster",
        args.cluster,
        "--idle-timeout",
        str(args.idle_timeout),
    ]
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
            raise ClusterSourceError(
                f"--job {args.job} --task {args.task} is not a task of the cluster "
                f"({', '.join(t.label for t in layout.tasks)})"
            )
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


class _Names(Sequence[str]):
    """The names of a registry (placement strategies, engines) as argparse ``choices``,
    read from their module when first used: building the parser imports nothing, so
    ``dfc validate`` does not pay for the compiler (an argument with these choices needs a
    ``metavar``: argparse formats the choices when it adds an argument without one)."""

    def __init__(self, module: str, attribute: str):
        self.module, self.attribute = module, attribute

    def _names(self) -> tuple[str, ...]:
        import importlib

        return tuple(getattr(importlib.import_module(self.module), self.attribute))

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, name: object) -> bool:
        return name in self._names()


def _plan_sweep(args: argparse.Namespace, program, profile) -> int:
    """`dfc plan SPEC --sweep K=a,b,c`: the predicted makespan and speedup as a param, or a
    job's number of tasks, grows (strong scaling before the allocation)."""
    from dataclasses import replace

    from . import api
    from .diagnostics import SpecError, render_text

    key, _, text = args.sweep.partition("=")
    spec = program.spec
    values = [v.strip() for v in text.split(",") if v.strip()]
    if (key not in spec.params and key not in spec.cluster) or not values:
        print(
            f"dfc plan: --sweep {args.sweep}: give a param or a job and values, e.g. --sweep worker=2,4,8 "
            f"(params: {', '.join(spec.params) or 'none'}; jobs: {', '.join(spec.cluster)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.format not in ("text", "json", "svg") or args.gantt or args.cluster != "local":
        print(
            "dfc plan: --sweep prints a table (--format text or json) or draws the speedup (--format svg), "
            "for the local cluster",
            file=sys.stderr,
        )
        return EXIT_USAGE
    rows = []
    for v in values:
        try:
            if key in spec.params:
                point = api.load(args.file, [*(args.set or ()), f"{key}={v}"], local=False)
            else:
                if not v.isdigit() or int(v) < 1:
                    print(f"dfc plan: --sweep {key}={v}: a job's tasks are a whole number", file=sys.stderr)
                    return EXIT_USAGE
                jobs = dict(spec.cluster)
                jobs[key] = replace(jobs[key], tasks=int(v))
                point = replace(program, spec=replace(spec, cluster=jobs))
        except SpecError as e:
            sources = {args.file: _read_text(args.file), "<command line>": f"--sweep {key}={v}"}
            print(f"dfc plan: --sweep {key}={v}:", file=sys.stderr)
            print(render_text(e.diagnostics, sources, _color(sys.stderr)), file=sys.stderr)
            return EXIT_USAGE
        plan = point.plan(args.strategy, profile)
        s = plan.schedule
        rows.append({key: v, "predicted_s": s.makespan, "lower_bound_s": s.lower_bound, "devices": len(plan.devices)})
    first = rows[0]["predicted_s"]
    base = float(rows[0][key])
    for r in rows:
        r["speedup"] = first / r["predicted_s"] if r["predicted_s"] else float("inf")
        r["efficiency"] = r["speedup"] / (float(r[key]) / base) if base else float("nan")
    if args.format == "json":
        _write(args.output, json.dumps({"sweep": key, "profile": profile.describe(), "rows": rows}, indent=1) + "\n")
        return EXIT_OK
    title = f"{spec.name}: predicted strong scaling over {key} (profile: {profile.describe()})"
    if args.format == "svg":
        from .viz import scaling

        _write(args.output, scaling.svg(title, key, rows))
        return EXIT_OK
    lines = [title]
    lines.append(f"{key:>10s} {'devices':>8s} {'predicted':>12s} {'bound':>12s} {'speedup':>8s} {'efficiency':>10s}")
    for r in rows:
        lines.append(
            f"{r[key]:>10s} {r['devices']:>8d} {r['predicted_s']:>10.4f} s {r['lower_bound_s']:>10.4f} s "
            f"{r['speedup']:>7.2f}x {r['efficiency']:>9.0%}"
        )
    _write(args.output, "\n".join(lines) + "\n")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    import yaml

    from .cost.calibrate import (
        STEPS,
        CalibrateError,
        calibrate,
        kernel_count,
        machine_profile,
        merge_kernels,
        shipped_specs,
    )
    from .cost.profile import Profile, ProfileError, load_profile
    from .outputs import OutputError, write_file
    from .runtime.cluster import ClusterError
    from .runtime.tf_engine import RunError

    remote = args.cluster != "local"
    if args.repeats < 3:
        print("dfc calibrate: --repeats must be at least 3 (a median of fewer is no median)", file=sys.stderr)
        return EXIT_USAGE
    if args.add and not args.specs:
        print("dfc calibrate: --add times the kernels of the specs it is given: name one or more", file=sys.stderr)
        return EXIT_USAGE
    if remote and not args.specs:
        print(
            f"dfc calibrate: --cluster {args.cluster}: name the spec whose `dfc serve` servers to measure on "
            "(its cluster gives the jobs: dfc calibrate SPEC --cluster ...)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if remote and args.add and not args.output:
        print("dfc calibrate: --add --cluster: name the profile to add to with -o PROFILE", file=sys.stderr)
        return EXIT_USAGE
    path: str | None = args.output or (None if remote else str(machine_profile()))  # a cluster's: by its host
    existing = None
    if args.add:
        assert path is not None  # (--add --cluster needs -o, refused above)
        try:
            load_profile(path)  # a profile dfc reads, before minutes of measuring
            with open(path, encoding="utf-8") as f:
                existing = yaml.safe_load(f) or {}
        except (ProfileError, OSError, yaml.YAMLError) as e:
            print(
                f"dfc calibrate: --add: {path} is no profile to add to ({e}); run `dfc calibrate` first",
                file=sys.stderr,
            )
            return EXIT_USAGE
    programs, loaded = [], []
    for file in args.specs or shipped_specs():
        program = _load(argparse.Namespace(file=str(file), set=args.set), local=not remote)
        if program is None:
            return EXIT_USAGE
        loaded.append(program)
        programs.append(program.compile(profile=Profile()))
    cluster = None
    if remote:
        from .runtime.remote import RemoteCluster

        layout = _layout("calibrate", args, loaded[0])
        if layout is None:
            return EXIT_USAGE
        if len(layout.tasks) < 2:
            print(
                f"dfc calibrate: --cluster {args.cluster}: {args.specs[0]}'s cluster has one task; calibrate "
                "measures between two (a spec whose cluster has two or more)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        cluster = RemoteCluster(layout)
        try:
            cluster.wait()
        except RunError as e:
            cluster.stop()
            print(f"dfc calibrate: --cluster {args.cluster}: {e}", file=sys.stderr)
            return EXIT_FAILED
    from rich.progress import Progress

    try:
        with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            steps = (0 if args.add else STEPS) + kernel_count(programs)
            task = bar.add_task("connecting" if remote else "starting three servers", total=steps)

            def progress(what: str) -> None:
                bar.update(task, advance=1, description=what)

            profile = calibrate(args.repeats, progress, programs, base=not args.add, cluster=cluster)
    except (ClusterError, CalibrateError) as e:
        print(f"dfc calibrate: {e}", file=sys.stderr)
        return EXIT_FAILED
    path = path or str(machine_profile(profile["taken"]["host"]))
    if existing is not None:
        added = sum(map(len, profile.get("kernels", {}).values()))
        profile = merge_kernels(existing, profile)
    notes = profile.pop("notes")
    whose = f"the servers of --cluster {args.cluster}" if remote else "this machine"
    head = f"# dfc calibrate: {whose}'s costs for the cost model (docs/compiler.md, 'Profiles')\n" + "".join(
        f"# {n}\n" for n in notes
    )
    text = head + yaml.safe_dump({**profile, "notes": notes}, sort_keys=False, width=100)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_file(path, text)
    except (OutputError, OSError) as e:
        print(f"dfc calibrate: cannot write {path}: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        load_profile(path)  # what calibrate wrote, dfc reads: a figure out of range is a bug
    except ProfileError as e:
        print(f"dfc calibrate: wrote a profile dfc cannot read: {e}", file=sys.stderr)
        return EXIT_FAILED
    if existing is not None:
        print(f"added {added} kernel sizes to {path}")
        return EXIT_OK
    flops = profile["cpu_flops"]
    links = ", ".join(
        f"{name.replace('_', ' ')} {link['latency'] * 1e3:.2f} ms + {link['bandwidth'] / 1e9:.2f} GB/s"
        for name in ("same_host", "network")
        for link in [profile.get(name)]
        if link
    )
    print(
        f"wrote {path}: float64 {flops['float64'] / 1e9:.1f} GFLOP/s, float32 {flops['float32'] / 1e9:.1f} GFLOP/s, "
        f"memory {profile['cpu_mem_bandwidth'] / 1e9:.1f} GB/s, op overhead {profile['op_overhead'] * 1e6:.1f} us, "
        f"links: {links}"
    )
    if remote and os.path.abspath(path) != os.path.abspath(machine_profile()):
        host = profile["taken"]["host"]
        if os.path.abspath(path) == os.path.abspath(machine_profile(host)):
            print(f"  dfc plan and dfc run --cluster take it for a cluster that names host {host}")
        else:
            print(f"  plan and run on that cluster with it: --profile {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dfc",
        description="dfc: a declarative dataflow compiler for HPC. "
        "Write a YAML program of tiled arrays, tasks and queues; dfc validates, plans and runs it.",
    )
    p.add_argument("--version", action="version", version=f"dfc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser(
        "validate",
        help="check specs and report every mistake as file:line:col",
        description="Check specs against the schema and the language's rules. Exit 0 when all are valid, 2 otherwise.",
    )
    v.add_argument("files", nargs="+", metavar="FILE", help="spec files")
    v.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    v.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default) or a JSON list of diagnostics for editors and CI",
    )
    v.set_defaults(func=cmd_validate)

    strategies = _Names("dfc.passes.place", "STRATEGIES")
    pl = sub.add_parser(
        "plan",
        help="compile and place a spec; show the plan",
        description="Compile a spec, place it on its cluster and predict the run: task classes, "
        "devices with load and memory, bytes per link, predicted makespan and lower bound.",
    )
    pl.add_argument("file", nargs="?", metavar="FILE", help="spec file")
    pl.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    pl.add_argument(
        "--strategy",
        choices=strategies,
        metavar="STRATEGY",
        help="placement strategy: %(choices)s (default: the spec's, or heft)",
    )
    pl.add_argument("--format", choices=("text", "json", "dot", "svg", "png"), default="text")
    pl.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    pl.add_argument("--gantt", metavar="FILE", help="also draw the simulated schedule (.svg, or .png with matplotlib)")
    pl.add_argument("--profile", metavar="FILE", help="device profile (YAML) for the cost model")
    pl.add_argument(
        "--cluster",
        default="local",
        metavar="SOURCE",
        help="plan for the hosts of a cluster: a cluster FILE (with its links), tf_config or slurm "
        "(default local: one machine)",
    )
    pl.add_argument(
        "--sweep",
        metavar="K=a,b,c",
        help="predict the makespan and speedup as a param or a job's tasks grows, e.g. --sweep worker=2,4,8",
    )
    pl.add_argument("--passes", action="store_true", help="list the compiler's passes and exit")
    pl.add_argument("--print-after", metavar="PASS", help="print the IR after this pass and stop")
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser(
        "run",
        help="run a spec, verify the answer, report GFLOP/s or GB/s",
        description="Compile and run a spec, verify its result and report its metrics. "
        "Exit 0 when verified, 1 when verification fails, 2 on bad input.",
    )
    r.add_argument("file", metavar="FILE", help="spec file")
    r.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    r.add_argument(
        "--engine",
        choices=_Names("dfc.api", "ENGINES"),
        metavar="ENGINE",
        default="tf",
        help="tf (default): TensorFlow servers, one per task, on 127.0.0.1; "
        "numpy: the compiled graph interpreted in this process; "
        "oracle: the program's meaning on whole arrays, not compiled (the tests' reference)",
    )
    r.add_argument(
        "--timeout",
        type=_seconds,
        default=300.0,
        metavar="S",
        help="limit for each call to the cluster, in seconds (default 300)",
    )
    r.add_argument("--out", metavar="DIR", help="save the output arrays as .npy files")
    r.add_argument("--sweep", metavar="K=a,b,c", help="run once per value of a param and print a table")
    r.add_argument("--plot", metavar="FILE.png", help="with a sweep: draw it (needs matplotlib)")
    r.add_argument("--verbose", action="store_true", help="show TensorFlow's own logging")
    r.add_argument("--strategy", choices=strategies, metavar="STRATEGY", help="placement strategy: %(choices)s")
    r.add_argument("--profile", metavar="FILE", help="device profile (YAML) for the prediction")
    r.add_argument("--json", metavar="OUT", help="write a JSON report")
    r.add_argument(
        "--trace",
        metavar="FILE.json",
        help="tf engine: trace the compute phase into a Chrome trace and summarise it per device",
    )
    r.add_argument("--quiet", action="store_true", help="print nothing but errors")
    r.add_argument(
        "--cluster",
        default="local",
        metavar="SOURCE",
        help="local (default: servers started here, in a private network), a cluster FILE, "
        "tf_config or slurm (servers started by `dfc serve`)",
    )
    r.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="where a loop with `checkpoint:` saves its state (default: the spec's checkpoint.path, "
        "else OUT/checkpoints with --out, else ./checkpoints/NAME); each task writes on its own machine",
    )
    r.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="DIR",
        help="start from the newest complete checkpoint (in DIR, else where the run saves them)",
    )
    r.add_argument(
        "--retries",
        type=_count,
        default=0,
        metavar="N",
        help="when a task dies: start the cluster again and resume from the last checkpoint, up to N times (default 0)",
    )
    r.set_defaults(func=cmd_run)

    sv = sub.add_parser(
        "serve",
        help="serve one task of a cluster across hosts",
        description="Start this process's TensorFlow server for one task of the spec's "
        "cluster; it exits when the client releases it.",
    )
    sv.add_argument("file", metavar="FILE", help="spec file")
    sv.add_argument("--set", action="append", metavar="K=V", help="override a param (repeatable)")
    sv.add_argument("--cluster", required=True, metavar="SOURCE", help="a cluster FILE, tf_config or slurm")
    sv.add_argument("--job", help="the job this process serves (with a cluster file)")
    sv.add_argument("--task", type=int, help="the task index this process serves (with a cluster file)")
    sv.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=600.0,
        metavar="S",
        help="exit when no client says hello within S seconds (default 600)",
    )
    sv.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the server under the supervisor
    sv.add_argument(
        "--trust-network",
        action="store_true",
        help="serve although this machine has a globally reachable address (no authentication!)",
    )
    sv.set_defaults(func=cmd_serve)

    c = sub.add_parser(
        "calibrate",
        help="measure this machine's costs for the cost model; write a profile",
        description="Measure, on a local cluster of three servers (or on the `dfc serve` servers of "
        "--cluster), what the cost model needs: flop "
        "rates, memory bandwidth, per-op, per-run, per-loop-iteration and first-run overheads, the links "
        "between servers of one host and of two hosts (latency, gap, bandwidth, CPU per byte), and the time of every kernel of the "
        "given specs (default: the specs shipped with dfc) at their sizes; write them as a profile "
        "(YAML). dfc plan and dfc run use this machine's profile when no other is given.",
    )
    c.add_argument("specs", nargs="*", metavar="SPEC", help="programs whose kernels to time (default: dfc's specs/)")
    c.add_argument("--set", action="append", metavar="K=V", help="override a param of every SPEC (repeatable)")
    c.add_argument(
        "--add",
        action="store_true",
        help="time only the kernels of the SPECs (at the --set sizes) and add them to the profile, keeping the rest",
    )
    c.add_argument("-o", "--output", metavar="PROFILE", help="where to write it (default: this machine's profile)")
    c.add_argument("--repeats", type=_count, default=7, metavar="N", help="timed runs of each measurement (default 7)")
    c.add_argument(
        "--cluster",
        default="local",
        metavar="SOURCE",
        help="where to measure: local (default: three servers on this machine), or a cluster file, tf_config or "
        "slurm whose `dfc serve` servers of the first SPEC run (the links between its hosts too)",
    )
    c.set_defaults(func=cmd_calibrate)

    s = sub.add_parser(
        "schema",
        help="print the spec's JSON Schema",
        description="Print schemas/dfc.schema.json (JSON Schema draft 2020-12).",
    )
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
        print(
            "dfc: internal error — this is a bug in dfc, not in your spec.\n"
            f"Please report it at {ISSUES_URL} with the spec and this trace:\n",
            file=sys.stderr,
        )
        traceback.print_exc()
        return EXIT_INTERNAL


def _private_network() -> None:
    """Before ``dfc run`` starts a local cluster, move into a network of its own (see
    dfc/runtime/private.py); through a user namespace, dfc executes itself again inside it.
    It must happen while dfc runs one thread, before NumPy (and its BLAS threads) loads, so
    the command line is read here by a parser of its own that imports nothing: main()
    parses it again, and reports any mistake in it."""
    from .runtime import private

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("command", nargs="?")
    pre.add_argument("--engine", default="tf")
    pre.add_argument("--cluster", default="local")
    try:
        args, _ = pre.parse_known_args()
    except SystemExit:  # silently: main() reports it
        return
    if args.command != "run" or args.engine != "tf" or args.cluster != "local" or private.ENV in os.environ:
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
