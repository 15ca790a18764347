"""dfc against the natural single-machine alternatives, side by side, in one sitting.

    python benchmarks/run.py --set quick      # under 3 minutes
    python benchmarks/run.py --set quick --smoke   # one run of each figure (no medians): CI's smoke test
    python benchmarks/run.py --set full       # matmul 4096/8192, CG 8192x100, FFT 2^22/2^24, STREAM 2-128 MB

Every figure is the median of ``--repeats`` runs (at least 3; one with ``--smoke``, whose
figures are not to be quoted), measured in this run:

- matmul (float32): ``dfc run specs/matmul.yaml`` against NumPy/BLAS and Dask arrays with
  the same chunks (threaded scheduler, and a 2-process ``distributed.LocalCluster``);
- CG (float64, a fixed number of iterations: ``tol=0``): against a NumPy CG loop. 50, not
  100: the generated SPD matrix is so well conditioned that CG reaches machine precision
  in ~60 iterations, after which rr underflows and 0/0 gives NaN in any implementation;
- FFT (complex128): against ``numpy.fft`` and ``scipy.fft`` (all cores);
- tiled Cholesky (float64, ``specs/cholesky.yaml`` on 2 workers): against
  ``numpy.linalg.cholesky`` and ``scipy.linalg.cholesky`` (LAPACK POTRF) of the whole matrix;
- STREAM (worker -> ps): against a bare two-server TF ``assign_add`` of the same vector
  (``bare_stream.py``: the figure STREAM is held to), a raw socket transfer between two
  local processes and a NumPy copy; plus the machine's peak BLAS rate and memory bandwidth.

dfc figures use the compute phase (after cluster start and data init), which ``dfc run
--json`` reports apart; startup and init are reported too. Inputs are re-made for every
run (Dask would otherwise reuse a persisted result), and results are checked: dfc verifies
its own; the baselines are compared with NumPy.

Writes a table to stdout, ``benchmarks/results/<set>-<time>.json`` with the machine's
description, and a PNG chart beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

SETS = {
    "quick": {
        "matmul": [(1024, 512)],
        "cg": [(1024, 20)],
        "fft": [2**18],
        "cholesky": [(1024, 256)],
        "stream": [2, 8],
        "peak_n": 2048,
        "copy_mb": 128,
        "scaling": [1_000],
    },
    "full": {
        "matmul": [(4096, 1024), (8192, 2048)],
        "cg": [(8192, 100)],
        "fft": [2**22, 2**24],
        "cholesky": [(4096, 512)],
        "stream": [2, 8, 32, 128],
        "peak_n": 8192,
        "copy_mb": 1024,
        "scaling": [1_000, 10_000, 32_768, 100_000, 262_144],
    },
}


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = fn()
        times.append(t)
    return statistics.median(times)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------- dfc


def dfc_run(spec: str, sets: list[str], repeats: int) -> dict:
    """Median figures of ``dfc run`` (each run a fresh local cluster)."""
    runs = []
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            out = f.name
        cmd = [sys.executable, "-m", "dfc", "run", str(SPECS / spec), "--json", out, "--quiet"]
        for s in sets:
            cmd += ["--set", s]
        wall = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:  # where a spec's checkpoints go (./checkpoints)
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work)
        wall = time.perf_counter() - wall
        if proc.returncode != 0:
            raise RuntimeError(f"dfc run {spec} {' '.join(sets)} failed ({proc.returncode}): {proc.stderr[-800:]}")
        r = json.loads(Path(out).read_text())
        os.unlink(out)
        r["wall"] = wall
        runs.append(r)
    med = lambda k: statistics.median(r["seconds"][k] for r in runs)  # noqa: E731
    m = runs[0]["metrics"]
    compute = med("compute")
    return {
        "verified": all(r["verified"] for r in runs),
        "compute_s": compute,
        "startup_s": med("startup"),
        "init_s": med("init"),
        "wall_s": statistics.median(r["wall"] for r in runs),
        "gflops": m["flops"] / compute / 1e9 if "flops" in m else None,
        "gbps": m["bytes"] / compute / 1e9 if "bytes" in m else None,
        "iterations": runs[0]["iterations_run"],
    }


# ---------------------------------------------------------------- baselines


def numpy_matmul(n: int, repeats: int) -> float:
    rng = np.random.default_rng(1)

    def one():
        a = rng.random((n, n), dtype=np.float32)
        b = rng.random((n, n), dtype=np.float32)
        t = timed(lambda: a @ b)
        return t

    return 2 * n**3 / median_time(one, repeats) / 1e9


def dask_matmul(n: int, chunk: int, repeats: int, scheduler: str) -> float:
    import dask.array as da

    seeds = iter(range(1000, 2000))
    client = cluster = None
    if scheduler == "distributed":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=max(1, (os.cpu_count() or 2) // 2), processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:

        def one():
            # fresh inputs each run (new seeds: new keys, nothing to reuse), made by the workers
            a = da.random.default_rng(next(seeds)).random((n, n), dtype=np.float32, chunks=chunk).persist()
            b = da.random.default_rng(next(seeds)).random((n, n), dtype=np.float32, chunks=chunk).persist()
            kw = {} if client else {"scheduler": "threads"}
            t = time.perf_counter()
            c = (a @ b).compute(**kw)
            t = time.perf_counter() - t
            assert c.shape == (n, n)
            return t

        return 2 * n**3 / median_time(one, repeats) / 1e9
    finally:
        if client:
            client.close()
            cluster.close()


def cg_diagonal(n: int) -> int:
    """The SPD matrix's diagonal for the CG runs: with the default (n) CG converges so fast
    that its residual underflows to 0 (and the next step to NaN) after ~65 iterations at
    n = 8192; n/32 (at least 4 sqrt(n), so it stays positive definite) keeps 100 iterations
    finite (rr/bb ~ 1e-200 at the end) in NumPy and in dfc alike."""
    return int(max(n // 32, 4 * math.isqrt(n)))


def numpy_cg(n: int, iterations: int, repeats: int) -> float:
    rng = np.random.default_rng(3)
    m = rng.random((n, n))
    a = 0.5 * (m + m.T) + cg_diagonal(n) * np.eye(n)
    b = rng.random(n)

    def one():
        def cg():
            x = np.zeros(n)
            r = b.copy()
            p = r.copy()
            rr = r @ r
            for _ in range(iterations):
                q = a @ p
                alpha = rr / (p @ q)
                x += alpha * p
                r -= alpha * q
                rr_new = r @ r
                p = r + (rr_new / rr) * p
                rr = rr_new
            return x

        return timed(cg)

    return iterations * 2 * n**2 / median_time(one, repeats) / 1e9


def cholesky_rate(n: int, repeats: int, which: str) -> float:
    """GFLOP/s (n³/3 + n²/2, as specs/cholesky.yaml counts) of LAPACK's POTRF on an SPD
    matrix like the spec's (uniform, symmetrised, n on the diagonal), checked."""
    rng = np.random.default_rng(0)
    u = rng.random((n, n))
    a = (u + u.T) / 2 + n * np.eye(n)
    if which == "scipy":
        import scipy.linalg

        factor = lambda: scipy.linalg.cholesky(a, lower=True, check_finite=False)  # noqa: E731
    else:
        factor = lambda: np.linalg.cholesky(a)  # noqa: E731
    lo = factor()
    assert np.allclose(lo @ lo.T, a), "the baseline's factor is wrong"
    return (n**3 / 3 + n**2 / 2) / median_time(lambda: timed(factor), repeats) / 1e9


