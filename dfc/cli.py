"""The ``dfc`` command line: parse arguments, call the stages, print.

Exit codes: 0 success; 1 a run or its verification failed; 2 bad input (the spec, a
flag); 70 an internal error in dfc (a bug: it asks for a report); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Sequence

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 70, 130
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
    from .spec import SpecError, load_spec

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
    try:
        with open(file, "rb") as f:
            return f.read(4 * 2**20).decode("utf-8", errors="replace")
    except OSError:
        return ""


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec import schema_text

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
        print("dfc: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # a bug in dfc, not a user mistake
        print("dfc: internal error — this is a bug in dfc, not in your spec.\n"
              f"Please report it at {ISSUES_URL} with the spec and this trace:\n", file=sys.stderr)
        traceback.print_exc()
        return EXIT_INTERNAL


def run() -> None:  # console-script entry point
    sys.exit(main())


if __name__ == "__main__":
    run()
