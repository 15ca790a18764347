"""dfc from Python, notebook style: load CG, look at its plan, sweep the problem size on
the local TensorFlow cluster, and plot GFLOP/s against N.

    python examples/sweep_cg.py                      # N = 256, 512, 1024 on the TF engine
    python examples/sweep_cg.py --engine numpy --sizes 128,256 --plot cg.png

Every call here is the public API (dfc/api.py); `dfc run specs/cg.yaml --sweep N=...`
does the same from the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dfc

HERE = Path(__file__).resolve().parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engine", default="tf", choices=dfc.ENGINES)
    p.add_argument("--sizes", default="256,512,1024", help="values of N, comma separated")
    p.add_argument("--plot", help="draw GFLOP/s against N into this file (.png, .svg)")
    p.add_argument("--json", help="write the reports here")
    args = p.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    # one program, its params overridden by keyword (as `--set` does)
    cg = dfc.load(HERE.parent / "specs" / "cg.yaml", N=sizes[0], iterations=50)

    # the plan: where every tile lives and what the cost model predicts
    plan = cg.plan(strategy="heft")
    print(
        f"{cg.name}: {len(plan.devices)} devices, predicted {plan.schedule.makespan * 1e3:.2f} ms "
        f"({plan.ratio:.2f}x the lower bound)"
    )

    # the sweep: one run per N, each verified against the residual bound of the spec
    reports = cg.sweep("N", sizes, engine=args.engine)
    print(f"{'N':>6} {'iterations':>10} {'compute s':>10} {'GFLOP/s':>8}  verified")
    for r in reports:
        print(
            f"{r.params['N']:>6} {r.iterations_run:>10} {r.seconds['compute']:>10.4f} {r.rate[1]:>8.3f}  {r.verified}"
        )

    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in reports], indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot([r.params["N"] for r in reports], [r.rate[1] for r in reports], marker="o")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"CG on the {args.engine} engine")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
    return 0 if all(r.verified for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
