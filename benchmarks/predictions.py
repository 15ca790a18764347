"""Predicted against measured: the cost model's compute time for every spec in specs/ at
the benchmark harness's sizes, next to what `dfc run` measures (issue 16's goal: within
25 %, after `dfc calibrate`).

    python benchmarks/predictions.py                  # this machine's profile, if calibrated
    python benchmarks/predictions.py --profile FILE   # another
    python benchmarks/predictions.py --quick          # small sizes (a smoke run)
    python benchmarks/predictions.py --calibrate      # calibrate first: the machine, then
                                                      # each spec's kernels at its sizes here

Each row is the median of ``--repeats`` `dfc run --json` (each a fresh local cluster):
``predicted_seconds`` against ``seconds.compute``, and their ratio. Prints a Markdown table
and writes ``benchmarks/results/predictions-<time>.json``."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: (spec, its params at the benchmark harness's sizes; quick ones)
SIZES = {
    "stream": (["MB=128", "reps=50"], ["MB=8", "reps=10"]),
    "matmul": (["N=4096", "T=1024"], ["N=1024", "T=512"]),
    "cg": (["N=8192", "iterations=100", "tol=0"], ["N=1024", "iterations=20", "tol=0"]),
    "fft": (["N=2**22"], ["N=2**18"]),
    "power": ([], ["N=1024", "iterations=20", "tol=0"]),
    "jacobi": ([], ["N=1024"]),
    "cholesky": ([], ["N=1024", "B=256"]),
    "heat2d": ([], ["N=512", "B=128"]),
    "montecarlo_pi": ([], ["N=2**18"]),
    "fft2d": ([], ["N=512"]),
}


def run(spec: str, sets: list[str], profile: str | None, repeats: int) -> dict:
    rows = []
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile(suffix=".json") as f, tempfile.TemporaryDirectory() as work:
            cmd = [
                sys.executable,
                "-m",
                "dfc",
                "run",
                str(ROOT / "specs" / f"{spec}.yaml"),
                "--json",
                f.name,
                "--quiet",
            ]
            for s in sets:
                cmd += ["--set", s]
            if profile:
                cmd += ["--profile", profile]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work)
            if proc.returncode != 0:
                raise RuntimeError(f"{spec}: {proc.stderr[-600:]}")
            rows.append(json.loads(Path(f.name).read_text()))
    measured = statistics.median(r["seconds"]["compute"] for r in rows)
    predicted = statistics.median(r["predicted_seconds"] for r in rows)
    return {
        "spec": spec,
        "params": " ".join(sets) or "(its defaults)",
        "predicted_s": predicted,
        "measured_s": measured,
        "ratio": predicted / measured if measured else None,
        "profile": rows[0].get("profile", ""),
    }


def calibrate(quick: bool) -> str:
    """A fresh profile of this machine with the kernels of every spec at its sizes here."""
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = str(results / f"profile-{time.strftime('%Y%m%d-%H%M%S')}.yaml")
    dfc = [sys.executable, "-m", "dfc", "calibrate", "-o", path]
    subprocess.run(dfc, check=True, timeout=600, capture_output=True)
    for spec, (full, small) in SIZES.items():
        sets = [a for s in (small if quick else full) for a in ("--set", s)]
        subprocess.run(
            [*dfc, "--add", str(ROOT / "specs" / f"{spec}.yaml"), *sets], check=True, timeout=600, capture_output=True
        )
    print(f"calibrated: {path}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", help="a profile (default: this machine's calibrated one, else the built-in)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="first `dfc calibrate` a profile (into benchmarks/results) and `dfc calibrate --add` each spec's "
        "kernels at the sizes below; predict with it",
    )
    a = p.parse_args(argv)
    if a.profile:
        a.profile = str(Path(a.profile).resolve())  # the runs start in folders of their own
    if a.calibrate:
        a.profile = calibrate(a.quick)
    out = []
    print("| spec | params | predicted | measured | predicted / measured |")
    print("|---|---|---|---|---|")
    for spec, (full, quick) in SIZES.items():
        r = run(spec, quick if a.quick else full, a.profile, max(1, a.repeats))
        out.append(r)
        print(f"| {spec} | {r['params']} | {r['predicted_s']:.3f} s | {r['measured_s']:.3f} s | {r['ratio']:.2f} |")
    within = sum(1 for r in out if r["ratio"] and 0.75 <= r["ratio"] <= 1.25)
    print(f"\nwithin 25 %: {within} of {len(out)} (profile: {out[0]['profile'] if out else ''})")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"predictions-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"quick": a.quick, "rows": out}, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
