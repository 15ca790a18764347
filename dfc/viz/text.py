"""The plan as rich tables: task classes, devices with load and memory, bytes per link,
predicted makespan against the lower bound."""

from __future__ import annotations

import io

from ..cost.plan import Plan
from ..ir.devices import short
from ..ir.node import each_node, node_table, succ_of


def si(x: float, unit: str) -> str:
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor:
            return f"{x / factor:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}"


def seconds(t: float) -> str:
    return f"{t * 1e3:.3f} ms" if t < 1 else f"{t:.3f} s"


def render(plan: Plan, width: int = 110, color: bool = False) -> str:
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, color_system="standard" if color else None)
    s = plan.schedule
    g = plan.graph  # counted on the adjacency dicts: the networkx views are slow at 1M nodes
    pairs = sum(1 for n in each_node(g) if n.kind == "send")
    console.print(
        f"[bold]{plan.name}[/bold]: {len(node_table(g))} nodes, "
        f"{sum(map(len, succ_of(g).values()))} edges, {pairs} send/recv pairs, strategy {plan.strategy}"
    )

    classes = Table(title="task classes", title_justify="left")
    for col in ("class", "kind", "runs", "count", "flops"):
        classes.add_column(col, justify="right" if col in ("count", "flops") else "left")
    for c in plan.task_classes():
        classes.add_row(
            c["class"],
            c["kind"],
            "every iteration" if c["scope"] == "loop" else "once",
            str(c["count"]),
            si(c["flops"], "flop") if c["flops"] else "",
        )
    console.print(classes)

    devices = Table(title="devices", title_justify="left")
    hosts = plan.many_hosts  # a cluster across hosts: say where each device is
    for col in ("device", *(("host",) if hosts else ()), "busy", "load", "flops", "memory"):
        devices.add_column(col, justify="left" if col in ("device", "host") else "right")
    for d in plan.device_rows():
        devices.add_row(
            d["short"],
            *((d["host"],) if hosts else ()),
            seconds(d["busy_s"]),
            f"{100 * d['load']:.0f}%",
            si(d["flops"], "flop"),
            si(d["memory_bytes"], "B"),
        )
    console.print(devices)

    if plan.schedule.links:
        links = Table(title="bytes per link", title_justify="left")
        for col in ("from", "to", "bytes"):
            links.add_column(col, justify="right" if col == "bytes" else "left")
        for row in plan.link_rows():
            links.add_row(short(row["from"]), short(row["to"]), si(row["bytes"], "B"))
        console.print(links)

    parts = [seconds(s.prologue)] + ([f"{s.iterations} x {seconds(s.iteration)}"] if s.iterations else [])
    if s.overhead:
        parts.append(f"{seconds(s.overhead)} of runs, first runs and loop control")
    console.print(f"predicted makespan {seconds(s.makespan)}" + (f" = {' + '.join(parts)}" if len(parts) > 1 else ""))
    console.print(
        f"lower bound        {seconds(s.lower_bound)}  (max of critical path, work / the devices it may run on)"
    )
    if plan.profile:
        console.print(f"profile            {plan.profile}")
    console.print(f"ratio              {plan.ratio:.2f}")
    console.print(f"bytes moved        {si(s.bytes_moved, 'B')}")
    console.print(f"init (before it)   {seconds(s.init)}  (each task initialises its variables)")
    for r in plan.reductions():
        console.print(f"reductions via {r['queue']}: {reduction_form(r)}", highlight=False)
    return buf.getvalue()


def reduction_form(r: dict) -> str:
    """How the ``via:`` reductions through one queue run, and why (``Plan.reductions``)."""
    form = "all-reduces among the producers (collective)" if r["form"] == "collective" else "through the queue"
    if "why" in r:
        return f"{form} ({r['asked']}: {r['why']})"
    if r["asked"] != "auto":
        return f"{form}, as the spec asks"
    other = "as all-reduces" if r["form"] == "queue" else "through the queue"
    chosen, rejected = (
        (r["collective_s"], r["queue_s"]) if r["form"] == "collective" else (r["queue_s"], r["collective_s"])
    )
    return f"{form} (auto: predicted {seconds(chosen)}, {seconds(rejected)} {other})"
