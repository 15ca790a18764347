"""A run's report as text (``dfc run``'s summary, a sweep's table) and a sweep as a plot."""

from __future__ import annotations

import os

#: what ``--plot`` writes (by the file's extension)
PLOT_FORMATS = (".png", ".svg", ".pdf")


def summary_lines(r) -> list[str]:
    """The summary of one :class:`~dfc.api.RunReport`."""
    v = r.verification
    state = "no verification" if v is None else "verified" if r.verified else "VERIFICATION FAILED"
    lines = [
        f"{r.name} ({r.engine} engine): {state}",
        "  time: " + ", ".join(f"{k} {x:.3f} s" for k, x in r.seconds.items()),
    ]
    if r.iterations_run:
        lines.append(f"  iterations: {r.iterations_run}")
    for name, value in r.outputs.items():
        lines.append(f"  {name} = {value:.10g}" if isinstance(value, float) else f"  {name} = {value}")
    if v:
        lines.append(f"  verify: {v['detail']}")
    m, c = r.metrics, r.seconds["compute"]
    if "gflops" in m:
        lines.append(f"  {m['flops'] / 1e9:.3f} GFLOP in {c:.3f} s = {m['gflops']:.2f} GFLOP/s")
    if "gbps" in m:
        lines.append(f"  {m['bytes'] / 1e9:.3f} GB in {c:.3f} s = {m['gbps']:.2f} GB/s")
    if r.predicted_seconds is not None:
        lines.append(f"  compute: predicted {r.predicted_seconds:.3f} s, measured {c:.3f} s (profile: {r.profile})")
    if r.checkpoints:
        lines += checkpoint_lines(r.checkpoints)
    for retry in r.retries:
        lines.append(f"  retried: {retry}")
    if r.trace:
        from ..runtime.trace import summary_lines as trace_lines

        lines += trace_lines(r.trace)
    return lines


def checkpoint_lines(c: dict) -> list[str]:
    lines = []
    if c.get("resumed_from"):
        lines.append(
            f"  resumed from: the checkpoint of iteration {c['resumed_from']['iteration']} "
            f"in {c['resumed_from']['folder']}"
        )
    each = f", {c['seconds_each']:.3f} s and {c['bytes'] / 1e6:.3g} MB each" if c["written"] else ""
    lines.append(
        f"  checkpoints: {c['written']} written every {c['every']} iterations{each}, in {c['folder']}"
        + (f"; {len(c['failed'])} failed" if c["failed"] else "")
    )
    return lines


def sweep_table(key: str, reports: list) -> str:
    unit = reports[0].rate[0]
    lines = [f"{key:>10}  {'compute s':>10}  {unit:>9}  verified"]
    for r in reports:
        lines.append(f"{r.params[key]:>10}  {r.seconds['compute']:>10.4f}  {r.rate[1]:>9.3f}  {r.verified}")
    return "\n".join(lines)


def plot_sweep(key: str, reports: list, path: str) -> None:
    """The rate of each point of a sweep against the swept param (needs matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib (pip install 'dfc[plot]')") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r.params[key] for r in reports], [r.rate[1] for r in reports], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(key)
    ax.set_ylabel(reports[0].rate[0])
    ax.set_title(reports[0].name)
    fig.tight_layout()
    from ..outputs import write_files

    try:
        write_files({path: lambda f: fig.savefig(f, dpi=120, format=os.path.splitext(path)[1][1:].lower())})
    finally:
        plt.close(fig)