def fft_rate(n: int, repeats: int, which: str) -> float:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    if which == "numpy":
        fn = lambda: np.fft.fft(x)  # noqa: E731
    else:
        import scipy.fft

        fn = lambda: scipy.fft.fft(x, workers=-1)  # noqa: E731
    t = median_time(lambda: timed(fn), repeats)
    return 5 * n * np.log2(n) / t / 1e9


def _sender(port: int, nbytes: int, reps: int) -> None:
    payload = b"\0" * nbytes
    with socket.create_connection(("127.0.0.1", port)) as s:
        for _ in range(reps):
            s.sendall(payload)


def socket_gbps(mb: int, repeats: int) -> float:
    nbytes, reps = mb * 2**20, max(2, 512 // max(mb, 1))

    def one():
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            proc = Process(target=_sender, args=(srv.getsockname()[1], nbytes, reps))
            proc.start()
            conn, _ = srv.accept()
            buf = bytearray(4 * 2**20)
            got, t = 0, time.perf_counter()
            with conn:
                while got < nbytes * reps:
                    k = conn.recv_into(buf)
                    if not k:
                        break
                    got += k
            t = time.perf_counter() - t
            proc.join(30)
            return t / reps

    return nbytes / median_time(one, repeats) / 1e9


def stream_reps(mb: int) -> int:
    """Repetitions of STREAM (dfc and the bare form alike) moving at least 1 GiB: with 20
    of 2 MB (40 MB, ~30 ms) the first transfer's channel set-up, inside dfc's compute phase
    and outside the bare form's timing (its warm-up run), decided the ratio."""
    return max(20, 1024 // mb)


def bare_assign_add_gbps(mb: int, reps: int, repeats: int) -> float:
    """STREAM's ceiling: a bare two-server TF assign_add of the same vector (bare_stream.py)."""

    def one():
        got = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "bare_stream.py"), str(mb), str(reps)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if got.returncode != 0:
            raise RuntimeError(f"bare_stream.py {mb} {reps} failed: {got.stderr[-800:]}")
        return sum(json.loads(got.stdout.splitlines()[-1])["seconds"]) / reps

    return mb * 2**20 / median_time(one, repeats) / 1e9


def copy_gbps(mb: int, repeats: int) -> float:
    src = np.ones(mb * 2**20 // 8)
    dst = np.empty_like(src)
    return 2 * src.nbytes / median_time(lambda: timed(lambda: np.copyto(dst, src)), repeats) / 1e9


# ---------------------------------------------------------------- fixed costs and scaling

TRIVIAL = "dfc: 1\nname: trivial\narrays:\n  a: {shape: [4], init: ones}\n  b: {shape: [4], output: true}\ntasks:\n  t: {compute: 'a * 2', out: b}\n"


def fixed_costs(repeats: int) -> dict:
    """Seconds end to end: one TensorFlow import (what issue 14 holds a run's start to), a
    trivial spec, README's main command (``dfc run specs/cg.yaml``, with its compute
    phase), and ``dfc plan`` of each spec."""
    out = {}
    out["tensorflow_import_s"] = median_time(
        lambda: timed(lambda: subprocess.run([sys.executable, "-c", "import tensorflow"], check=True, timeout=300)),
        repeats,
    )
    with tempfile.TemporaryDirectory() as d:
        spec = Path(d) / "trivial.yaml"
        spec.write_text(TRIVIAL)
        out["trivial_run_s"] = median_time(
            lambda: timed(
                lambda: subprocess.run(
                    [sys.executable, "-m", "dfc", "run", str(spec), "--quiet"], check=True, timeout=300, cwd=d
                )
            ),
            repeats,
        )
        cg = dfc_run("cg.yaml", [], repeats)
        out["cg_default_run_s"], out["cg_default_compute_s"] = cg["wall_s"], cg["compute_s"]
    for name in ("stream", "matmul", "cg", "fft"):
        out[f"plan_{name}_s"] = median_time(
            lambda: timed(
                lambda: subprocess.run(
                    [sys.executable, "-m", "dfc", "plan", str(SPECS / f"{name}.yaml"), "--format", "json"],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            ),
            repeats,
        )
    return out


SCALING = """
import dataclasses, json, resource, sys, time
from dfc.lang import load_spec
from dfc.passes import compile_spec
from dfc.cost.model import CostModel
from dfc.cost.profile import Profile
from dfc.cost.simulate import simulate
from dfc.ir.devices import devices
g = int(sys.argv[1])
t = time.perf_counter()
s = load_spec(sys.argv[2], [f"N={g * 16}", "T=16"])
jobs = dict(s.cluster); jobs["worker"] = dataclasses.replace(jobs["worker"], tasks=4)
s = dataclasses.replace(s, cluster=jobs)
graph = compile_spec(s)
simulate(graph, CostModel(Profile(), devices(s)))
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report its parent's peak
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"tile_tasks": g**3, "nodes": graph.number_of_nodes(), "seconds": time.perf_counter() - t,
                  "peak_mib": hwm / 1024}))
"""


#: Plans above this many tile tasks run once (minutes each); smaller ones ``repeats`` times.
SCALING_REPEAT_LIMIT = 40_000


def scaling(sizes: list[int], repeats: int = 1) -> list[dict]:
    """Plan matmul with about ``size`` tile tasks on 4 workers, each in a fresh process:
    the median time of the runs (all of them in ``seconds_all``), the highest peak."""
    rows = []
    for target in sizes:
        g = max(2, round(target ** (1 / 3)))
        runs = []
        for _ in range(repeats if g**3 <= SCALING_REPEAT_LIMIT else 1):
            proc = subprocess.run(
                [sys.executable, "-c", SCALING, str(g), str(SPECS / "matmul.yaml")],
                capture_output=True,
                text=True,
                timeout=3600,
                cwd=ROOT,
            )
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-800:])
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        rows.append(
            {
                **runs[0],
                "seconds": float(np.median([r["seconds"] for r in runs])),
                "seconds_all": [r["seconds"] for r in runs],
                "peak_mib": max(r["peak_mib"] for r in runs),
            }
        )
    return rows


def report_scaling(scale: list[dict]) -> None:
    for s in scale:
        print(
            f"plan {s['tile_tasks']:>7} tile tasks ({s['nodes']} nodes): {s['seconds']:.2f} s "
            f"(runs: {', '.join(f'{x:.2f}' for x in s['seconds_all'])}), peak {s['peak_mib']:.0f} MiB",
            flush=True,
        )


# ---------------------------------------------------------------- report


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for mod in ("numpy", "scipy", "dask", "distributed", "tensorflow"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 — a missing optional library is reported, not fatal
            versions[mod] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['benchmark']} {r['size']}\nvs {r['baseline']}" for r in rows]
    ratios = [r["ratio"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 4.5))
    ax.bar(range(len(rows)), ratios, color=["#4c9f70" if x >= 1 else "#d9822b" for x in ratios])
    ax.axhline(1.0, color="#333", linewidth=0.8)
    ax.set_xticks(range(len(rows)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("dfc / alternative (higher is better)")
    ax.set_title("dfc against the alternatives, same machine, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="dfc benchmarks against NumPy, SciPy, Dask and the hardware")
    p.add_argument("--set", choices=sorted(SETS), default="quick")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--skip-dask", action="store_true", help="leave out the Dask baselines")
    p.add_argument(
        "--smoke",
        action="store_true",
        help="one run of each figure, not a median: checks the harness works (CI), figures not to quote",
    )
    p.add_argument(
        "--scaling-only",
        action="store_true",
        help="only the compiler's scaling (plan time and peak memory); prints, writes nothing",
    )
    a = p.parse_args(argv)
    repeats = 1 if a.smoke else max(3, a.repeats)
    cfg = SETS[a.set]
    if a.scaling_only:
        report_scaling(scaling(cfg["scaling"], repeats))
        return 0
    t_start = time.perf_counter()
    rows: list[dict] = []

    def row(bench, size, dfc, metric, baseline, value, unit):
        rows.append(
            {
                "benchmark": bench,
                "size": size,
                "dfc": dfc[metric],
                "unit": unit,
                "baseline": baseline,
                "baseline_value": value,
                "ratio": dfc[metric] / value if value else None,
                "verified": dfc["verified"],
                "dfc_detail": dfc,
            }
        )
        print(
            f"{bench:7s} {size:>14s}  dfc {dfc[metric]:9.3f} {unit:8s} {baseline:22s} {value:9.3f}  "
            f"ratio {dfc[metric] / value:5.2f}  (startup {dfc['startup_s']:.1f} s)",
            flush=True,
        )

    peak = numpy_matmul(cfg["peak_n"], repeats)
    bandwidth = copy_gbps(cfg["copy_mb"], repeats)
    print(
        f"machine: peak BLAS float32 {peak:.1f} GFLOP/s (N={cfg['peak_n']}), memory copy {bandwidth:.1f} GB/s",
        flush=True,
    )
    for n, t in cfg["matmul"]:
        d = dfc_run("matmul.yaml", [f"N={n}", f"T={t}"], repeats)
        row("matmul", f"N={n} T={t}", d, "gflops", "numpy", numpy_matmul(n, repeats), "GFLOP/s")
        if not a.skip_dask:
            row("matmul", f"N={n} T={t}", d, "gflops", "dask threads", dask_matmul(n, t, repeats, "threads"), "GFLOP/s")
            row(
                "matmul",
                f"N={n} T={t}",
                d,
                "gflops",
                "dask 2 processes",
                dask_matmul(n, t, repeats, "distributed"),
                "GFLOP/s",
            )
    for n, iters in cfg["cg"]:
        d = dfc_run("cg.yaml", [f"N={n}", f"iterations={iters}", "tol=0", f"shift={cg_diagonal(n)}"], repeats)
        row("cg", f"N={n} it={iters}", d, "gflops", "numpy CG loop", numpy_cg(n, iters, repeats), "GFLOP/s")
    for n in cfg["fft"]:
        d = dfc_run("fft.yaml", [f"N={n}"], repeats)
        row("fft", f"N=2^{int(np.log2(n))}", d, "gflops", "numpy.fft", fft_rate(n, repeats, "numpy"), "GFLOP/s")
        row(
            "fft",
            f"N=2^{int(np.log2(n))}",
            d,
            "gflops",
            "scipy.fft (all cores)",
            fft_rate(n, repeats, "scipy"),
            "GFLOP/s",
        )
    for n, b in cfg["cholesky"]:
        d = dfc_run("cholesky.yaml", [f"N={n}", f"B={b}", "W=2"], repeats)
        for which, label in (("numpy", "numpy.linalg.cholesky"), ("scipy", "scipy.linalg.cholesky")):
            row("cholesky", f"N={n} B={b}", d, "gflops", label, cholesky_rate(n, repeats, which), "GFLOP/s")
    for mb in cfg["stream"]:
        reps = stream_reps(mb)
        d = dfc_run("stream.yaml", [f"MB={mb}", f"reps={reps}"], repeats)
        row("stream", f"{mb} MB", d, "gbps", "bare TF assign_add", bare_assign_add_gbps(mb, reps, repeats), "GB/s")
        row("stream", f"{mb} MB", d, "gbps", "raw loopback socket", socket_gbps(mb, repeats), "GB/s")
        row("stream", f"{mb} MB", d, "gbps", "numpy copy", copy_gbps(mb, repeats), "GB/s")
    fixed = fixed_costs(repeats)
    print("fixed costs: " + ", ".join(f"{k} {v:.2f} s" for k, v in fixed.items()), flush=True)
    scale = scaling(cfg["scaling"], repeats)
    report_scaling(scale)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    result = {
        "set": a.set,
        "repeats": repeats,
        "smoke": a.smoke,
        "machine": machine(),
        "peak_blas_gflops": peak,
        "memory_copy_gbps": bandwidth,
        "rows": rows,
        "fixed_costs": fixed,
        "compiler_scaling": scale,
        "seconds": time.perf_counter() - t_start,
        "benchmark_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    path = out_dir / f"{a.set}-{stamp}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    try:
        chart(rows, path.with_suffix(".png"))
    except ImportError:
        print("no chart: matplotlib is not installed", file=sys.stderr)
    print(f"wrote {path} and {path.with_suffix('.png').name} in {result['seconds']:.0f} s")
    return 0 if all(r["verified"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
